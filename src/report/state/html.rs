//! The state report as one self-contained HTML page: inline CSS and SVG, no script, no external
//! asset, no network; printable on A4 or Letter (`@page`), tables that wrap instead of
//! clipping; real headings, table headers, SVG charts with a title and a description, and
//! severity always written out (colour is never the only signal).
//!
//! Rendered with askama: the template (`src/report/templates/report.html`) is compiled and
//! type-checked with the crate and escapes every value as HTML, so no markup is ever built by
//! string concatenation.

use super::chart::ChartView;
use super::StateReport;
use askama::Template;
use std::collections::HashMap;

/// Paper the printed report is laid out for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Paper {
    #[default]
    A4,
    Letter,
}

impl Paper {
    fn css(self) -> &'static str {
        match self {
            Paper::A4 => "A4",
            Paper::Letter => "letter",
        }
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    r: &'a StateReport,
    paper: &'static str,
    version: &'static str,
    charts: HashMap<String, ChartView>,
    anchors: HashMap<String, String>,
}

impl Page<'_> {
    fn chart(&self, key: &str) -> Option<&ChartView> {
        self.charts.get(key)
    }

    fn key_anchor(&self, key: &str) -> String {
        self.anchors
            .get(key)
            .cloned()
            .unwrap_or_else(|| "keys".into())
    }

    fn short<'s>(&self, id: &'s str) -> &'s str {
        super::blast::short_commit(id)
    }

    fn date<'s>(&self, t: &'s str) -> &'s str {
        t.get(..10).unwrap_or(t)
    }

    fn action(&self, a: &crate::finding::Action) -> &'static str {
        use crate::finding::Action::*;
        match a {
            Revoke => "revoke",
            Rotate => "rotate",
            Narrow => "narrow",
            Whitelist => "whitelist",
            MoveSecret => "move the secret",
            Investigate => "investigate",
        }
    }

    fn step_title(&self, action: &str) -> &'static str {
        match action {
            "revoke" => "Revoke",
            "check-transfers" => "Check these transfers",
            "rotate" => "Rotate the integration",
            "clean-history" => "Clean the history",
            _ => "Then",
        }
    }
}

/// Renders the page (not yet through the redaction gate: `report::render_state` does that).
pub fn render(r: &StateReport, paper: Paper, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut charts = HashMap::new();
    let mut anchors = HashMap::new();
    for (i, k) in r.keys.iter().enumerate() {
        anchors.insert(k.name.clone(), format!("key-{}", i + 1));
        if let Some(u) = &k.usage {
            charts.insert(k.name.clone(), ChartView::new(i + 1, &k.name, u));
        }
    }
    let page = Page {
        r,
        paper: paper.css(),
        version: env!("CARGO_PKG_VERSION"),
        charts,
        anchors,
    };
    let html = page.render().map_err(std::io::Error::other)?;
    out.write_all(html.as_bytes())
}
