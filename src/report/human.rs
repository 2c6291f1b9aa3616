//! The report for people: findings grouped by file (or key), then one summary line.

use super::{Report, Style};
use crate::finding::{Finding, Severity};
use std::io::Write;

fn paint(style: Style, code: &str, text: &str) -> String {
    if style.color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn severity_code(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    }
}

/// The group a finding is listed under: its file, else its key, else the rule.
fn group_of(f: &Finding) -> String {
    if let Some(p) = &f.path {
        t(p).into_owned()
    } else if let Some(k) = &f.key {
        format!("key {}", t(k))
    } else {
        t(&f.rule).into_owned()
    }
}

/// A value as the terminal shows it: newlines and escapes written out, never obeyed.
fn t(s: &str) -> std::borrow::Cow<'_, str> {
    crate::redact::terminal(s)
}

pub fn render(report: &Report, style: Style, out: &mut dyn Write) -> std::io::Result<()> {
    // Keep the report's order (most severe first) but list each group once, in the order its
    // first finding appears.
    let mut groups: Vec<(String, Vec<&Finding>)> = Vec::new();
    let mut group_at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for f in &report.findings {
        let g = group_of(f);
        match group_at.get(&g) {
            Some(&i) => groups[i].1.push(f),
            None => {
                group_at.insert(g.clone(), groups.len());
                groups.push((g, vec![f]));
            }
        }
    }
    // Findings the user can act on by id (`findings ack`) show it: stored ones, and every
    // finding of an audit or a listing.
    let show_ids = matches!(
        report.summary.command.as_str(),
        "audit" | "findings" | "scan"
    );
    let acks: &[crate::store::AckRecord] =
        report.summary.acknowledgements.as_deref().unwrap_or(&[]);
    // Print a recommendation's steps in full the first time they appear, then refer back.
    let mut shown_steps: Vec<&Vec<String>> = Vec::new();
    for (name, findings) in &groups {
        writeln!(out, "{}", paint(style, "1", name))?;
        for f in findings {
            let place = match (f.line, f.column) {
                (Some(l), Some(c)) => format!("{l}:{c}"),
                (Some(l), None) => l.to_string(),
                _ => String::new(),
            };
            let sev = paint(style, severity_code(f.severity), f.severity.as_str());
            let mut head = String::new();
            if !place.is_empty() {
                head.push_str(&place);
                head.push_str("  ");
            }
            writeln!(out, "  {head}{sev}  {}  {}", t(&f.rule), t(&f.message))?;
            let mut detail = Vec::new();
            if let Some(s) = &f.secret {
                detail.push(format!("secret {}  {}", t(&s.preview), t(&s.fingerprint)));
                if let Some(c) = &s.client_id {
                    detail.push(format!("client ID {}", t(c)));
                }
            }
            if let Some(v) = f.verification {
                detail.push(format!("verification: {v}"));
            }
            if let Some(c) = &f.commit {
                let mut s = format!("commit {}", t(short(&c.id)));
                if !c.author.is_empty() {
                    s.push_str(&format!(" by {}", t(&c.author)));
                }
                if !c.date.is_empty() {
                    s.push_str(&format!(" on {}", t(&c.date)));
                }
                if !c.also.is_empty() {
                    s.push_str(&format!(" (+{} later)", c.also.len()));
                }
                detail.push(s);
            }
            if let Some(st) = f.status {
                match f.resolution {
                    Some(r) => detail.push(format!("status: {} ({r})", st.as_str())),
                    None => detail.push(format!("status: {}", st.as_str())),
                }
            }
            if f.status.is_some() || show_ids {
                detail.insert(0, format!("id {}", f.short_id()));
            }
            if !detail.is_empty() {
                writeln!(out, "      {}", detail.join("  |  "))?;
            }
            if let Some(a) = acks.iter().find(|a| a.finding_id == f.id) {
                let active = f.status == Some(crate::finding::Status::Acknowledged);
                writeln!(out, "      {}", acknowledgement_line(a, active))?;
            }
            for (rule, message) in folded(f) {
                writeln!(out, "      also {rule}: {message}")?;
            }
            if let Some(r) = &f.recommendation {
                if shown_steps.contains(&&r.steps) {
                    writeln!(
                        out,
                        "      {:<9} as above",
                        format!("{}:", action_word(r.action))
                    )?;
                    continue;
                }
                shown_steps.push(&r.steps);
                for (i, step) in r.steps.iter().enumerate() {
                    let lead = if i == 0 {
                        format!("{}:", action_word(r.action))
                    } else {
                        String::new()
                    };
                    writeln!(out, "      {:<9} {}. {}", lead, i + 1, t(step))?;
                }
            }
        }
        writeln!(out)?;
    }
    for p in &report.summary.problems {
        writeln!(
            out,
            "{} {}: {}",
            paint(style, "33", "warning:"),
            t(&p.path),
            t(&p.error)
        )?;
    }
    for n in &report.summary.notes {
        writeln!(out, "{} {}", paint(style, "2", "note:"), t(n))?;
    }
    writeln!(out, "{}", summary_line(report))
}

/// `acknowledged by sec-team on 2026-11-24 until 2026-12-24: reason`, or, once it lapsed,
/// `acknowledgement by sec-team on 2026-11-24 expired 2026-12-24: reason`.
fn acknowledgement_line(a: &crate::store::AckRecord, active: bool) -> String {
    let day = |t: &str| t.get(..10).unwrap_or(t).to_string();
    let by = match (a.origin.as_str(), a.by.as_deref()) {
        ("config", _) => " by the config".to_string(),
        (_, Some(b)) => format!(" by {b}"),
        (_, None) => String::new(),
    };
    if !active {
        if let Some(e) = &a.expires_at {
            return format!(
                "acknowledgement{by} on {} expired {}: {}",
                day(&a.at),
                day(e),
                a.reason
            );
        }
    }
    let until = match &a.expires_at {
        Some(e) => format!(" until {}", day(e)),
        None => " with no expiry".to_string(),
    };
    format!("acknowledged{by} on {}{until}: {}", day(&a.at), a.reason)
}

/// The weaker findings folded into `f` (`also`), each with its message when the evidence
/// carries it.
fn folded(f: &Finding) -> Vec<(String, String)> {
    let carried = f
        .evidence
        .as_ref()
        .and_then(|e| e.get("folded"))
        .and_then(|v| v.as_array());
    f.also
        .iter()
        .map(|rule| {
            let message = carried
                .and_then(|list| {
                    list.iter()
                        .find(|x| x.get("rule").and_then(|r| r.as_str()) == Some(rule))
                })
                .and_then(|x| x.get("message"))
                .and_then(|m| m.as_str())
                .unwrap_or("carried by this finding");
            (rule.clone(), message.to_string())
        })
        .collect()
}

fn action_word(a: crate::finding::Action) -> &'static str {
    use crate::finding::Action::*;
    match a {
        Revoke => "revoke",
        Rotate => "rotate",
        Narrow => "narrow",
        Whitelist => "whitelist",
        MoveSecret => "move",
        Investigate => "check",
    }
}

fn short(id: &str) -> &str {
    if id.len() > 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}

/// `1.2 MB`, `340 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    let mut parts = Vec::new();
    if let Some(st) = &s.scan {
        parts.push(format!(
            "scanned {} files ({}) in {:.2}s",
            st.files,
            human_bytes(st.bytes),
            st.elapsed_ms as f64 / 1000.0
        ));
        parts.push(format!(
            "skipped {} ignored, {} binary, {} too large, {} unreadable",
            st.skipped_ignored, st.skipped_binary, st.skipped_too_large, st.unreadable
        ));
    }
    let counts: Vec<String> = Severity::ALL
        .iter()
        .filter_map(|sev| {
            let n = s
                .by_severity
                .get(sev.as_str())
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            (n > 0).then(|| format!("{n} {sev}"))
        })
        .collect();
    let noun = if s.findings == 1 {
        "finding"
    } else {
        "findings"
    };
    if counts.is_empty() {
        parts.push(format!("{} {noun}", s.findings));
    } else {
        parts.push(format!("{} {noun} ({})", s.findings, counts.join(", ")));
    }
    parts.join("; ")
}
