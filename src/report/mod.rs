//! The contract's report document and its one render entry point: a job's typed outcome becomes
//! a `Report` (`jobs.rs`: scan, audit, inventory; `watch.rs`), rendered in the format the user asked for
//! (human, with the inventory's key table; JSON; SARIF; HTML). `state` is `awxguard report`:
//! the current state of the store as one model, rendered as HTML, JSON or text.

mod html;
mod human;
mod jobs;
mod json;
pub mod sarif;
pub mod state;
mod table;
pub mod usage;
pub mod watch;

use crate::finding::{count_by_severity, Finding};
use crate::inventory::{DiscoverOutcome, KeyRow, VerifyStats};
use crate::privilege::audit::AuditSummary;
pub use crate::rules::RuleInfo;
use crate::scan::baseline::BaselineSummary;
use crate::scan::job::StoreSection;
use crate::scan::verify::VerificationSummary;
use crate::scan::{Problem, ScanStats};
use serde::Serialize;
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
    /// A self-contained HTML page (inline CSS and SVG, no script), printable.
    Html,
}

/// The serialized report: `{"version": 1, "tool": "awxguard", "summary": {...}, "findings": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub tool: String,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    /// What the rules in force say of themselves, for formats that describe rules (SARIF). Not
    /// part of the JSON report.
    #[serde(skip)]
    pub rules: Vec<RuleInfo>,
    /// How the human format lays the report out. Not part of the JSON report.
    #[serde(skip)]
    pub layout: Layout,
}

/// How the human format lays a report out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Layout {
    /// Findings grouped by file or key, then the summary line.
    #[default]
    Findings,
    /// The inventory's key table (`summary.keys`), its remarks, then any findings.
    KeyTable {
        /// Usage evidence was given: a key without events is "no evidence", not "-".
        evidence: bool,
        /// The evidence's own remarks, which the table does not show per key.
        notes: Vec<String>,
    },
}

/// What a run covered. Sections appear for the capability that ran; each is typed, and
/// serializes under the same key the findings contract's readers know.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// `audit`: what the audit covered (keys, logins, discovery, evidence, store, timings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSummary>,
    /// `scan --baseline`: the baseline applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineSummary>,
    /// `inventory discover`: what discovery covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverOutcome>,
    /// `inventory`, `audit`: every key as the inventory lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<KeyRow>>,
    /// Findings the store resolved in this run (`scan --record`, `audit`), with their
    /// `resolution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Vec<Finding>>,
    /// `audit`: earlier findings this run could not re-check (it did not look where they were
    /// seen): still open, with the inputs it did not look at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_rechecked: Option<Vec<crate::privilege::audit::Unchecked>>,
    /// `findings list`: the acknowledgements of the listed findings (reason, by, since, until).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgements: Option<Vec<crate::store::AckRecord>>,
    /// `scan --record`: the store scope and what recording did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreSection>,
    /// `scan --verify`, `inventory verify`: what the logins said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationSection>,
    /// `usage ingest`, `usage stats`: what was read and stored, which baseline each key is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<usage::UsageSection>,
    /// `watch`: what each list read, where it stopped, what stays open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<crate::watch::WatchOutcome>,
}

/// The `verification` section: a scan's pairs, or the inventory's logins.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum VerificationSection {
    Scan(VerificationSummary),
    Inventory(VerifyStats),
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
            layout: Layout::Findings,
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

/// Renders `report` to `out` through the redaction gate: the whole rendering is scrubbed
/// (`redact::scrub`) before a byte of it is written, and human output shows control characters
/// escaped (only its own colour codes pass). Every format, every field, one place.
pub fn render(
    report: &Report,
    format: Format,
    style: Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(16 << 10);
    render_raw(report, format, style, &mut buf)?;
    through_gate(&buf, format, style, out)
}

/// Writes a rendering through the redaction gate (and, for a terminal, with control characters
/// shown escaped).
fn through_gate(
    buf: &[u8],
    format: Format,
    style: Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut gate = match format {
        Format::Human => crate::redact::Scrubbing::for_terminal(out, style.color),
        Format::Json | Format::Sarif | Format::Html => crate::redact::Scrubbing::new(out),
    };
    gate.write_all(buf)
}

/// Renders the state report (`awxguard report`) through the redaction gate: HTML (laid out for
/// `paper` when printed), JSON (the model serialized), human text, or SARIF (its findings).
pub fn render_state(
    report: &state::StateReport,
    format: Format,
    style: Style,
    paper: state::html::Paper,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 << 10);
    match format {
        Format::Html => state::html::render(report, paper, &mut buf)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut buf, report)?;
            writeln!(buf)?;
        }
        Format::Human => state::human::render(report, style, &mut buf)?,
        Format::Sarif => {
            let r = Report::new("report", report.findings.clone());
            sarif::render(&r, &mut buf)?;
        }
    }
    through_gate(&buf, format, style, out)
}

/// Renders without the gate (only `render` calls it).
fn render_raw(
    report: &Report,
    format: Format,
    style: Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Human => match &report.layout {
            Layout::Findings => human::render(report, style, out),
            Layout::KeyTable { evidence, notes } => {
                table::render(report, *evidence, notes, style, out)
            }
        },
        Format::Json => json::render(report, out),
        Format::Sarif => sarif::render(report, out),
        Format::Html => html::render(report, out),
    }
}
