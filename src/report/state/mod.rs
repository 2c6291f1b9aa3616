//! `awxguard report`: the current state from the store, as one typed model ([`StateReport`]),
//! rendered as HTML (`html.rs`, a self-contained page with inline SVG charts), JSON (the model
//! serialized) or text for a terminal (`human.rs`). The job only reads: the findings and their
//! lifecycle, the keys as the last audit saw them (`store::keys`), the usage evidence
//! (`usage.rs`), the watch's objects and the proxy's record of who made them (`blast/`). The
//! model is in `model.rs`; key sections in `keys.rs`; leaks by repository in `leaks.rs`.
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
mod keys;
mod leaks;
pub mod model;
pub mod usage;

use keys::{bare_key, key_finding, key_sections};
use leaks::leaks_by_repository;
pub use model::*;

use crate::clock::Clock;
use crate::config::Config;
use crate::finding::{Finding, Severity, Status};
use crate::store::{KeyRecord, Store, StoreError, StoredFinding};
use blast::BlastRadius;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use usage::{KeyNames, UsageSource};

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
    let usage = usage::ProxyEvents::load_all(store, config, clock.now())?;
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
