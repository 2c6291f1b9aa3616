//! From the outbox to the sinks. `Planner` is what the store asks, inside the recording
//! transaction, which alerts a run queues. `deliver_due` is what the CLI runs at the end of a
//! recording run and the daemon on a timer: queue repeats that fell due, seal due alerts into
//! rendered messages (one per immediate alert, one digest per recipient set), then send every
//! pending delivery whose time has come, once per sink, retrying with backoff while a sink is down.

use super::model::{self, AlertKind, KeyCard};
use super::render::{self, AlertDoc, Group, Item};
use super::sink::{self, SinkError};
use crate::clock::Clock;
use crate::config::{AlertsConfig, Config};
use crate::finding::{Finding, Status};
use crate::store::outbox::process_owner;
use crate::store::{
    AlertPlanner, Delivery, NewMessage, QueueRow, Store, StoreError, StoredFinding,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How long a claim on a delivery holds before another process may take it over (a crashed
/// process on the same host loses its claim at once).
const CLAIM: Duration = Duration::minutes(10);

/// Test hook: abort right after a sink accepted a message and before it is marked sent, to show
/// that the crash window resends once with the same `Message-ID`.
pub const CRASH_AFTER_ACCEPT_ENV: &str = "AWXGUARD_TEST_CRASH_AFTER_ACCEPT";

/// The alert policy as the store's planner.
pub struct Planner {
    cfg: AlertsConfig,
    used: AtomicBool,
}

impl Planner {
    pub fn new(cfg: AlertsConfig) -> Planner {
        Planner {
            cfg,
            used: AtomicBool::new(false),
        }
    }

    /// Whether a run was recorded through this planner (so there may be alerts to deliver).
    pub fn recorded(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }
}

impl AlertPlanner for Planner {
    fn plan(
        &self,
        recorded: &[Finding],
        resolved_alerted: &[Finding],
        now: DateTime<Utc>,
    ) -> Vec<model::QueuedAlert> {
        self.used.store(true, Ordering::Relaxed);
        model::plan_run(&self.cfg, recorded, resolved_alerted, now)
    }
}

/// Installs the alert planner on `store` when `[alerts]` is configured: from then on every run
/// recorded through it queues its alerts.
pub fn install(store: &dyn Store, config: &Config) -> Option<Arc<Planner>> {
    let cfg = config.alerts.as_ref()?;
    let planner = Arc::new(Planner::new(cfg.clone()));
    store.set_alert_planner(Some(planner.clone()));
    Some(planner)
}

/// A delivery a sink accepted.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub alert: String,
    pub sink: String,
    pub subject: String,
    /// What the server said.
    pub reply: String,
}

/// A delivery that did not go through this time (or, in `DeliveryReport::dead`, ever: delivery
/// gave up).
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub alert: String,
    pub sink: String,
    pub subject: String,
    pub error: String,
    pub attempts: i64,
    /// The next attempt; for a dead delivery, when it gave up.
    pub next_attempt_at: DateTime<Utc>,
}

/// What one delivery round did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryReport {
    /// Messages sealed from due queued alerts in this round.
    pub sealed: usize,
    pub sent: Vec<Sent>,
    pub failed: Vec<Failed>,
    /// Deliveries that failed and gave up this round (`[alerts] give_up_after`,
    /// `max_attempts`): dead, never retried.
    pub dead: Vec<Failed>,
    /// Deliveries another live process is sending right now.
    pub busy: usize,
    /// Deliveries not tried this round because their sink had just failed (tried next round).
    pub deferred: usize,
}

/// Errors of a delivery round (a sink that fails is not one: it is retried).
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("alert delivery task failed: {0}")]
    Task(String),
}

/// Delay before attempt `attempts + 1`: `retry_base` doubling per attempt, at most `retry_max`.
pub fn backoff(cfg: &AlertsConfig, attempts: u32) -> Duration {
    let base = cfg.retry_base.as_millis() as i64;
    let max = cfg.retry_max.as_millis() as i64;
    let factor = 1i64 << attempts.saturating_sub(1).min(30);
    Duration::milliseconds(base.saturating_mul(factor).min(max.max(base)))
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn item(s: &StoredFinding) -> Item {
    Item {
        finding: s.finding.clone(),
        first_seen: parse_ts(&s.first_seen),
        last_seen: parse_ts(&s.last_seen),
    }
}

/// Queues the repeats that fell due and seals every due queued alert into a message with one
/// pending delivery per configured sink. Synchronous (store and rendering); the daemon may call
/// it from a blocking thread on its own schedule.
pub fn prepare_due(
    store: &dyn Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let Some(cfg) = config.alerts.as_ref() else {
        return Ok(0);
    };
    let standing = store.standing_alerted(now)?;
    let repeats = model::plan_repeats(cfg, &standing, now);
    if !repeats.is_empty() {
        store.queue_alerts(&repeats, now)?;
    }
    let due = store.waiting_alerts(Some(now))?;
    if due.is_empty() {
        return Ok(0);
    }
    let stored: HashMap<String, StoredFinding> = store
        .list(None, now)?
        .into_iter()
        .map(|s| (s.finding.id.clone(), s))
        .collect();
    let titles = super::titles(config);
    let sinks: Vec<String> = sink::from_config(cfg)
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    let mut sealed = 0;
    let mut digests: BTreeMap<Vec<String>, Vec<(String, Group)>> = BTreeMap::new();
    for QueueRow { alert: row, .. } in due {
        let items: Vec<Item> = row
            .finding_ids
            .iter()
            .filter_map(|id| stored.get(id))
            .filter(|s| match row.kind {
                AlertKind::Resolved => s.finding.status == Some(Status::Resolved),
                _ => matches!(s.finding.status, Some(Status::New) | Some(Status::Open)),
            })
            .map(item)
            .collect();
        let refs: Vec<&Finding> = items.iter().map(|i| &i.finding).collect();
        let key = KeyCard::build(&row.key, &config.keys, &refs);
        let to = model::recipients(cfg, key.owner.as_deref(), row.severity);
        if items.is_empty() {
            // Acknowledged or resolved meanwhile: nothing left to say.
            store.seal(&NewMessage {
                id: row.id.clone(),
                kind: row.kind,
                subject: String::new(),
                document: "{}".into(),
                created_at: now,
                rows: vec![row.id.clone()],
                sinks: Vec::new(),
            })?;
            continue;
        }
        let group = Group { key, items };
        if row.kind == AlertKind::Digest {
            digests.entry(to).or_default().push((row.id, group));
            continue;
        }
        let doc = render::build(row.kind, &row.id, vec![group], to, cfg, &titles, now);
        seal(store, &doc, vec![row.id], &sinks, now)?;
        sealed += 1;
    }
    for (to, parts) in digests {
        let rows: Vec<String> = parts.iter().map(|(id, _)| id.clone()).collect();
        let id = model::alert_id(AlertKind::Digest, &to.join(","), &rows, now);
        // One section per key, whatever runs queued it.
        let mut groups: Vec<Group> = Vec::new();
        for (_, g) in parts {
            match groups.iter_mut().find(|x| x.key.name == g.key.name) {
                Some(x) => {
                    for i in g.items {
                        if !x.items.iter().any(|y| y.finding.id == i.finding.id) {
                            x.items.push(i);
                        }
                    }
                }
                None => groups.push(g),
            }
        }
        let doc = render::build(AlertKind::Digest, &id, groups, to, cfg, &titles, now);
        seal(store, &doc, rows, &sinks, now)?;
        sealed += 1;
    }
    Ok(sealed)
}

fn seal(
    store: &dyn Store,
    doc: &AlertDoc,
    rows: Vec<String>,
    sinks: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.seal(&NewMessage {
        id: doc.id.clone(),
        kind: doc.kind,
        subject: doc.subject.clone(),
        document: serde_json::to_string(doc).expect("alert documents serialize"),
        created_at: now,
        rows,
        sinks: sinks.to_vec(),
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, DeliverError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DeliverError::Task(e.to_string()))?
        .map_err(DeliverError::from)
}

/// Whether a delivery that just failed for the `attempts`-th time gives up: older than
/// `give_up_after` since its message was sealed, or out of `max_attempts`.
pub fn gives_up(
    cfg: &AlertsConfig,
    attempts: i64,
    sealed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let too_old = cfg.give_up_after.is_some_and(|age| {
        now.signed_duration_since(sealed_at) >= Duration::from_std(age).unwrap_or(Duration::MAX)
    });
    let too_many = cfg
        .max_attempts
        .is_some_and(|max| attempts >= i64::from(max));
    too_old || too_many
}

/// What happened to one delivery.
enum Outcome {
    Sent(Sent),
    Failed(Failed),
    Dead(Failed),
    Busy,
    Deferred,
}

/// One delivery round: prepares what is due (`prepare_due`), then sends each pending delivery
/// whose attempt is due, once per sink. Sinks go side by side (a stalled SMTP server does not
/// hold up the webhook or the files); within a sink, deliveries go in order, and after one fails
/// the rest of that sink's wait for the next round. A failed delivery is retried after
/// `backoff`; one past `give_up_after` or `max_attempts` is marked dead and logged as an error
/// (the alert of last resort); one that a sink accepts is marked sent and never sent again.
pub async fn deliver_due(
    store: Arc<dyn Store>,
    config: &Config,
    clock: &dyn Clock,
) -> Result<DeliveryReport, DeliverError> {
    let mut report = DeliveryReport::default();
    let Some(cfg) = config.alerts.clone() else {
        return Ok(report);
    };
    let now = clock.now();
    let (s, c) = (store.clone(), config.clone());
    report.sealed = blocking(move || prepare_due(s.as_ref(), &c, now)).await?;
    let s = store.clone();
    let due: Vec<Delivery> = blocking(move || s.deliveries_due(now)).await?;
    if due.is_empty() {
        return Ok(report);
    }
    let sinks = sink::from_config(&cfg);
    let owner = process_owner();
    // One queue per sink name, in the outbox's order.
    let mut queues: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    for d in due {
        queues.entry(d.sink.clone()).or_default().push(d);
    }
    let lanes = queues.into_values().map(|queue| {
        let (store, cfg, owner, sinks) = (store.clone(), &cfg, &owner, &sinks);
        async move {
            let mut out = Vec::new();
            let mut sink_failed = false;
            for d in queue {
                if sink_failed {
                    out.push(Ok(Outcome::Deferred));
                    continue;
                }
                let sink = sinks.iter().find(|s| s.name() == d.sink);
                let o = deliver_one(
                    store.clone(),
                    cfg,
                    sink.map(|s| s.as_ref()),
                    d,
                    owner,
                    clock,
                )
                .await;
                sink_failed = matches!(o, Ok(Outcome::Failed(_)) | Ok(Outcome::Dead(_)));
                out.push(o);
            }
            out
        }
    });
    for o in futures_util::future::join_all(lanes)
        .await
        .into_iter()
        .flatten()
    {
        match o? {
            Outcome::Sent(s) => report.sent.push(s),
            Outcome::Failed(f) => report.failed.push(f),
            Outcome::Dead(f) => report.dead.push(f),
            Outcome::Busy => report.busy += 1,
            Outcome::Deferred => report.deferred += 1,
        }
    }
    Ok(report)
}

/// Claims, sends and marks one delivery.
async fn deliver_one(
    store: Arc<dyn Store>,
    cfg: &AlertsConfig,
    sink: Option<&dyn sink::Sink>,
    d: Delivery,
    owner: &str,
    clock: &dyn Clock,
) -> Result<Outcome, DeliverError> {
    let now = clock.now();
    let (s, o, m, k) = (
        store.clone(),
        owner.to_string(),
        d.message_id.clone(),
        d.sink.clone(),
    );
    let claimed = blocking(move || s.claim_delivery(&m, &k, &o, now, now + CLAIM)).await?;
    if !claimed {
        return Ok(Outcome::Busy);
    }
    let result = match sink {
        None => Err(SinkError::Setup(format!(
            "sink {} is no longer configured in [alerts]",
            d.sink
        ))),
        Some(sink) => match serde_json::from_str::<AlertDoc>(&d.document) {
            Ok(doc) => sink.send(&doc).await,
            Err(e) => Err(SinkError::Setup(format!("stored alert unreadable: {e}"))),
        },
    };
    // The sink's answer is recorded at the time it came.
    let at = clock.now();
    let e = match result {
        Ok(receipt) => {
            if std::env::var_os(CRASH_AFTER_ACCEPT_ENV).is_some() {
                std::process::abort();
            }
            let (s, m, k, r) = (
                store.clone(),
                d.message_id.clone(),
                d.sink.clone(),
                receipt.reply.clone(),
            );
            blocking(move || s.mark_sent(&m, &k, &r, at)).await?;
            tracing::info!(alert = %d.message_id, sink = %d.sink, reply = %receipt.reply, "alert delivered");
            return Ok(Outcome::Sent(Sent {
                alert: d.message_id,
                sink: d.sink,
                subject: d.subject,
                reply: receipt.reply,
            }));
        }
        Err(e) => e.to_string(),
    };
    let attempts = d.attempts + 1;
    let sealed_at = parse_ts(&d.created_at);
    let (s, m, k, msg) = (
        store.clone(),
        d.message_id.clone(),
        d.sink.clone(),
        e.clone(),
    );
    if gives_up(cfg, attempts, sealed_at, at) {
        blocking(move || s.mark_dead(&m, &k, &msg, at)).await?;
        // The alert of last resort: nobody was told, so the log says it loudly.
        tracing::error!(
            alert = %d.message_id,
            sink = %d.sink,
            attempts,
            subject = %d.subject,
            "ALERT NOT DELIVERED: gave up after {attempts} attempt(s) since {}: {e}; \
             see `awxguard alerts list`",
            sealed_at.format("%Y-%m-%d %H:%M:%S UTC"),
        );
        return Ok(Outcome::Dead(Failed {
            alert: d.message_id,
            sink: d.sink,
            subject: d.subject,
            error: e,
            attempts,
            next_attempt_at: at,
        }));
    }
    let next = at + backoff(cfg, attempts as u32);
    blocking(move || s.mark_failed(&m, &k, &msg, next)).await?;
    tracing::warn!(alert = %d.message_id, sink = %d.sink, attempts, "alert not delivered: {e}");
    Ok(Outcome::Failed(Failed {
        alert: d.message_id,
        sink: d.sink,
        subject: d.subject,
        error: e,
        attempts,
        next_attempt_at: next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut cfg = AlertsConfig::with_sinks(None, None, None);
        cfg.retry_base = std::time::Duration::from_secs(30);
        cfg.retry_max = std::time::Duration::from_secs(300);
        let secs: Vec<i64> = (1..=6).map(|a| backoff(&cfg, a).num_seconds()).collect();
        assert_eq!(secs, vec![30, 60, 120, 240, 300, 300]);
    }

    #[test]
    fn giving_up_by_age_or_count() {
        let mut cfg = AlertsConfig::with_sinks(None, None, None);
        let t0: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        let later = |s: i64| t0 + Duration::seconds(s);
        // Default: a day, no count limit.
        assert!(!gives_up(&cfg, 1000, t0, later(86_399)));
        assert!(gives_up(&cfg, 2, t0, later(86_400)));
        cfg.give_up_after = None;
        assert!(!gives_up(&cfg, 1000, t0, later(10 * 86_400)), "off: never");
        cfg.max_attempts = Some(3);
        assert!(!gives_up(&cfg, 2, t0, later(1)));
        assert!(gives_up(&cfg, 3, t0, later(1)));
    }
}
