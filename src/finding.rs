//! The one unit every capability produces. Its JSON shape is the findings contract (version 1).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Severity, ordered `info < low < medium < high < critical`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}: expected info, low, medium, high or critical"
            )),
        }
    }
}

/// What a login says of a key (findings contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verification {
    /// 201: the key logs in.
    Live,
    /// 401: credentials invalid or expired.
    Revoked,
    /// 403: IP whitelist or permission.
    Forbidden,
    /// Network error, 429 or 5xx after retries.
    Unknown,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Live => "live",
            Verification::Revoked => "revoked",
            Verification::Forbidden => "forbidden",
            Verification::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifecycle of a finding in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    New,
    Open,
    Resolved,
    Acknowledged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Resolved => "resolved",
            Status::Acknowledged => "acknowledged",
        }
    }
}

/// Why a finding was resolved (findings contract, `resolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// A run that looked where the finding was seen no longer sees it.
    Fixed,
    /// An incident (anomaly, money-movement event) quiet for the configured period.
    AgedOut,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Fixed => "fixed",
            Resolution::AgedOut => "aged-out",
        }
    }

    /// How a finding of `rule` ends when a run no longer reports it: an incident (`anomaly.*`,
    /// `watch.*`: something that happened) ages out; a condition (a leak, a setting) is fixed.
    pub fn for_rule(rule: &str) -> Resolution {
        if rule.starts_with("anomaly.") || rule.starts_with("watch.") {
            Resolution::AgedOut
        } else {
            Resolution::Fixed
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Resolution> {
        match s {
            "fixed" => Some(Resolution::Fixed),
            "aged-out" => Some(Resolution::AgedOut),
            _ => None,
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The commit that introduced a blob; `id` is `"staged"` for the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub date: String,
    /// Later commits that carry the same blob (history scans), newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

/// What a finding says of a secret: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub preview: String,
    pub fingerprint: String,
    /// The client ID found next to an API key (public, but shown redacted all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// What to do about a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub action: Action,
    pub steps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Revoke,
    Rotate,
    Narrow,
    Whitelist,
    MoveSecret,
    Investigate,
}

/// One finding, shaped as in the findings contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<Recommendation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Why it was resolved (`fixed`, `aged-out`), when `status` is `resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Rule ids of weaker findings on the same key that this one implies and carries (folding,
    /// findings contract): they are not reported on their own; for an anomaly, the rules of the
    /// other signals of the same incident.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// The inputs that observed it (`scan:tree:/srv/app`, `secret:env:PAYVY_KEY`,
    /// `usage:/var/log/awx`, ...): only a run that looked at all of them can resolve it (the
    /// store keeps them beside the finding). Not part of the contract's JSON.
    #[serde(skip)]
    pub observed_by: Vec<String>,
}

impl Finding {
    /// A finding with its required fields; `id` is derived from the rule and `subject` (the parts
    /// that make the condition the same condition on every run: a path and fingerprint, a key
    /// name, ...).
    pub fn new(
        rule: &str,
        severity: Severity,
        message: impl Into<String>,
        subject: &[&str],
    ) -> Self {
        Finding {
            id: finding_id(rule, subject),
            rule: rule.to_string(),
            severity,
            message: message.into(),
            key: None,
            path: None,
            line: None,
            column: None,
            commit: None,
            secret: None,
            verification: None,
            start: None,
            end: None,
            evidence: None,
            recommendation: None,
            status: None,
            resolution: None,
            also: Vec::new(),
            observed_by: Vec::new(),
        }
    }

    /// The first 8 hex digits of the id: what people read and type (`findings ack 3f9a12c4`).
    pub fn short_id(&self) -> &str {
        self.id.get(..8).unwrap_or(&self.id)
    }

    /// Sort order of every report: most severe first, live keys before others, then by place.
    pub fn sort_key(&self) -> impl Ord + '_ {
        (
            std::cmp::Reverse(self.severity),
            self.verification != Some(Verification::Live),
            self.path.as_deref().unwrap_or(""),
            self.line.unwrap_or(0),
            self.column.unwrap_or(0),
            self.key.as_deref().unwrap_or(""),
            self.rule.as_str(),
            self.id.as_str(),
        )
    }
}

/// Stable id of a finding: the first 16 hex digits of SHA-256 over the rule and its subject.
pub fn finding_id(rule: &str, subject: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    for part in subject {
        h.update([0u8]);
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts of findings per severity, in contract order.
pub fn count_by_severity(findings: &[Finding]) -> BTreeMap<Severity, usize> {
    let mut out = BTreeMap::new();
    for f in findings {
        *out.entry(f.severity).or_insert(0) += 1;
    }
    out
}

/// The one policy that decides failure: exit 1 when a finding is at or above `fail_on`
/// (`info` findings never fail a run), else 0.
pub fn exit_code(findings: &[Finding], fail_on: Severity) -> u8 {
    let threshold = fail_on.max(Severity::Low);
    if findings
        .iter()
        .any(|f| f.severity >= threshold && f.status != Some(Status::Acknowledged))
    {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order() {
        assert!(Severity::Info < Severity::Low);
        assert!(Severity::High < Severity::Critical);
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
    }

    #[test]
    fn exit_code_follows_fail_on() {
        let f = Finding::new("x", Severity::Medium, "m", &["a"]);
        assert_eq!(exit_code(std::slice::from_ref(&f), Severity::Low), 1);
        assert_eq!(exit_code(std::slice::from_ref(&f), Severity::High), 0);
        let i = Finding::new("x", Severity::Info, "m", &["a"]);
        assert_eq!(exit_code(&[i], Severity::Info), 0);
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(finding_id("r", &["a", "b"]), finding_id("r", &["a", "b"]));
        assert_ne!(finding_id("r", &["a", "b"]), finding_id("r", &["ab"]));
    }
}
