//! The HTML body of an alert: the same content as the text, laid out for a mail client.

use super::*;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The HTML body: the same content as the text, laid out for a mail client.
pub fn html(doc: &AlertDoc) -> String {
    let tz: chrono_tz::Tz = doc.timezone.parse().unwrap_or(chrono_tz::UTC);
    let colour = match doc.severity {
        Severity::Critical => "#b00020",
        Severity::High => "#d35400",
        Severity::Medium => "#b7950b",
        _ => "#555555",
    };
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif;max-width:50em\">\
         <h2 style=\"color:{colour}\">{}</h2>",
        esc(&doc.subject),
        esc(&doc.subject)
    );
    // The lead paragraph of the text, if any.
    if let Some(lead) = doc
        .text
        .split("\n\n")
        .nth(1)
        .filter(|l| !l.starts_with("KEY"))
    {
        let _ = write!(o, "<p>{}</p>", esc(lead.trim()));
    }
    for g in &doc.groups {
        o.push_str("<h3>Key</h3><table>");
        for (k, v) in key_lines(&g.key) {
            let _ = write!(
                o,
                "<tr><th align=\"left\">{k}</th><td><code>{}</code></td></tr>",
                esc(&v)
            );
        }
        o.push_str("</table>");
        for item in &g.findings {
            let f = &item.finding;
            let _ = write!(
                o,
                "<hr><h3>{} <small>({}, <code>{}</code>)</small></h3>",
                esc(&item.title),
                f.severity.as_str().to_ascii_uppercase(),
                esc(&f.rule)
            );
            let _ = write!(o, "<h4>What happened</h4><p>{}</p>", esc(&f.message));
            let (obs, exp) = observed_expected(f);
            if obs.is_some() || exp.is_some() || item.window.is_some() {
                o.push_str("<table>");
                for (k, v) in [
                    ("Observed", obs),
                    ("Expected", exp),
                    (
                        "Evidence window",
                        item.window.as_ref().map(|w| w.text.clone()),
                    ),
                    ("Where", item_where(f)),
                ] {
                    if let Some(v) = v {
                        let _ = write!(
                            o,
                            "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
                            esc(&v)
                        );
                    }
                }
                o.push_str("</table>");
            }
            let ev = evidence_rest(f);
            if !ev.is_empty() {
                o.push_str("<h4>Evidence</h4><ul>");
                for (k, v) in ev {
                    let _ = write!(o, "<li><b>{}</b>: <code>{}</code></li>", esc(&k), esc(&v));
                }
                o.push_str("</ul>");
            }
            if let Some(r) = f.recommendation.as_ref().filter(|r| !r.steps.is_empty()) {
                o.push_str("<h4>What to do</h4><ol>");
                for s in &r.steps {
                    let _ = write!(o, "<li>{}</li>", esc(s));
                }
                o.push_str("</ol>");
            }
            if !f.also.is_empty() || !item.folded.is_empty() {
                o.push_str("<h4>Also carries</h4><ul>");
                for r in &f.also {
                    let _ = write!(o, "<li><code>{}</code></li>", esc(r));
                }
                for x in &item.folded {
                    let _ = write!(
                        o,
                        "<li><code>{}</code>: {} ({})</li>",
                        esc(&x.rule),
                        esc(&x.message),
                        esc(&x.id)
                    );
                }
                o.push_str("</ul>");
            }
            o.push_str("<table>");
            for (k, v) in [
                (
                    "First seen",
                    parse_time(&item.first_seen).map(|t| both_zones(t, tz)),
                ),
                (
                    "Last seen",
                    parse_time(&item.last_seen).map(|t| both_zones(t, tz)),
                ),
                ("Status", Some(item.status_line.clone())),
                ("Finding id", Some(f.id.clone())),
            ] {
                let _ = write!(
                    o,
                    "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
                    esc(&v.unwrap_or_default())
                );
            }
            o.push_str("</table>");
            if doc.kind != AlertKind::Resolved {
                let _ = write!(
                    o,
                    "<p>To accept it (after review), run:</p><pre>{}</pre>",
                    esc(&item.ack_command)
                );
            }
        }
    }
    let _ = write!(
        o,
        "<hr><p style=\"color:#777\">awxguard alert {} ({})</p></body></html>",
        esc(&doc.id),
        doc.kind.as_str()
    );
    scrub(&o)
}
