//! `awxguard report`: the current state from the store, as one typed model ([`StateReport`]),
//! rendered as HTML (`html.rs`, a self-contained page with inline SVG charts), JSON (the model
//! serialized) or text for a terminal (`human.rs`). The job only reads: the findings and their
//! lifecycle, the keys as the last audit saw them (`store::keys`), the usage evidence
//! (`usage.rs`), the watch's objects and the proxy's record of who made them (`blast.rs`).
//!
//! What it holds: an overview (keys by risk, open findings by severity, what is new and what
//! was resolved since `--since`), one section per key (kind, scopes declared and effective,
//! environment, owner, age and rotation, IP whitelist, last use, verification, its findings with
//! their recommendation and replacement key, its usage by the hour), the leaks by repository
//! with the commit that introduced each, the anomalies with their evidence, and for every leaked
//! key its blast radius: one timeline from the exposure to now, ending with what to do.

pub mod blast;
pub mod chart;
pub mod html;
pub mod human;
pub mod usage;

use crate::clock::Clock;
use crate::config::Config;
use crate::finding::{Finding, Severity, Status};
use crate::store::{KeyRecord, Store, StoreError, StoredFinding};
use blast::BlastRadius;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use usage::{HourPoint, KeyNames, UsageSource};

/// What to report on.
#[derive(Debug, Clone, Default)]
pub struct StateRequest {
    /// What counts as new or resolved (default: 7 days before now).
    pub since: Option<DateTime<Utc>>,
    /// Only this key (an inventory name or a fingerprint).
    pub key: Option<String>,
}

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no key {name:?} in the inventory or the store (known: {known})")]
    UnknownKey { name: String, known: String },
}

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

/// The key row the audit stored (`inventory::KeyRow` as JSON), read tolerantly: what the
/// report shows and nothing it does not.
#[derive(Debug, Clone, Default, Deserialize)]
struct ObservedKey {
    #[serde(default)]
    declared: bool,
    environment: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    scope_count: usize,
    owner: Option<String>,
    purpose: Option<String>,
    integration: Option<String>,
    created: Option<NaiveDate>,
    rotated: Option<NaiveDate>,
    #[serde(default)]
    ip_whitelist: Vec<String>,
    last_used: Option<DateTime<Utc>>,
    status: Option<String>,
    permissions: Option<Vec<String>>,
    effective: Option<String>,
    login_detail: Option<String>,
    fingerprint: Option<String>,
    storage: Option<ObservedStorage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ObservedStorage {
    /// `"env"`, or the inventory's `{"type": "file", "path": ...}` / `{"type": "env", "var": ...}`.
    source: Option<serde_json::Value>,
}

impl ObservedStorage {
    /// Where the secret is kept, in words: `file /etc/payvy.key`, `env PAYVY_KEY`.
    fn describe(&self) -> Option<String> {
        match self.source.as_ref()? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => {
                let kind = o.get("type").and_then(|v| v.as_str()).unwrap_or("stored");
                let at = ["path", "var", "name"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(|v| v.as_str()));
                Some(match at {
                    Some(at) => format!("{kind} {at}"),
                    None => kind.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// How far back the usage charts reach at most.
const MAX_CHART_DAYS: i64 = 31;

/// Rules whose findings are anomalies (shown with their evidence in their own section).
pub fn is_anomaly(rule: &str) -> bool {
    ["anomaly.", "watch.", "usage.", "proxy."]
        .iter()
        .any(|p| rule.starts_with(p))
}

/// Rules whose findings are leaks.
pub fn is_leak(rule: &str) -> bool {
    rule.starts_with("leak.") || rule == "privilege.key-leaked"
}

/// Whether a finding is part of the current state: open, acknowledged, or resolved since
/// `since`.
fn shown(s: &StoredFinding, since: &str) -> bool {
    match s.finding.status {
        Some(Status::Resolved) => s.resolved_at.as_deref().is_some_and(|r| r >= since),
        _ => true,
    }
}

fn open(s: &StoredFinding) -> bool {
    matches!(s.finding.status, Some(Status::New) | Some(Status::Open))
}

/// Makes the report from the store. Read-only; no network.
pub fn run(
    req: &StateRequest,
    config: &Config,
    clock: &dyn Clock,
    store: &dyn Store,
) -> Result<StateReport, StateError> {
    let usage = usage::ProxyEvents::load(store)?;
    build(req, config, clock, store, &usage)
}

/// Makes the report from the store and the given usage evidence.
pub fn build(
    req: &StateRequest,
    config: &Config,
    clock: &dyn Clock,
    store: &dyn Store,
    usage: &dyn UsageSource,
) -> Result<StateReport, StateError> {
    let now = clock.now();
    let since_t = req.since.unwrap_or(now - Duration::days(7));
    let since = crate::store::ts(since_t);
    let stored: Vec<StoredFinding> = store
        .list(None, now)?
        .into_iter()
        .filter(|s| shown(s, &since))
        .collect();
    let records = store.keys()?;
    let mut notes = Vec::new();

    // Keys: declared ones in config order, then what the audit saw, then what findings name.
    let mut keys = key_sections(config, &records, now);
    if records.is_empty() && !config.keys.is_empty() {
        notes.push(
            "no audit recorded yet: effective permissions, verification and storage are unknown \
             (run `awxguard audit` on this database)"
                .into(),
        );
    }
    let by_fp: HashMap<String, String> = keys
        .iter()
        .filter_map(|k| k.fingerprint.clone().map(|f| (f, k.name.clone())))
        .collect();
    let key_of = |f: &Finding| -> Option<String> {
        if let Some(k) = &f.key {
            return Some(by_fp.get(k).cloned().unwrap_or_else(|| k.clone()));
        }
        f.secret
            .as_ref()
            .and_then(|s| by_fp.get(&s.fingerprint).cloned())
    };
    for s in &stored {
        if let Some(k) = &s.finding.key {
            let name = key_of(&s.finding).unwrap_or_else(|| k.clone());
            if !keys.iter().any(|x| x.name == name) && !is_anomaly(&s.finding.rule) {
                keys.push(bare_key(&name));
            }
        }
    }

    // Findings per key.
    let mut leaked_keys: Vec<String> = Vec::new();
    for k in keys.iter_mut() {
        let mut mine: Vec<&StoredFinding> = stored
            .iter()
            .filter(|s| key_of(&s.finding).as_deref() == Some(k.name.as_str()))
            .collect();
        mine.sort_by(|a, b| a.finding.sort_key().cmp(&b.finding.sort_key()));
        k.findings = mine.iter().map(|s| key_finding(s)).collect();
        k.risk = mine
            .iter()
            .filter(|s| open(s))
            .map(|s| s.finding.severity)
            .max();
        k.leaked = mine.iter().any(|s| open(s) && is_leak(&s.finding.rule));
        if k.leaked {
            leaked_keys.push(k.name.clone());
        }
        // Verification from a scan, when it is newer than the audit's.
        for s in &mine {
            if let (Some(v), true) = (s.finding.verification, is_leak(&s.finding.rule)) {
                let newer = k
                    .verification
                    .as_ref()
                    .is_none_or(|kv| kv.observed_at < s.last_seen);
                if newer {
                    k.verification = Some(KeyVerification {
                        status: v.as_str().into(),
                        observed_at: s.last_seen.clone(),
                        by: "scan".into(),
                        detail: None,
                    });
                }
            }
        }
        // Last used: the newer of the audit's evidence and the usage evidence.
        let names = KeyNames {
            name: &k.name,
            fingerprint: k.fingerprint.as_deref(),
        };
        if let Some(t) = usage.last_used(names) {
            let t = crate::store::ts(t);
            if k.last_used.as_ref().is_none_or(|l| *l < t) {
                k.last_used = Some(t);
            }
        }
    }

    // Usage charts.
    let chart_from = since_t
        .max(now - Duration::days(MAX_CHART_DAYS))
        .min(now - Duration::days(1));
    for k in keys.iter_mut() {
        let names = KeyNames {
            name: &k.name,
            fingerprint: k.fingerprint.as_deref(),
        };
        let hours = usage.hourly(names, chart_from, now);
        let (calls, errors, writes) = hours.iter().fold((0, 0, 0), |a, h| {
            (a.0 + h.calls, a.1 + h.errors, a.2 + h.writes)
        });
        if calls == 0 {
            continue;
        }
        let window_start = hours.first().map(|h| h.at.clone()).unwrap_or_default();
        let anomalies = stored
            .iter()
            .filter(|s| key_of(&s.finding).as_deref() == Some(k.name.as_str()))
            .filter(|s| is_anomaly(&s.finding.rule))
            .filter_map(|s| {
                let f = &s.finding;
                let start = f.start.clone()?;
                let end = f.end.clone().unwrap_or_else(|| start.clone());
                (end >= window_start).then(|| AnomalyMark {
                    finding: f.id.clone(),
                    rule: f.rule.clone(),
                    start,
                    end,
                })
            })
            .collect();
        let peak = hours.iter().max_by_key(|h| h.calls).cloned();
        k.usage = Some(UsageChart {
            source: usage.label().into(),
            hours,
            anomalies,
            calls,
            errors,
            writes,
            peak,
        });
    }

    // Leaks by repository.
    let leaks = leaks_by_repository(&stored, &key_of);

    // Anomalies.
    let mut anomalies: Vec<AnomalyView> = stored
        .iter()
        .filter(|s| is_anomaly(&s.finding.rule))
        .map(|s| {
            let f = &s.finding;
            AnomalyView {
                finding: f.id.clone(),
                rule: f.rule.clone(),
                severity: f.severity,
                status: f.status.unwrap_or(Status::Open),
                key: key_of(f),
                start: f.start.clone(),
                end: f.end.clone(),
                message: f.message.clone(),
                evidence: f
                    .evidence
                    .as_ref()
                    .map(crate::alert::render::evidence_lines)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| EvidenceLine { name, value })
                    .collect(),
            }
        })
        .collect();
    anomalies.sort_by(|a, b| {
        (std::cmp::Reverse(a.severity), &a.start, &a.finding).cmp(&(
            std::cmp::Reverse(b.severity),
            &b.start,
            &b.finding,
        ))
    });

    // Blast radius of every leaked key.
    let mut blast_radius = Vec::new();
    for name in &leaked_keys {
        let k = keys.iter().find(|k| &k.name == name).expect("listed");
        blast_radius.push(blast::build(
            k, &stored, &key_of, usage, store, config, now,
        )?);
    }

    // Only one key, when asked.
    if let Some(want) = &req.key {
        let name = by_fp.get(want).cloned().unwrap_or_else(|| want.clone());
        if !keys.iter().any(|k| k.name == name) {
            return Err(StateError::UnknownKey {
                name: want.clone(),
                known: keys
                    .iter()
                    .map(|k| k.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        keys.retain(|k| k.name == name);
        blast_radius.retain(|b| b.key == name);
        anomalies.retain(|a| a.key.as_deref() == Some(name.as_str()));
        let mut leaks = leaks.clone();
        for r in &mut leaks {
            r.leaks.retain(|l| l.key.as_deref() == Some(name.as_str()));
        }
        leaks.retain(|r| !r.leaks.is_empty());
        let stored: Vec<StoredFinding> = stored
            .into_iter()
            .filter(|s| key_of(&s.finding).as_deref() == Some(name.as_str()))
            .collect();
        return Ok(assemble(
            req,
            now,
            since,
            keys,
            leaks,
            anomalies,
            blast_radius,
            stored,
            usage,
            notes,
        ));
    }
    Ok(assemble(
        req,
        now,
        since,
        keys,
        leaks,
        anomalies,
        blast_radius,
        stored,
        usage,
        notes,
    ))
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    req: &StateRequest,
    now: DateTime<Utc>,
    since: String,
    keys: Vec<KeySection>,
    leaks: Vec<RepositoryLeaks>,
    anomalies: Vec<AnomalyView>,
    blast_radius: Vec<BlastRadius>,
    stored: Vec<StoredFinding>,
    usage: &dyn UsageSource,
    mut notes: Vec<String>,
) -> StateReport {
    let open_n = stored.iter().filter(|s| open(s)).count();
    let open_by_severity = Severity::ALL
        .iter()
        .map(|&sev| SeverityCount {
            severity: sev,
            count: stored
                .iter()
                .filter(|s| open(s) && s.finding.severity == sev)
                .count(),
        })
        .collect();
    let mut keys_by_risk: Vec<KeyRisk> = keys
        .iter()
        .map(|k| {
            let top = k
                .findings
                .iter()
                .filter(|f| matches!(f.status, Status::New | Status::Open))
                .max_by_key(|f| f.severity);
            KeyRisk {
                key: k.name.clone(),
                risk: k.risk,
                open: k
                    .findings
                    .iter()
                    .filter(|f| matches!(f.status, Status::New | Status::Open))
                    .count(),
                leaked: k.leaked,
                top_rule: top.map(|f| f.rule.clone()),
            }
        })
        .collect();
    keys_by_risk.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.risk),
            !a.leaked,
            std::cmp::Reverse(a.open),
            &a.key,
        )
            .cmp(&(
                std::cmp::Reverse(b.risk),
                !b.leaked,
                std::cmp::Reverse(b.open),
                &b.key,
            ))
    });
    let fref = |s: &StoredFinding| FindingRef {
        id: s.finding.id.clone(),
        rule: s.finding.rule.clone(),
        severity: s.finding.severity,
        key: s.finding.key.clone(),
        message: s.finding.message.clone(),
        status: s.finding.status.unwrap_or(Status::Open),
        first_seen: s.first_seen.clone(),
        resolved_at: s.resolved_at.clone(),
    };
    let mut sorted: Vec<&StoredFinding> = stored.iter().collect();
    sorted.sort_by(|a, b| a.finding.sort_key().cmp(&b.finding.sort_key()));
    let new_since = sorted
        .iter()
        .filter(|s| s.first_seen >= since && s.finding.status != Some(Status::Resolved))
        .map(|s| fref(s))
        .collect();
    let resolved_since = sorted
        .iter()
        .filter(|s| s.finding.status == Some(Status::Resolved))
        .map(|s| fref(s))
        .collect();
    if usage.events() == 0 {
        notes.push(
            "no usage evidence in the store: run the integration through `awxguard proxy` on \
             this database to chart its calls"
                .into(),
        );
    } else if !usage.has_baseline() {
        notes.push(format!(
            "usage charts are drawn from the {}; the learned baseline band appears once the \
             usage evidence store holds the keys' history",
            usage.label()
        ));
    }
    StateReport {
        version: 1,
        tool: "awxguard".into(),
        kind: "state".into(),
        generated_at: crate::store::ts(now),
        since,
        key: req.key.clone(),
        overview: Overview {
            keys: keys.len(),
            open_findings: open_n,
            open_by_severity,
            keys_by_risk,
            new_since,
            resolved_since,
            evidence: EvidenceInfo {
                source: usage.label().into(),
                events: usage.events(),
                baseline: usage.has_baseline(),
            },
        },
        keys,
        leaks,
        anomalies,
        blast_radius,
        findings: sorted.iter().map(|s| s.finding.clone()).collect(),
        notes,
    }
}

/// A key that only findings name.
fn bare_key(name: &str) -> KeySection {
    KeySection {
        name: name.into(),
        declared: false,
        environment: None,
        kind: None,
        scopes_declared: Vec::new(),
        scopes_summary: "unknown (not in the inventory)".into(),
        permissions: None,
        effective: None,
        owner: None,
        purpose: None,
        integration: None,
        created: None,
        age_days: None,
        rotated: None,
        rotated_days_ago: None,
        ip_whitelist: Vec::new(),
        last_used: None,
        verification: None,
        fingerprint: name.starts_with("sha256:").then(|| name.to_string()),
        storage: None,
        risk: None,
        leaked: false,
        findings: Vec::new(),
        usage: None,
    }
}

fn scopes_summary(kind: Option<&str>, scopes: &[String], count: usize) -> String {
    match kind {
        Some("custom") => match scopes.len() {
            1 => "custom: 1 scope".into(),
            n => format!("custom: {n} scopes"),
        },
        Some("admin") => format!("admin: every scope ({count})"),
        Some("read_write") => format!("read_write: every scope ({count})"),
        Some("read_only") => format!("read_only: every read scope ({count})"),
        Some(other) => other.to_string(),
        None => "unknown".into(),
    }
}

/// The key sections: the declared keys (config), with what the last audit observed; then the
/// keys only the audit saw (undeclared).
fn key_sections(config: &Config, records: &[KeyRecord], now: DateTime<Utc>) -> Vec<KeySection> {
    let today = now.date_naive();
    let observed: HashMap<&str, (ObservedKey, &KeyRecord)> = records
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                (serde_json::from_value(r.row.clone()).unwrap_or_default(), r),
            )
        })
        .collect();
    let catalog = crate::airwallex::Catalog::builtin_ref();
    let mut out = Vec::new();
    let section = |name: &str,
                   o: Option<&(ObservedKey, &KeyRecord)>,
                   decl: Option<&crate::config::KeyDecl>| {
        let ob = o.map(|(ob, _)| ob.clone()).unwrap_or_default();
        let environment = decl
            .map(|d| d.environment.as_str().to_string())
            .or(ob.environment.clone());
        let kind = decl
            .map(|d| d.kind.as_str().to_string())
            .or(ob.kind.clone());
        let scopes: Vec<String> = decl.map(|d| d.scopes.clone()).unwrap_or(ob.scopes.clone());
        let count = match decl {
            Some(d) => crate::airwallex::tier_scopes(d.kind, &d.scopes, catalog).len(),
            None => ob.scope_count,
        };
        let created = decl.and_then(|d| d.created).or(ob.created);
        let rotated = decl.and_then(|d| d.rotated).or(ob.rotated);
        KeySection {
            name: name.to_string(),
            declared: decl.is_some() || ob.declared,
            scopes_summary: scopes_summary(kind.as_deref(), &scopes, count),
            environment,
            kind,
            scopes_declared: scopes,
            permissions: ob.permissions.clone(),
            effective: ob.effective.clone(),
            owner: decl.and_then(|d| d.owner.clone()).or(ob.owner.clone()),
            purpose: decl.and_then(|d| d.purpose.clone()).or(ob.purpose.clone()),
            integration: decl
                .and_then(|d| d.integration.clone())
                .or(ob.integration.clone()),
            created,
            age_days: created.map(|c| (today - c).num_days()),
            rotated,
            rotated_days_ago: rotated.map(|r| (today - r).num_days()),
            ip_whitelist: decl
                .map(|d| d.ip_whitelist.clone())
                .unwrap_or(ob.ip_whitelist.clone()),
            last_used: ob.last_used.map(crate::store::ts),
            verification: o.map(|(ob, r)| KeyVerification {
                status: ob.status.clone().unwrap_or_else(|| "unverified".into()),
                observed_at: r.observed_at.clone(),
                by: r.source.clone(),
                detail: ob.login_detail.clone(),
            }),
            fingerprint: o.and_then(|(ob, r)| ob.fingerprint.clone().or(r.fingerprint.clone())),
            storage: ob.storage.as_ref().and_then(ObservedStorage::describe),
            risk: None,
            leaked: false,
            findings: Vec::new(),
            usage: None,
        }
    };
    for d in &config.keys {
        out.push(section(&d.name, observed.get(d.name.as_str()), Some(d)));
    }
    for r in records {
        if !config.keys.iter().any(|d| d.name == r.name) {
            out.push(section(&r.name, observed.get(r.name.as_str()), None));
        }
    }
    out
}

fn key_finding(s: &StoredFinding) -> KeyFinding {
    let f = &s.finding;
    let rec = f.recommendation.as_ref();
    KeyFinding {
        id: f.id.clone(),
        rule: f.rule.clone(),
        severity: f.severity,
        status: f.status.unwrap_or(Status::Open),
        message: f.message.clone(),
        first_seen: s.first_seen.clone(),
        last_seen: s.last_seen.clone(),
        action: rec.map(|r| r.action),
        steps: rec.map(|r| r.steps.clone()).unwrap_or_default(),
        replacement: rec
            .and_then(|r| r.replacement.clone())
            .and_then(|v| serde_json::from_value(v).ok()),
        also: f.also.clone(),
    }
}

/// The repository a scan scope names (`scan:git:/srv/app` → `/srv/app`).
fn repository_of(scope: &str) -> (String, String) {
    if let Some(r) = scope.strip_prefix("scan:git:") {
        // A range scan: `scan:git:/srv/app:main..HEAD`.
        let repo = match r.rfind(':') {
            Some(i) if r[i + 1..].contains("..") => &r[..i],
            _ => r,
        };
        (repo.to_string(), "git history".into())
    } else if let Some(r) = scope.strip_prefix("scan:tree:") {
        (r.to_string(), "working tree".into())
    } else {
        (scope.to_string(), scope.to_string())
    }
}

fn leaks_by_repository(
    stored: &[StoredFinding],
    key_of: &dyn Fn(&Finding) -> Option<String>,
) -> Vec<RepositoryLeaks> {
    let mut repos: BTreeMap<(String, String), Vec<LeakEntry>> = BTreeMap::new();
    for s in stored
        .iter()
        .filter(|s| s.finding.rule.starts_with("leak."))
    {
        let f = &s.finding;
        let (repo, scanned) = repository_of(&s.scope);
        repos.entry((repo, scanned)).or_default().push(LeakEntry {
            finding: f.id.clone(),
            rule: f.rule.clone(),
            severity: f.severity,
            status: f.status.unwrap_or(Status::Open),
            path: f.path.clone().unwrap_or_default(),
            line: f.line,
            key: key_of(f),
            preview: f.secret.as_ref().map(|s| s.preview.clone()),
            fingerprint: f.secret.as_ref().map(|s| s.fingerprint.clone()),
            commit: f.commit.clone(),
            verification: f.verification,
            first_seen: s.first_seen.clone(),
        });
    }
    repos
        .into_iter()
        .map(|((repository, scanned), mut leaks)| {
            leaks.sort_by(|a, b| {
                (
                    std::cmp::Reverse(a.severity),
                    a.commit.as_ref().map(|c| c.date.clone()),
                    &a.path,
                    a.line,
                )
                    .cmp(&(
                        std::cmp::Reverse(b.severity),
                        b.commit.as_ref().map(|c| c.date.clone()),
                        &b.path,
                        b.line,
                    ))
            });
            RepositoryLeaks {
                repository,
                scanned,
                leaks,
            }
        })
        .collect()
}

/// Parses `--since`: a date (`2026-11-17`), an RFC 3339 time, or an age (`7d`, `12h`).
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    if let Ok(d) = crate::config::parse_duration(s) {
        return Ok(now - Duration::from_std(d).unwrap_or(Duration::zero()));
    }
    Err(format!(
        "{s:?} is not a date: write 2026-11-17, 2026-11-17T09:00:00Z or an age such as 7d or 12h"
    ))
}

/// Renders `report` into the file at `path` through the redaction gate: written beside it and
/// renamed into place (owner-only when new), so a failure leaves the previous report whole.
pub fn write_file(
    report: &StateReport,
    format: super::Format,
    style: super::Style,
    paper: html::Paper,
    path: &std::path::Path,
) -> Result<(), crate::files::FileError> {
    let mut buf = Vec::with_capacity(64 << 10);
    super::render_state(report, format, style, paper, &mut buf).map_err(|source| {
        crate::files::FileError::Write {
            path: path.to_path_buf(),
            existed: path.exists(),
            source,
        }
    })?;
    crate::files::write_atomic(path, &buf, 0o600)
}
