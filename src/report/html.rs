//! A run's findings report as a self-contained HTML page (`--format html` on any command): the
//! findings table with what to do, the notes and the unreadable inputs. `awxguard report`
//! renders the store's whole state instead (`state::html`). Same stylesheet, same escaping
//! (askama), same redaction gate.

use super::Report;
use askama::Template;

#[derive(Template)]
#[template(path = "findings.html")]
struct Page<'a> {
    r: &'a Report,
    counts: Vec<(&'static str, u64)>,
}

pub fn render(report: &Report, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let counts = crate::finding::Severity::ALL
        .iter()
        .map(|s| {
            (
                s.as_str(),
                report
                    .summary
                    .by_severity
                    .get(s.as_str())
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0),
            )
        })
        .collect();
    let html = Page { r: report, counts }
        .render()
        .map_err(std::io::Error::other)?;
    out.write_all(html.as_bytes())
}
