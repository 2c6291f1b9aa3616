//! The usage jobs: `ingest` (read sources into the evidence store, prune by retention, detect
//! over everything stored and record the anomalies through the one `record` path), `anomalies`
//! (the stored ones), `stats` (what the store holds per key), `chart` (a key's hourly series
//! with its expected value and band, for reports) and `stored_evidence` (the audit's evidence
//! from the store).
//!
//! Detection is a pure function of the stored events: each ingest judges every key over its
//! whole stored history, so the open anomalies are the same whether the events came at once, in
//! daily pieces or shuffled. A finding stays open while its window ended less than `quiet` before
//! the newest stored event; after that it is left out and the store resolves it: an anomaly
//! (`anomaly.*`, an incident) `aged-out`, a rule-like `usage.*` finding (calls from outside the
//! whitelist, needing an undeclared scope, of an unknown key) `fixed`: the calls stopped
//! (`Resolution::for_rule`, findings contract).

use super::detect::{
    self, baseline_of, AnomalyRules, DetectOptions, KeyBaseline, KeyDecl, SampleFilter, Signal,
};
use super::pipeline::{self, Stored};
pub use super::stored::stored_evidence;
use super::UsageError;
use crate::airwallex::Catalog;
use crate::clock::Clock;
use crate::config::Config;
use crate::finding::{Finding, Severity, Status};
use crate::rules::RuleError;
use crate::store::usage_series::KeySeries;
use crate::store::{KeyHoldings, Pruned, RecordSummary, SampleQuery, Store, StoreError};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// The store scope usage findings are recorded under.
pub const SCOPE: &str = "usage";

/// Why a usage job could not do its job (a bad line is not this: it is counted and reported).
#[derive(Debug, thiserror::Error)]
pub enum UsageJobError {
    #[error(transparent)]
    Read(#[from] UsageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot load the anomaly rules: {0}")]
    Rules(#[from] RuleError),
    #[error(
        "no usage source given: name files or directories (or - for standard input), or set \
         [usage] sources in the config"
    )]
    NoSources,
    #[error("the usage job failed: {0}")]
    Internal(String),
}

/// What to ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestRequest {
    /// Files, directories, `-` for standard input; empty: `[usage] sources`.
    pub inputs: Vec<PathBuf>,
    /// Fingerprints of declared keys (`sha256:...` → name), so events filed under a key's
    /// fingerprint are judged with its name's (resolved by the caller from the inventory).
    pub fingerprints: BTreeMap<String, String>,
}

/// What one source gave.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceSummary {
    pub source: String,
    /// Resumed, unchanged, rotated, truncated, a copy of another source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub lines: u64,
    pub events: u64,
    pub new: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Stamped further in the future than `[usage] max_future`: rejected as clock skew.
    pub future: u64,
    /// Older than the rollup retention (back from the newest stored event): not stored.
    pub too_old: u64,
}

/// The `usage` section of an ingest report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    pub sources: Vec<SourceSummary>,
    pub lines: u64,
    pub events: u64,
    pub new: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub future: u64,
    pub too_old: u64,
    /// The newest stored event: retention counts back from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
    pub pruned: Pruned,
    /// Which baseline each key is on.
    pub keys: Vec<KeyBaseline>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<RecordSummary>,
    pub timings_ms: BTreeMap<String, u64>,
}

/// What an ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    pub summary: IngestSummary,
    /// The open anomalies (and rule-like usage findings), with their stored status.
    pub findings: Vec<Finding>,
    /// Findings this run resolved (aged out).
    pub resolved: Vec<Finding>,
    /// `file:line: what is wrong`, capped.
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// The anomaly rules in force.
pub fn rules(config: &Config) -> Result<AnomalyRules, RuleError> {
    let u = &config.usage;
    AnomalyRules::load(&u.rule_dirs, &u.disable, &u.params)
}

/// The declared keys as the rule-like checks see them.
pub fn declared(
    config: &Config,
    fingerprints: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> Vec<KeyDecl> {
    config
        .keys
        .iter()
        .map(|k| {
            let scopes: Option<BTreeSet<String>> = match k.kind {
                crate::airwallex::KeyKind::Custom | crate::airwallex::KeyKind::ReadOnly => Some(
                    crate::airwallex::tier_scopes(k.kind, &k.scopes, catalog)
                        .into_iter()
                        .collect(),
                ),
                _ => None,
            };
            let allowed_routes = scopes
                .as_ref()
                .map(|s| detect::usage_checks::allowed_routes(catalog, s))
                .unwrap_or_default();
            KeyDecl {
                name: k.name.clone(),
                fingerprint: fingerprints
                    .iter()
                    .find(|(_, n)| **n == k.name)
                    .map(|(f, _)| f.clone()),
                ip_whitelist: k
                    .ip_whitelist
                    .iter()
                    .filter_map(|w| {
                        w.parse::<ipnet::IpNet>()
                            .ok()
                            .or_else(|| w.parse::<std::net::IpAddr>().ok().map(Into::into))
                    })
                    .collect(),
                scopes,
                allowed_routes,
            }
        })
        .collect()
}

pub(super) fn secs(d: std::time::Duration) -> i64 {
    d.as_secs() as i64
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UsageJobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UsageJobError::Internal(e.to_string()))
}

/// Reads the sources into the store, prunes, detects and records (see the module comment).
pub async fn ingest(
    req: IngestRequest,
    config: &Config,
    clock: &dyn Clock,
    store: Arc<dyn Store>,
) -> Result<IngestOutcome, UsageJobError> {
    let now = clock.now();
    let rules = rules(config)?;
    let paths = if req.inputs.is_empty() {
        config.usage.sources.clone()
    } else {
        req.inputs.clone()
    };
    if paths.is_empty() {
        return Err(UsageJobError::NoSources);
    }
    let config = config.clone();
    blocking(move || ingest_blocking(&req, &paths, &config, &rules, now, store)).await?
}

fn ingest_blocking(
    req: &IngestRequest,
    paths: &[PathBuf],
    config: &Config,
    rules: &AnomalyRules,
    now: DateTime<Utc>,
    store: Arc<dyn Store>,
) -> Result<IngestOutcome, UsageJobError> {
    let u = &config.usage;
    let started = std::time::Instant::now();
    let mut out = IngestOutcome::default();
    let Stored { newest, mut pruned } =
        pipeline::read_and_store(paths, config, now, store.as_ref(), &mut out)?;
    out.summary.timings_ms.insert(
        "read_and_store".into(),
        started.elapsed().as_millis() as u64,
    );
    let started = std::time::Instant::now();
    if let Some(n) = newest {
        let p = store.usage_prune(
            n - Duration::seconds(secs(u.raw_retention)),
            n - Duration::seconds(secs(u.rollup_retention)),
        )?;
        pruned.raw_events += p.raw_events;
        pruned.hours += p.hours;
        pruned.values += p.values;
        out.summary.pruned = pruned;
        out.summary.newest = Some(n.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    out.summary
        .timings_ms
        .insert("prune".into(), started.elapsed().as_millis() as u64);
    if out.summary.rejected > 0 {
        out.notes.push(format!(
            "{} line{} rejected (see problems); every valid line was stored",
            out.summary.rejected,
            if out.summary.rejected == 1 { "" } else { "s" }
        ));
    }
    if out.summary.future > 0 {
        out.notes.push(format!(
            "{} event{} stamped more than {}s in the future rejected as clock skew; they do not \
             move the retention point",
            out.summary.future,
            if out.summary.future == 1 { "" } else { "s" },
            secs(u.max_future)
        ));
    }
    if out.summary.too_old > 0 {
        out.notes.push(format!(
            "{} event{} older than the rollup retention ({} days before the newest stored event) \
             not stored",
            out.summary.too_old,
            if out.summary.too_old == 1 { "" } else { "s" },
            secs(u.rollup_retention) / 86_400
        ));
    }
    for s in &out.summary.sources {
        if let Some(n) = &s.note {
            out.notes.push(format!("{}: {n}", s.source));
        }
    }
    // detect over everything stored, and record
    let started = std::time::Instant::now();
    let found = detect_stored(store.as_ref(), config, rules, &req.fingerprints)?;
    out.summary
        .timings_ms
        .insert("detect".into(), started.elapsed().as_millis() as u64);
    out.summary.keys = found.keys;
    let started = std::time::Instant::now();
    let mut findings = found.findings;
    let recorded = store.record(SCOPE, &mut findings, now)?;
    out.summary
        .timings_ms
        .insert("record".into(), started.elapsed().as_millis() as u64);
    out.summary.store = Some(recorded.summary);
    out.resolved = recorded.resolved;
    out.findings = findings;
    for k in &out.summary.keys {
        if let Some(until) = &k.learning_until {
            out.notes.push(format!(
                "{}: learning until {until} (rates compared with its busiest hour so far, new \
                 networks, agents, routes and hours not judged yet)",
                k.key
            ));
        }
    }
    Ok(out)
}

/// What detection over the store found.
#[derive(Debug, Clone, Default)]
pub struct StoredDetection {
    /// Folded findings still open (not quiet for `[usage] quiet`), with sample events.
    pub findings: Vec<Finding>,
    pub keys: Vec<KeyBaseline>,
}

/// Judges every key the store holds (see the module comment).
pub fn detect_stored(
    store: &dyn Store,
    config: &Config,
    rules: &AnomalyRules,
    fingerprints: &BTreeMap<String, String>,
) -> Result<StoredDetection, UsageJobError> {
    let u = &config.usage;
    let catalog = Catalog::builtin();
    let Some(newest) = store.usage_newest()? else {
        return Ok(StoredDetection::default());
    };
    let newest = newest.timestamp();
    let decls = declared(config, fingerprints, &catalog);
    let opts = DetectOptions {
        watermark: Some(newest - secs(u.lateness)),
        declared: decls.clone(),
        fold_gap: secs(u.fold_gap).max(1),
    };
    let active = store.usage_active_days()?;
    // a key filed under its fingerprint is judged with its name's events
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in store.usage_key_names()? {
        let name = fingerprints.get(&k).cloned().unwrap_or_else(|| k.clone());
        groups.entry(name).or_default().push(k);
    }
    let mut signals: Vec<Signal> = Vec::new();
    let mut keys = Vec::new();
    for (name, stored) in &groups {
        let mut ks = KeySeries::new(name);
        for s in stored {
            ks.merge(&store.usage_key_series(s)?);
        }
        ks.key = name.clone();
        let (mut sig, b) = detect::detect_key(&ks, &active, rules, &opts);
        for s in sig.iter_mut() {
            let samples = samples(store, stored, s, u.samples)?;
            if let Some(o) = s.evidence.as_object_mut() {
                o.insert("samples".into(), samples.into());
            }
        }
        signals.extend(sig);
        keys.push(b);
    }
    let mut findings = detect::fold::fold(&signals, secs(u.fold_gap).max(1));
    // quiet anomalies age out
    let quiet_before = newest - secs(u.quiet);
    findings.retain(|f| {
        f.end
            .as_deref()
            .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
            .is_none_or(|e| e.timestamp() >= quiet_before)
    });
    Ok(StoredDetection { findings, keys })
}

fn samples(
    store: &dyn Store,
    stored_keys: &[String],
    s: &Signal,
    limit: usize,
) -> Result<Vec<serde_json::Value>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let q = match &s.samples {
        SampleFilter::Any => SampleQuery::Any,
        SampleFilter::Network { cidr, via_proxy } => SampleQuery::Network {
            cidr: cidr.clone(),
            via_proxy: *via_proxy,
        },
        SampleFilter::UserAgent { family } => SampleQuery::UserAgent {
            family: family.clone(),
        },
        SampleFilter::Route { route } => SampleQuery::Route {
            route: route.clone(),
        },
        SampleFilter::Scope { scope } => SampleQuery::Scope {
            scope: scope.clone(),
        },
        SampleFilter::Errors => SampleQuery::Errors,
        SampleFilter::Writes => SampleQuery::Writes,
    };
    let mut out = Vec::new();
    for k in stored_keys {
        out.extend(store.usage_samples(k, s.start, s.end.max(s.start + 1), &q, limit)?);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    Ok(out)
}

/// Which stored anomalies to list.
#[derive(Debug, Clone, Default)]
pub struct AnomaliesRequest {
    /// Only anomalies whose window ends at or after this.
    pub since: Option<DateTime<Utc>>,
    pub key: Option<String>,
    /// Resolved ones too.
    pub all: bool,
}

/// The stored usage findings (see `AnomaliesRequest`), most severe first.
pub async fn anomalies(
    req: AnomaliesRequest,
    clock: &dyn Clock,
    store: Arc<dyn Store>,
) -> Result<Vec<Finding>, UsageJobError> {
    let now = clock.now();
    let stored = blocking(move || store.list(Some(SCOPE), now)).await??;
    let mut out: Vec<Finding> = stored
        .into_iter()
        .map(|s| s.finding)
        .filter(|f| req.all || f.status != Some(Status::Resolved))
        .filter(|f| {
            req.key
                .as_deref()
                .is_none_or(|k| f.key.as_deref() == Some(k))
        })
        .filter(|f| {
            req.since.is_none_or(|since| {
                f.end
                    .as_deref()
                    .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
                    .is_some_and(|e| e.to_utc() >= since)
            })
        })
        .collect();
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    Ok(out)
}

/// One key in `usage stats`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStats {
    #[serde(flatten)]
    pub holdings: KeyHoldings,
    pub first_seen: String,
    pub last_seen: String,
    pub baseline: KeyBaseline,
    /// Days without any call between the first and last call, as `from..to` dates.
    pub silent: Vec<String>,
}

/// What the store holds.
#[derive(Debug, Clone, Serialize)]
pub struct StatsOutcome {
    pub keys: Vec<KeyStats>,
    /// The newest stored event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
    /// Days between the first and last stored day without any event of any key (gaps in the
    /// evidence), as `from..to` dates.
    pub gaps: Vec<String>,
}

fn day_text(d: i64) -> String {
    Utc.timestamp_opt(d * 86_400, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn range_text((a, b): (i64, i64)) -> String {
    if a == b {
        day_text(a)
    } else {
        format!("{}..{}", day_text(a), day_text(b))
    }
}

/// What the store holds per key (optionally one key).
pub async fn stats(
    key: Option<String>,
    config: &Config,
    store: Arc<dyn Store>,
) -> Result<StatsOutcome, UsageJobError> {
    let rules = rules(config)?;
    blocking(move || {
        let mut keys = Vec::new();
        for h in store.usage_holdings()? {
            if key.as_deref().is_some_and(|k| k != h.key) {
                continue;
            }
            let ks = store.usage_key_series(&h.key)?;
            keys.push(KeyStats {
                first_seen: detect::rfc3339(h.first),
                last_seen: detect::rfc3339(h.last),
                baseline: baseline_of(&ks, &rules),
                silent: h.silent.iter().copied().map(range_text).collect(),
                holdings: h,
            });
        }
        let days = store.usage_active_days()?;
        let mut gaps = Vec::new();
        let mut prev: Option<i64> = None;
        for d in &days {
            if let Some(p) = prev {
                if d - p > 1 {
                    gaps.push(range_text((p + 1, d - 1)));
                }
            }
            prev = Some(*d);
        }
        Ok(StatsOutcome {
            keys,
            newest: store
                .usage_newest()?
                .map(|n| n.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            gaps,
        })
    })
    .await?
}

/// A key's hourly series with expected values and bands, for charts (the HTML report).
#[derive(Debug, Clone, Serialize)]
pub struct KeyChart {
    pub key: String,
    pub baseline: KeyBaseline,
    /// Calls per hour (`anomaly.rate-spike`'s baseline).
    pub calls: Vec<detect::rate::ChartPoint>,
    /// Refused and throttled calls per hour (`anomaly.error-burst`'s).
    pub errors: Vec<detect::rate::ChartPoint>,
}

/// The hourly series and baseline band of `key` from the store (the HTML report charts them).
pub fn chart(store: &dyn Store, config: &Config, key: &str) -> Result<KeyChart, UsageJobError> {
    let rules = rules(config)?;
    let ks = store.usage_key_series(key)?;
    let active = store.usage_active_days()?;
    let series = |detector: &str, metric| {
        rules
            .with_detector(detector)
            .next()
            .map(|r| detect::rate::chart(&ks, &active, r, metric))
            .unwrap_or_default()
    };
    Ok(KeyChart {
        key: key.to_string(),
        baseline: baseline_of(&ks, &rules),
        calls: series("rate-spike", detect::rate::Metric::Calls),
        errors: series("error-burst", detect::rate::Metric::Errors),
    })
}

/// The open usage findings of at least `min` severity, per key (for the audit).
pub fn open_anomalies(
    store: &dyn Store,
    now: DateTime<Utc>,
    min: Severity,
) -> Result<BTreeMap<String, Vec<Finding>>, StoreError> {
    let mut out: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    for s in store.list(Some(SCOPE), now)? {
        let f = s.finding;
        if matches!(f.status, Some(Status::New) | Some(Status::Open)) && f.severity >= min {
            if let Some(k) = f.key.clone() {
                out.entry(k).or_default().push(f);
            }
        }
    }
    Ok(out)
}
