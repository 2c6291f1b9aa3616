//! One render entry point: a `Report` (the findings contract's JSON report) rendered in the
//! format the user asked for.

mod human;
mod json;
pub mod sarif;
pub mod watch;

use crate::finding::{count_by_severity, Finding};
use crate::scan::{Problem, ScanStats};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// Output formats for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Grouped for people; coloured only on a terminal.
    Human,
    /// The findings contract's JSON report.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
    Sarif,
}

/// The serialized report: `{"version": 1, "tool": "awxguard", "summary": {...}, "findings": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub tool: String,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    /// What the rules in force say of themselves, for formats that describe rules (SARIF). Not
    /// part of the JSON report.
    #[serde(skip)]
    pub rules: Vec<RuleInfo>,
}

/// A rule as a report describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub severity: crate::finding::Severity,
}

/// What a run covered. Sections appear for the capability that ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The command that produced the report (`scan`, `audit`, ...).
    pub command: String,
    pub findings: usize,
    /// Findings per severity, most severe first.
    pub by_severity: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanStats>,
    /// Inputs that could not be read; the run went on without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Other remarks worth a reader's attention (stale allowances, unverifiable keys, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Sections added by other capabilities (baseline, verification, audit, ...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// A report over `findings`, sorted most severe first.
    pub fn new(command: &str, mut findings: Vec<Finding>) -> Report {
        findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let mut by_severity = serde_json::Map::new();
        let counts = count_by_severity(&findings);
        for s in crate::finding::Severity::ALL {
            by_severity.insert(
                s.as_str().into(),
                counts.get(&s).copied().unwrap_or(0).into(),
            );
        }
        Report {
            version: 1,
            tool: "awxguard".into(),
            summary: Summary {
                command: command.into(),
                findings: findings.len(),
                by_severity,
                ..Summary::default()
            },
            findings,
            rules: Vec::new(),
        }
    }

    /// Replaces the findings (after a baseline or verification changed them), sorting them and
    /// recounting the summary.
    pub fn set_findings(&mut self, findings: Vec<Finding>) {
        let fresh = Report::new(&self.summary.command, findings);
        self.summary.findings = fresh.summary.findings;
        self.summary.by_severity = fresh.summary.by_severity;
        self.findings = fresh.findings;
    }
}

/// Colour or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

/// Renders `report` to `out`.
pub fn render(
    report: &Report,
    format: Format,
    style: Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Human => human::render(report, style, out),
        Format::Json => json::render(report, out),
        Format::Sarif => sarif::render(report, out),
    }
}
