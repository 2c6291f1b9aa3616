//! The usage jobs: `ingest` (read sources into the evidence store, prune by retention, detect
//! over everything stored and record the anomalies through the one `record` path), `anomalies`
//! (the stored ones), `stats` (what the store holds per key), `chart` (a key's hourly series
//! with its expected value and band, for reports) and `stored_evidence` (the audit's evidence
//! from the store).
//!
//! Detection is a pure function of the stored events: each ingest judges every key over its
//! whole stored history, so the open anomalies are the same whether the events came at once, in
//! daily pieces or shuffled. An anomaly stays open while its window ended less than `quiet` before
//! the newest stored event; after that it is left out and the store resolves it `aged-out`.

use super::detect::{
    self, baseline_of, AnomalyRules, DetectOptions, KeyBaseline, KeyDecl, SampleFilter, Signal,
};
use super::ingest::{inputs, Input};
use super::reader::{self, Batch};
use super::{Evidence, KeyUsage, RouteUsage, SourceSpan, UsageError};
use crate::airwallex::Catalog;
use crate::clock::Clock;
use crate::config::Config;
use crate::finding::{Finding, Severity, Status};
use crate::rules::RuleError;
use crate::store::usage_series::{AttrKind, KeySeries};
use crate::store::{
    Appended, KeyHoldings, Pruned, RecordSummary, SampleQuery, Store, StoreError, UsageEvent,
};
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

fn secs(d: std::time::Duration) -> i64 {
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
    let catalog = Catalog::builtin();
    let u = &config.usage;
    let started = std::time::Instant::now();
    let mut out = IngestOutcome::default();
    let max_ts = now + Duration::seconds(secs(u.max_future));
    let mut newest = store.usage_newest()?;
    // raw events past retention are pruned as the newest event moves (a day at a time), so a
    // long backfill never holds more than the retention on disk
    let mut pruned_at = newest;
    let mut pruned = Pruned::default();
    for input in inputs(paths)? {
        let name = match &input {
            Input::Stdin => "<stdin>".to_string(),
            Input::File(p) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
        };
        let shown = input.name();
        let mut sum = SourceSummary {
            source: shown.clone(),
            ..SourceSummary::default()
        };
        let (file, plan) = match &input {
            Input::Stdin => (None, None),
            Input::File(p) => {
                let mut f = super::ingest::open_events(p).map_err(|source| UsageError::Read {
                    path: p.clone(),
                    source,
                })?;
                let by_path = store.usage_cursor(&name)?;
                let plan = reader::plan(
                    &mut f,
                    by_path.as_ref(),
                    |dev, ino| store.usage_cursor_by_file(dev, ino).ok().flatten(),
                    |h, n| store.usage_cursor_by_head(h, n).ok().flatten(),
                )
                .map_err(|source| UsageError::Read {
                    path: p.clone(),
                    source,
                })?;
                (Some(f), Some(plan))
            }
        };
        sum.note = plan.as_ref().and_then(|p| p.note.clone());
        let res = reader::read(&input, file, plan.as_ref(), &name, |b: Batch| {
            let Batch {
                events,
                rejected,
                rejected_count,
                lines,
                cursor,
            } = b;
            sum.lines += lines;
            sum.rejected += rejected_count;
            for m in rejected {
                if out.problems.len() < super::ingest::MAX_PROBLEMS {
                    // messages name the source as the user gave it
                    out.problems.push(m.replacen(&name, &shown, 1));
                }
            }
            let mut keep: Vec<UsageEvent> = Vec::with_capacity(events.len());
            for mut e in events {
                if e.ts > max_ts {
                    sum.future += 1;
                    if out.problems.len() < super::ingest::MAX_PROBLEMS {
                        out.problems.push(format!(
                            "{shown}: an event of {} stamped {} is more than {}s in the future \
                             (clock skew?): rejected",
                            e.key,
                            e.ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            secs(u.max_future)
                        ));
                    }
                    continue;
                }
                if let Some(n) = newest {
                    if e.ts < n - Duration::seconds(secs(u.rollup_retention)) {
                        sum.too_old += 1;
                        continue;
                    }
                }
                e.method.make_ascii_uppercase();
                keep.push(e);
            }
            sum.events += keep.len() as u64;
            let a: Appended = store.append_usage(&keep, &catalog, cursor.as_ref())?;
            sum.new += a.new;
            sum.duplicates += a.duplicates;
            if let Some(l) = a.last {
                let l = Utc.timestamp_opt(l, 0).single().unwrap_or(now);
                newest = Some(newest.map_or(l, |n| n.max(l)));
            }
            if let Some(n) = newest {
                if pruned_at.is_none_or(|p| n - p >= Duration::days(1)) {
                    let p = store.usage_prune(
                        n - Duration::seconds(secs(u.raw_retention)),
                        n - Duration::seconds(secs(u.rollup_retention)),
                    )?;
                    pruned.raw_events += p.raw_events;
                    pruned.hours += p.hours;
                    pruned.values += p.values;
                    pruned_at = Some(n);
                }
            }
            Ok::<(), StoreError>(())
        });
        match res {
            Ok(()) => {}
            Err(e) => return Err(e.into_usage(&shown).map(UsageJobError::Store)?),
        }
        out.summary.lines += sum.lines;
        out.summary.events += sum.events;
        out.summary.new += sum.new;
        out.summary.duplicates += sum.duplicates;
        out.summary.rejected += sum.rejected;
        out.summary.future += sum.future;
        out.summary.too_old += sum.too_old;
        out.summary.sources.push(sum);
    }
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

/// The usage evidence the store holds, as the audit reads it (`None` when it holds none).
pub fn stored_evidence(store: &dyn Store) -> Result<Option<Evidence>, StoreError> {
    let names = store.usage_key_names()?;
    if names.is_empty() {
        return Ok(None);
    }
    let to_t = |s: i64| Utc.timestamp_opt(s, 0).single().unwrap_or_default();
    let mut ev = Evidence::default();
    let mut first = i64::MAX;
    let mut last = i64::MIN;
    for name in names {
        let ks = store.usage_key_series(&name)?;
        if ks.events == 0 {
            continue;
        }
        first = first.min(ks.first);
        last = last.max(ks.last);
        ev.events += ks.events;
        let count = |kind: AttrKind| -> BTreeMap<String, u64> {
            ks.attrs_of(kind)
                .map(|(v, a)| (v.to_string(), a.calls))
                .collect()
        };
        let mut routes = BTreeMap::new();
        for (r, a) in ks.attrs_of(AttrKind::Route) {
            let (method, template) = r.split_once(' ').unwrap_or(("", r));
            routes.insert(
                r.to_string(),
                RouteUsage {
                    method: method.to_string(),
                    template: template.to_string(),
                    scope: a.scope.clone(),
                    count: a.calls,
                    first_seen: to_t(a.first),
                    last_seen: to_t(a.last),
                    ok: a.ok,
                },
            );
        }
        let u = KeyUsage {
            key: name.clone(),
            events: ks.events,
            first_seen: to_t(ks.first),
            last_seen: to_t(ks.last),
            coverage_start: to_t(ks.first),
            routes,
            scopes_used: ks
                .attrs_of(AttrKind::Scope)
                .filter_map(|(s, a)| a.accepted_last.map(|t| (s.to_string(), to_t(t))))
                .collect(),
            source_ips: count(AttrKind::SourceIp),
            user_agents: count(AttrKind::UserAgent),
            hosts: count(AttrKind::Host),
            statuses: ks
                .attrs_of(AttrKind::Status)
                .filter_map(|(s, a)| s.parse::<u16>().ok().map(|s| (s, a.calls)))
                .collect(),
            account_ids: count(AttrKind::Account),
        };
        ev.keys.insert(name, u);
    }
    if first <= last {
        ev.sources.push(SourceSpan {
            name: "the usage evidence store".into(),
            first: to_t(first),
            last: to_t(last),
            events: ev.events,
        });
        // the store covers every key from its first stored event
        for u in ev.keys.values_mut() {
            u.coverage_start = to_t(first);
        }
    }
    Ok(Some(ev))
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
