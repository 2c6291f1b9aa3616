//! The audit job (`awxguard audit`, later the daemon): the inventory gathered (logins,
//! discovery, leak scan, usage evidence), leaks the scanner recorded linked to their keys, the
//! privilege rules, the findings recorded in the store. A key that cannot be examined (secret
//! unreadable, Airwallex unreachable) is named in the notes and the audit goes on with the
//! others. Also the inventory listing job, whose discovery findings are judged by the same rules.

use super::{evaluate, LeakFact, PrivilegeRules};
use crate::clock::Clock;
use crate::config::Config;
use crate::finding::{Finding, Status};
use crate::inventory::facts::input;
use crate::inventory::{
    gather, rows, DiscoverOutcome, GatherError, GatherRequest, Gathered, Inventory, KeyFacts,
    KeyRow, VerifyStats, API_KEY_RULE,
};
use crate::rules::RuleError;
use crate::scan::Problem;
use crate::store::{Observation, RecordSummary, Store, StoreError};
use crate::usage::AnomalyWindow;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// What to audit, beyond the config's `[audit]` section and `[[key]]` tables.
#[derive(Debug, Clone, Default)]
pub struct AuditRequest {
    /// Usage-event files or directories, beyond `[audit] usage`.
    pub usage: Vec<PathBuf>,
    /// Judge the declared facts only: no logins.
    pub no_verify: bool,
    /// Paths to search for stored keys, beyond `[audit] discover`.
    pub discover: Vec<PathBuf>,
    /// Source trees and repositories to search for leaked keys.
    pub scan: Vec<PathBuf>,
    /// Privilege rule directories, beyond `[audit] rules`.
    pub privilege_rules: Vec<PathBuf>,
    /// Record the findings in the store (lifecycle) and link the leaks the scanner recorded.
    pub record: bool,
}

/// Why the audit could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "no keys to audit: add [[key]] tables to {} (see examples/awxguard.toml) or give \
         --discover PATH",
        .0.display()
    )]
    NoKeys(PathBuf),
    #[error(
        "no keys declared: add [[key]] tables to {} (see examples/awxguard.toml)",
        .0.display()
    )]
    NoKeysDeclared(PathBuf),
    #[error("cannot load the privilege rules")]
    Rules(#[source] RuleError),
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error("cannot read the scanner's findings")]
    Leaks(#[source] StoreError),
    #[error("cannot record the findings")]
    Store(#[source] StoreError),
    #[error("recording needs a store")]
    NoStore,
    #[error("the audit stopped: {0}")]
    Panicked(String),
}

/// The usage evidence the audit read, in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceSummary {
    pub sources: usize,
    pub keys: usize,
    pub rejected: u64,
}

/// The summary's `audit` section.
#[derive(Debug, Clone, Serialize)]
pub struct AuditSummary {
    pub keys: usize,
    pub declared: usize,
    pub undeclared: usize,
    pub verification: Option<VerifyStats>,
    pub discovery: Option<DiscoverOutcome>,
    pub leak_scan: Option<DiscoverOutcome>,
    pub evidence: Option<EvidenceSummary>,
    pub store: Option<RecordSummary>,
    /// Milliseconds per step.
    pub timings_ms: BTreeMap<String, u64>,
}

/// An earlier finding this audit could not re-check: it did not look where the finding was
/// seen, so the finding stays open (never resolved by a run that looked elsewhere).
#[derive(Debug, Clone, Serialize)]
pub struct Unchecked {
    #[serde(flatten)]
    pub finding: Finding,
    /// The inputs that observed it and this run did not look at.
    pub not_looked_at: Vec<String>,
    /// What would look there again.
    pub how: Vec<String>,
}

/// What the audit found, with its typed summary sections.
#[derive(Debug, Clone)]
pub struct AuditReport {
    pub findings: Vec<Finding>,
    pub audit: AuditSummary,
    /// Every key as the inventory lists it.
    pub keys: Vec<KeyRow>,
    /// What the last audit found and a run that looked at the same inputs no longer finds
    /// (status `resolved`, with its `resolution`).
    pub resolved: Vec<Finding>,
    /// What an earlier audit found and this one could not re-check: still open.
    pub not_rechecked: Vec<Unchecked>,
    /// Inputs that could not be read; the audit went on without them.
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
}

fn config_path(config: &Config) -> PathBuf {
    config
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuditError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuditError::Panicked(e.to_string()))
}

/// Runs the audit. `store` is needed when `req.record` is set.
pub async fn run(
    req: AuditRequest,
    config: &Config,
    clock: &dyn Clock,
    store: Option<Arc<dyn Store>>,
) -> Result<AuditReport, AuditError> {
    let now = clock.now();
    let store = match (req.record, store) {
        (true, None) => return Err(AuditError::NoStore),
        (true, s) => s,
        (false, _) => None,
    };
    let mut discover = config.audit.discover.clone();
    discover.extend(req.discover.iter().cloned());
    if config.keys.is_empty() && discover.is_empty() && req.scan.is_empty() {
        return Err(AuditError::NoKeys(config_path(config)));
    }
    let rules_started = std::time::Instant::now();
    let mut rule_dirs = config.audit.rule_dirs.clone();
    rule_dirs.extend(req.privilege_rules.iter().cloned());
    let rules = PrivilegeRules::load(&rule_dirs, &config.audit.disable, &config.audit.params)
        .map_err(AuditError::Rules)?;
    let rules_ms = rules_started.elapsed().as_millis() as u64;
    let mut usage = config.audit.usage.clone();
    usage.extend(req.usage.iter().cloned());
    // Open anomalies: their calls are not evidence of need.
    let anomalies = match &store {
        Some(st) => {
            let st = st.clone();
            blocking(move || open_anomalies(st.as_ref(), now))
                .await?
                .map_err(AuditError::Leaks)?
        }
        None => Vec::new(),
    };
    let discover_roots = discover.clone();
    let g = gather(
        &GatherRequest {
            verify: !req.no_verify,
            discover,
            leaks: req.scan.clone(),
            usage,
            anomalies,
        },
        config,
        now,
    )
    .await?;
    let mut timings = g.timings.clone();
    timings.insert("rules".into(), rules_ms);
    let keys_store = store.clone();

    let config_path = config.path.clone();
    let scan_roots = req.scan.clone();
    // Linking, evaluating and recording are CPU and database work: one blocking step.
    let (g, facts, mut findings, recorded, timings) = blocking(move || {
        let mut g = g;
        if let Some(st) = &store {
            link_leaks(&mut g.inventory, st.as_ref(), now).map_err(AuditError::Leaks)?;
        }
        let started = std::time::Instant::now();
        let facts = g.inventory.facts();
        let mut findings = evaluate(&facts, g.evidence.as_ref(), &g.catalog, &rules, now);
        timings.insert("evaluate".into(), started.elapsed().as_millis() as u64);
        let started = std::time::Instant::now();
        let looked = looked_at(
            config_path.as_deref(),
            &facts,
            &g,
            &scan_roots,
            &discover_roots,
            store.is_some(),
        );
        let recorded = match &store {
            Some(store) => {
                let r = store
                    .record_observed("audit", &looked, &mut findings, now)
                    .map_err(AuditError::Store)?;
                timings.insert("store".into(), started.elapsed().as_millis() as u64);
                Some(r)
            }
            None => None,
        };
        Ok::<_, AuditError>((g, facts, findings, recorded, timings))
    })
    .await??;
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let declared = facts.iter().filter(|f| f.declared).count();
    let (store_summary, resolved, not_rechecked) = match recorded {
        Some(r) => (Some(r.summary), r.resolved, r.not_rechecked),
        None => (None, Vec::new(), Vec::new()),
    };
    let mut notes = Vec::new();
    for f in &resolved {
        notes.push(format!(
            "resolved since the last audit ({}): {} {} ({})",
            f.resolution.map(|r| r.as_str()).unwrap_or("fixed"),
            f.rule,
            f.key.as_deref().unwrap_or("-"),
            f.short_id()
        ));
    }
    let not_rechecked: Vec<Unchecked> = not_rechecked
        .into_iter()
        .map(|n| Unchecked {
            how: n.unseen.iter().map(|i| input::how_to_look(i)).collect(),
            not_looked_at: n.unseen,
            finding: n.finding,
        })
        .collect();
    for u in &not_rechecked {
        let f = &u.finding;
        notes.push(format!(
            "not re-checked, still open: {} {} ({}, {}): it was seen through {}, which this \
             audit did not look at; {} re-checks it",
            f.rule,
            f.key.as_deref().unwrap_or("-"),
            f.short_id(),
            f.severity,
            u.not_looked_at.join(", "),
            u.how.join(" and ")
        ));
    }
    notes.extend(g.history_notes.iter().cloned());
    let mut problems = Vec::new();
    for d in [&g.discover, &g.leak_scan].into_iter().flatten() {
        problems.extend(d.problems.iter().cloned());
    }
    match &g.evidence {
        Some(ev) => {
            if ev.rejected > 0 {
                notes.push(format!(
                    "{} usage-event lines rejected (see below); every valid line was used",
                    ev.rejected
                ));
            }
            notes.extend(ev.problems.iter().cloned());
        }
        None => notes
            .push("no usage evidence given (--usage FILE|DIR): usage rules are not judged".into()),
    }
    notes.extend(g.inventory.problems());
    notes.extend(allowed_host_notes(g.verify.as_ref()));
    let keys = rows(&g, now);
    if let Some(st) = keys_store {
        let records = key_records(&keys, now);
        blocking(move || st.save_keys("audit", &records))
            .await?
            .map_err(AuditError::Store)?;
    }
    Ok(AuditReport {
        keys,
        audit: AuditSummary {
            keys: facts.len(),
            declared,
            undeclared: facts.len() - declared,
            verification: g.verify,
            discovery: g.discover,
            leak_scan: g.leak_scan,
            evidence: g.evidence.as_ref().map(|e| EvidenceSummary {
                sources: e.sources.len(),
                keys: e.keys.len(),
                rejected: e.rejected,
            }),
            store: store_summary,
            timings_ms: timings,
        },
        findings,
        resolved,
        not_rechecked,
        problems,
        notes,
    })
}

/// What this audit looked at (resolution by observation): the config, each key's secret
/// reference that resolved, each login that answered, the usage sources read, the leak-scan
/// roots (and the histories scanned), the discovery roots, and the leaks the scanner recorded
/// (when there is a store to read them from).
fn looked_at(
    config_path: Option<&std::path::Path>,
    facts: &[KeyFacts],
    g: &Gathered,
    scan_roots: &[PathBuf],
    discover_roots: &[PathBuf],
    store: bool,
) -> Observation {
    let mut looked: BTreeSet<String> = BTreeSet::new();
    looked.extend(config_path.map(input::config));
    for f in facts {
        looked.extend(f.config_input());
        if f.fingerprint.is_some() {
            looked.extend(f.secret_input());
        }
        if f.login_answered() {
            looked.insert(f.login_input());
        }
    }
    if let Some(ev) = &g.evidence {
        looked.extend(ev.inputs.iter().cloned());
    }
    looked.extend(scan_roots.iter().map(|r| input::scan_tree(r)));
    looked.extend(g.history.iter().map(|r| input::scan_git(r)));
    looked.extend(discover_roots.iter().map(|r| input::discover(r)));
    if store {
        looked.insert(input::STORED_SCAN.to_string());
    }
    Observation::of(looked)
}

/// The open anomaly findings in the store (status new or open: acknowledged ones were judged
/// acceptable), as windows of their key.
fn open_anomalies(store: &dyn Store, now: DateTime<Utc>) -> Result<Vec<AnomalyWindow>, StoreError> {
    let parse = |s: Option<&str>| {
        s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    Ok(store
        .list(None, now)?
        .into_iter()
        .map(|s| s.finding)
        .filter(|f| f.rule.starts_with("anomaly."))
        .filter(|f| matches!(f.status, Some(Status::New | Status::Open)))
        .filter_map(|f| {
            Some(AnomalyWindow {
                start: parse(f.start.as_deref())?,
                end: parse(f.end.as_deref())?,
                key: f.key.clone()?,
                rule: f.rule.clone(),
                id: f.id.clone(),
            })
        })
        .collect())
}

/// The keys as this audit saw them, for the store (the report reads them: it never logs in).
fn key_records(keys: &[KeyRow], now: DateTime<Utc>) -> Vec<crate::store::KeyRecord> {
    keys.iter()
        .map(|k| crate::store::KeyRecord {
            name: k.name.clone(),
            fingerprint: k.fingerprint.clone(),
            source: "audit".into(),
            observed_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            row: serde_json::to_value(k).unwrap_or_default(),
        })
        .collect()
}

/// A note per `[airwallex] allow_hosts` host that keys were sent to.
fn allowed_host_notes(verify: Option<&VerifyStats>) -> Vec<String> {
    verify
        .map(|v| {
            v.allowed_hosts
                .iter()
                .map(|h| {
                    format!(
                        "keys were sent to {h}, a host [airwallex] allow_hosts lets keys go to \
                         (not Airwallex's own)"
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Leaks the scanner recorded (`awxguard scan --record`, scopes `scan:...`, not resolved)
/// become the `leaks` of the inventory key with the same fingerprint.
fn link_leaks(
    inv: &mut Inventory,
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stored = store.list(None, now)?;
    for s in stored.into_iter().filter(|s| s.scope.starts_with("scan")) {
        let f = &s.finding;
        if f.rule != API_KEY_RULE || f.status == Some(Status::Resolved) {
            continue;
        }
        let (Some(secret), Some(path)) = (&f.secret, &f.path) else {
            continue;
        };
        if let Some(e) = inv.by_fingerprint_mut(&secret.fingerprint) {
            if e.facts.leaks.iter().any(|l| l.finding_id == f.id) {
                continue;
            }
            e.facts.leaks.push(LeakFact {
                rule: f.rule.clone(),
                path: path.clone(),
                line: f.line,
                commit: f.commit.as_ref().map(|c| c.id.clone()),
                finding_id: f.id.clone(),
                source: crate::inventory::facts::input::STORED_SCAN.to_string(),
            });
        }
    }
    Ok(())
}

/// What `awxguard inventory` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryMode {
    /// The declared keys; never logs in.
    List,
    /// One login per key.
    Verify,
    /// Search these config directories and env files for keys.
    Discover(Vec<PathBuf>),
}

/// An inventory listing.
#[derive(Debug, Clone)]
pub struct InventoryRequest {
    pub mode: InventoryMode,
    /// Usage evidence for the "last used" column, beyond `[audit] usage`.
    pub usage: Vec<PathBuf>,
}

/// The listing with its typed summary sections.
#[derive(Debug, Clone)]
pub struct InventoryReport {
    /// `inventory`, `inventory verify` or `inventory discover`.
    pub command: &'static str,
    /// Discovery's findings (shadow keys, declared keys in plain text); none for the listing.
    pub findings: Vec<Finding>,
    pub keys: Vec<KeyRow>,
    pub verification: Option<VerifyStats>,
    pub discovery: Option<DiscoverOutcome>,
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
    /// Whether usage evidence was given (the "last used" column says "no evidence" then).
    pub evidence: bool,
    /// Remarks a key table does not show per key: the evidence's rejected lines, hosts from
    /// `[airwallex] allow_hosts` that received keys.
    pub table_notes: Vec<String>,
}

/// The checks `inventory discover` reports as findings: what discovery itself establishes.
const DISCOVERY_CHECKS: &[super::Check] =
    &[super::Check::ShadowKey, super::Check::SecretInPlaintextFile];

/// Lists the inventory (see `InventoryMode`).
pub async fn inventory(
    req: InventoryRequest,
    config: &Config,
    clock: &dyn Clock,
) -> Result<InventoryReport, AuditError> {
    let now = clock.now();
    if config.keys.is_empty() && !matches!(req.mode, InventoryMode::Discover(_)) {
        return Err(AuditError::NoKeysDeclared(config_path(config)));
    }
    let mut usage = config.audit.usage.clone();
    usage.extend(req.usage.iter().cloned());
    let (command, verify, discover) = match &req.mode {
        InventoryMode::List => ("inventory", false, Vec::new()),
        InventoryMode::Verify => ("inventory verify", true, Vec::new()),
        InventoryMode::Discover(paths) => ("inventory discover", false, paths.clone()),
    };
    let g = gather(
        &GatherRequest {
            verify,
            discover,
            leaks: Vec::new(),
            usage,
            anomalies: Vec::new(),
        },
        config,
        now,
    )
    .await?;
    let findings = if matches!(req.mode, InventoryMode::Discover(_)) {
        discovery_findings(config, &g, now)?
    } else {
        Vec::new()
    };
    let mut notes = Vec::new();
    let mut table_notes = g
        .evidence
        .as_ref()
        .map(|ev| ev.problems.clone())
        .unwrap_or_default();
    table_notes.extend(allowed_host_notes(g.verify.as_ref()));
    notes.extend(g.evidence.iter().flat_map(|ev| ev.problems.iter().cloned()));
    notes.extend(g.inventory.problems());
    notes.extend(allowed_host_notes(g.verify.as_ref()));
    Ok(InventoryReport {
        command,
        findings,
        keys: rows(&g, now),
        problems: g
            .discover
            .as_ref()
            .map(|d| d.problems.clone())
            .unwrap_or_default(),
        verification: g.verify,
        discovery: g.discover,
        notes,
        evidence: g.evidence.is_some(),
        table_notes,
    })
}

/// The discovery findings (shadow keys, declared keys found in plain text), judged by the
/// privilege rules in force (config rule directories, disabled ids and overrides apply).
fn discovery_findings(
    config: &Config,
    g: &Gathered,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, AuditError> {
    let mut rules = PrivilegeRules::load(
        &config.audit.rule_dirs,
        &config.audit.disable,
        &config.audit.params,
    )
    .map_err(AuditError::Rules)?;
    rules.rules.retain(|r| DISCOVERY_CHECKS.contains(&r.check));
    let facts: Vec<KeyFacts> = g.inventory.facts();
    Ok(evaluate(&facts, None, &g.catalog, &rules, now))
}
