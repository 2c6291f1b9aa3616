//! The state report's model: what the HTML, JSON and text renderings show (the JSON format is
//! this, serialized).

use super::blast::BlastRadius;
use super::usage::HourPoint;
use crate::finding::{Finding, Severity, Status};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The report: everything the HTML, JSON and text renderings show.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    pub version: u32,
    pub tool: String,
    /// `state`: this is the state report, not a run's findings report.
    pub kind: String,
    pub generated_at: String,
    /// What counts as new and resolved.
    pub since: String,
    /// Only this key, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub overview: Overview,
    pub keys: Vec<KeySection>,
    pub leaks: Vec<RepositoryLeaks>,
    pub anomalies: Vec<AnomalyView>,
    pub blast_radius: Vec<BlastRadius>,
    /// The findings shown (open, acknowledged, and resolved since `since`), in the findings
    /// contract's shape.
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// The first page: what is risky, what changed.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub keys: usize,
    pub open_findings: usize,
    /// Open (new or open) findings per severity, most severe first, zeros included.
    pub open_by_severity: Vec<SeverityCount>,
    pub keys_by_risk: Vec<KeyRisk>,
    /// Findings first seen since `since`.
    pub new_since: Vec<FindingRef>,
    /// Findings resolved since `since`.
    pub resolved_since: Vec<FindingRef>,
    pub evidence: EvidenceInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeverityCount {
    pub severity: Severity,
    pub count: usize,
}

/// A key's risk: its most severe open finding.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRisk {
    pub key: String,
    /// `None`: nothing open.
    pub risk: Option<Severity>,
    pub open: usize,
    pub leaked: bool,
    /// The rule of the most severe open finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_rule: Option<String>,
}

/// A finding in a list.
#[derive(Debug, Clone, Serialize)]
pub struct FindingRef {
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub message: String,
    pub status: Status,
    pub first_seen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

/// What the usage evidence is.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceInfo {
    pub source: String,
    pub events: usize,
    /// Whether the charts carry a learned baseline band.
    pub baseline: bool,
}

/// One key.
#[derive(Debug, Clone, Serialize)]
pub struct KeySection {
    pub name: String,
    /// Declared in the config's `[[key]]` tables.
    pub declared: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The declared scopes (a custom key's list; the tier's for the others).
    pub scopes_declared: Vec<String>,
    /// How the declaration reads (`custom: 3 scopes`, `admin: every scope`).
    pub scopes_summary: String,
    /// The token's permissions as the last login saw them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// What those permissions mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_days_ago: Option<i64>,
    pub ip_whitelist: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<KeyVerification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Where the secret is kept (`file`, `env`, `literal`, ...), as the last audit saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    pub risk: Option<Severity>,
    pub leaked: bool,
    pub findings: Vec<KeyFinding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageChart>,
}

/// What the last login said of a key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyVerification {
    /// `live`, `revoked`, `forbidden`, `unknown`, or `unverified`.
    pub status: String,
    pub observed_at: String,
    /// `audit` (a login), `scan` (a leak's verification).
    pub by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A finding of a key, with what to do.
#[derive(Debug, Clone, Serialize)]
pub struct KeyFinding {
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub status: Status,
    pub message: String,
    pub first_seen: String,
    pub last_seen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<crate::finding::Action>,
    pub steps: Vec<String>,
    /// The key to create instead, when the recommendation computed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<Replacement>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

/// A replacement key as the recommendation computed it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Replacement {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
    #[serde(default)]
    pub environment: String,
    #[serde(default)]
    pub basis: String,
}

/// The leaks found in one repository (or tree).
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryLeaks {
    pub repository: String,
    /// `git history`, `working tree`, or `audit` (found by an audit's leak scan).
    pub scanned: String,
    pub leaks: Vec<LeakEntry>,
}

/// One leak.
#[derive(Debug, Clone, Serialize)]
pub struct LeakEntry {
    pub finding: String,
    pub rule: String,
    pub severity: Severity,
    pub status: Status,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The inventory key it is, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<crate::finding::Commit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::finding::Verification>,
    pub first_seen: String,
}

/// An anomaly (or a watch or usage finding) with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyView {
    pub finding: String,
    pub rule: String,
    pub severity: Severity,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub message: String,
    /// The evidence, flattened to `name: value` lines.
    pub evidence: Vec<EvidenceLine>,
}

/// One line of a finding's evidence (`transfer.amount`: `9500.0`).
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceLine {
    pub name: String,
    pub value: String,
}

/// A key's usage by the hour, for the chart.
#[derive(Debug, Clone, Serialize)]
pub struct UsageChart {
    /// What the evidence is (`proxy events`, `usage store`).
    pub source: String,
    pub hours: Vec<HourPoint>,
    /// Anomalies of the key inside the chart's window.
    pub anomalies: Vec<AnomalyMark>,
    pub calls: u64,
    pub errors: u64,
    pub writes: u64,
    /// The busiest hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak: Option<HourPoint>,
}

/// An anomaly's window on a chart.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyMark {
    pub finding: String,
    pub rule: String,
    pub start: String,
    pub end: String,
}
