//! The inventory's human layout: one row per key (environment, kind, scopes, owner, age,
//! rotation, last use, login status, fingerprint), one detail line per remark, the inputs that
//! could not be read, the count, then discovery's findings.

use super::{Report, Style};
use crate::airwallex::KeyKind;
use crate::inventory::KeyRow;
use std::io::Write;

/// Renders `report` (an inventory listing, rows in `summary.keys`) as the key table.
pub fn render(
    report: &Report,
    evidence: bool,
    notes: &[String],
    style: Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let rows: &[KeyRow] = report.summary.keys.as_deref().unwrap_or(&[]);
    render_table(rows, evidence, out)?;
    for p in &report.summary.problems {
        writeln!(out, "warning: {}: {}", t(&p.path), t(&p.error))?;
    }
    // Per-key problems are in the detail lines already; the evidence's remarks are not.
    for n in notes {
        writeln!(out, "note: {}", t(n))?;
    }
    let shadow = rows.iter().filter(|r| !r.declared).count();
    let mut line = format!("{} keys", rows.len());
    if shadow > 0 {
        line.push_str(&format!(" ({shadow} undeclared)"));
    }
    writeln!(out, "{line}")?;
    if !report.findings.is_empty() {
        writeln!(out)?;
        super::human::render(report, style, out)?;
    }
    Ok(())
}

/// The human table, then one detail line per remark.
fn render_table(rows: &[KeyRow], evidence: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let header = [
        "NAME",
        "ENV",
        "KIND",
        "SCOPES",
        "OWNER",
        "AGE",
        "ROTATED",
        "LAST USED",
        "STATUS",
        "FINGERPRINT",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let scopes = match r.kind {
            KeyKind::Custom => match r.scopes.len() {
                0 => "-".to_string(),
                1 => r.scopes[0].clone(),
                n => format!("{} +{}", r.scopes[0], n - 1),
            },
            KeyKind::Admin | KeyKind::ReadWrite => format!("all ({})", r.scope_count),
            KeyKind::ReadOnly => format!("read ({})", r.scope_count),
        };
        let name = if r.declared {
            r.name.clone()
        } else {
            "(undeclared)".to_string()
        };
        let kind = if r.declared { r.kind.as_str() } else { "?" };
        let last_used = match (&r.last_used, evidence) {
            (Some(t), _) => t.format("%Y-%m-%d").to_string(),
            (None, true) => "no evidence".into(),
            (None, false) => "-".into(),
        };
        table.push(vec![
            name,
            if r.declared {
                r.environment.as_str().into()
            } else {
                "?".into()
            },
            kind.into(),
            scopes,
            r.owner.clone().unwrap_or_else(|| "-".into()),
            r.age_days.map_or("-".into(), |d| format!("{d}d")),
            r.rotated.map_or("never".into(), |d| {
                format!("{d} ({}d)", r.rotated_days_ago.unwrap_or(0))
            }),
            last_used,
            r.status.clone(),
            r.fingerprint.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    // Cells as the terminal shows them, long ones cut (the JSON report keeps every value whole).
    for row in &mut table {
        for cell in row.iter_mut() {
            *cell = cell_text(cell);
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    let mut details = Vec::new();
    for r in rows {
        for p in &r.config_problems {
            details.push(format!("{}: config problem: {p}", r.name));
        }
        if let Some(p) = &r.problem {
            details.push(format!("{}: secret not resolvable: {p}", r.name));
        }
        if let Some(e) = &r.effective {
            details.push(format!("{}: effective permissions: {e}", r.name));
        } else if let Some(d) = &r.login_detail {
            if r.status != "live" {
                details.push(format!("{}: {} ({d})", r.name, r.status));
            }
        }
        for loc in &r.found_in {
            details.push(format!("{}: found in plain text at {loc}", r.name));
        }
    }
    if !details.is_empty() {
        writeln!(out)?;
        for d in details {
            writeln!(out, "  {}", t(&d))?;
        }
    }
    Ok(())
}

/// A value as the terminal shows it: newlines and escapes written out, never obeyed.
fn t(s: &str) -> std::borrow::Cow<'_, str> {
    crate::redact::terminal(s)
}

/// Widest a table cell gets; a longer value is cut with `…` (the JSON report has it whole).
const MAX_CELL: usize = 48;

/// A table cell: escaped for the terminal and cut to `MAX_CELL` characters.
fn cell_text(cell: &str) -> String {
    let shown = t(cell);
    if shown.chars().count() <= MAX_CELL {
        return shown.into_owned();
    }
    let mut cut: String = shown.chars().take(MAX_CELL - 1).collect();
    cut.push('…');
    cut
}
