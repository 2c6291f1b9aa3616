//! The plain-text body of an alert.

use super::*;

/// The plain-text body.
pub fn text(doc: &AlertDoc, tz: chrono_tz::Tz) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", doc.subject);
    let _ = writeln!(out);
    match doc.kind {
        AlertKind::Test => {
            let _ = writeln!(
                out,
                "This is a test of awxguard's alert path (awxguard alerts test). If you read \
                 this, alerts reach you here. Nothing to do."
            );
        }
        AlertKind::Digest => {
            let _ = writeln!(
                out,
                "Daily digest: new findings below the immediate threshold, and standing ones \
                 still open."
            );
        }
        AlertKind::Repeat => {
            let _ = writeln!(
                out,
                "Reminder: these findings are still open and nobody has acknowledged them."
            );
        }
        AlertKind::Resolved => {
            let _ = writeln!(
                out,
                "Resolved: a later run no longer sees these findings. Nothing to do."
            );
        }
        AlertKind::Immediate => {}
    }
    for g in &doc.groups {
        let _ = writeln!(out);
        let _ = writeln!(out, "KEY");
        for (k, v) in key_lines(&g.key) {
            let _ = writeln!(out, "  {k:<12} {v}");
        }
        let n = g.findings.len();
        for (i, item) in g.findings.iter().enumerate() {
            let f = &item.finding;
            let _ = writeln!(out);
            let head = if n > 1 {
                format!("FINDING {} OF {n}", i + 1)
            } else {
                "FINDING".into()
            };
            let _ = writeln!(
                out,
                "{head}: {} ({}, {})",
                item.title,
                f.severity.as_str().to_ascii_uppercase(),
                f.rule
            );
            let _ = writeln!(out);
            let _ = writeln!(out, "What happened");
            let _ = writeln!(out, "  {}", f.message);
            let (obs, exp) = observed_expected(f);
            if let Some(o) = obs {
                let _ = writeln!(out, "  Observed:  {o}");
            }
            if let Some(e) = exp {
                let _ = writeln!(out, "  Expected:  {e}");
            }
            if let Some(w) = &item.window {
                let _ = writeln!(out, "  Evidence window: {}", w.text);
            }
            if let Some(w) = item_where(f) {
                let _ = writeln!(out, "  Where: {w}");
            }
            if let Some(v) = f.verification {
                let _ = writeln!(out, "  Login check: {v}");
            }
            let ev = evidence_rest(f);
            if !ev.is_empty() {
                let _ = writeln!(out);
                let _ = writeln!(out, "Evidence");
                for (k, v) in ev {
                    let _ = writeln!(out, "  {k}: {v}");
                }
            }
            if let Some(r) = &f.recommendation {
                if !r.steps.is_empty() {
                    let _ = writeln!(out);
                    let _ = writeln!(out, "What to do");
                    for (n, s) in r.steps.iter().enumerate() {
                        let _ = writeln!(out, "  {}. {s}", n + 1);
                    }
                }
            }
            if !f.also.is_empty() || !item.folded.is_empty() {
                let _ = writeln!(out);
                let _ = writeln!(out, "Also carries");
                for r in &f.also {
                    let _ = writeln!(out, "  - {r}");
                }
                for x in &item.folded {
                    if !f.also.contains(&x.rule) {
                        let _ = writeln!(out, "  - {}", x.rule);
                    }
                    let _ = writeln!(out, "    {} ({})", x.message, x.id);
                }
            }
            let _ = writeln!(out);
            let first = parse_time(&item.first_seen).map(|t| both_zones(t, tz));
            let last = parse_time(&item.last_seen).map(|t| both_zones(t, tz));
            let _ = writeln!(out, "  First seen:  {}", first.unwrap_or_default());
            let _ = writeln!(out, "  Last seen:   {}", last.unwrap_or_default());
            let _ = writeln!(out, "  Status:      {}", item.status_line);
            let _ = writeln!(out, "  Finding id:  {}", f.id);
            if doc.kind != AlertKind::Resolved {
                let _ = writeln!(out, "  To accept it (after review), run:");
                let _ = writeln!(out, "    {}", item.ack_command);
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "--");
    let _ = writeln!(
        out,
        "awxguard alert {} ({}), {}",
        doc.id,
        doc.kind.as_str(),
        parse_time(&doc.created_at)
            .map(|t| both_zones(t, tz))
            .unwrap_or_default()
    );
    out
}
