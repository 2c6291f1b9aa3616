//! The alert outbox (issue 12): alerts queued by the run that recorded their findings, in the
//! same transaction (`Lifecycle::record` asks the installed `AlertPlanner` which to queue); the
//! messages they were sealed into and one delivery per sink, pending until the sink accepted,
//! then sent and never sent again. The policy (what to queue, what a message says) lives in
//! `alert`; this file only keeps the rows.
//!
//! Exactly once per sink: a delivery is claimed (by `host:pid`, until a deadline) before it is
//! sent, so two processes never send it at once; it is marked `sent` as soon as the sink accepted
//! it. A crash between acceptance and that mark leaves it pending, and the next attempt sends the
//! same stored document again (same `Message-ID`): at most one resend, recognisably the same.

use super::params;
use super::{ts, SqliteStore, StoreError};
use crate::finding::{Finding, Severity, Status};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Why an alert is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// New findings at or above `min_severity`: sent as soon as they are recorded.
    Immediate,
    /// New findings below `min_severity` (and standing ones due a repeat): the daily digest.
    Digest,
    /// Findings still open and not acknowledged after `repeat_interval`.
    Repeat,
    /// Alerted findings that a later run no longer sees.
    Resolved,
    /// `awxguard alerts test` (never queued).
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Immediate => "immediate",
            AlertKind::Digest => "digest",
            AlertKind::Repeat => "repeat",
            AlertKind::Resolved => "resolved",
            AlertKind::Test => "test",
        }
    }
}

impl std::str::FromStr for AlertKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "immediate" => AlertKind::Immediate,
            "digest" => AlertKind::Digest,
            "repeat" => AlertKind::Repeat,
            "resolved" => AlertKind::Resolved,
            "test" => AlertKind::Test,
            other => return Err(format!("unknown alert kind {other:?}")),
        })
    }
}

/// One key's alert, queued: ids only, the findings stay in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedAlert {
    pub id: String,
    pub kind: AlertKind,
    /// The key's inventory name, else its fingerprint.
    pub key: String,
    pub finding_ids: Vec<String>,
    /// The most severe finding's severity.
    pub severity: Severity,
    /// When it may be sent.
    pub due_at: DateTime<Utc>,
}

/// A queued alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRow {
    #[serde(flatten)]
    pub alert: QueuedAlert,
    pub queued_at: String,
    /// The message it went out in, once sealed.
    pub message_id: Option<String>,
}

/// Decides what a recorded run queues. Installed on the store by whoever configured alerts
/// (the CLI, the daemon); called inside the recording transaction.
pub trait AlertPlanner: Send + Sync {
    /// `recorded`: the run's findings, status set; `resolved_alerted`: findings the run resolved
    /// that had been alerted before.
    fn plan(
        &self,
        recorded: &[Finding],
        resolved_alerted: &[Finding],
        now: DateTime<Utc>,
    ) -> Vec<QueuedAlert>;
}

/// A message to seal: the rendered document of one or more queued alerts, and the sinks it goes
/// to.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub kind: AlertKind,
    pub subject: String,
    /// The alert document (JSON).
    pub document: String,
    pub created_at: DateTime<Utc>,
    /// The queue rows it carries.
    pub rows: Vec<String>,
    /// One delivery per sink name; empty when there is nothing left to say (the rows are closed).
    pub sinks: Vec<String>,
}

/// One delivery of a message to a sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub message_id: String,
    pub sink: String,
    pub kind: String,
    pub subject: String,
    #[serde(skip)]
    pub document: String,
    pub created_at: String,
    /// `pending` or `sent`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub reply: Option<String>,
    pub sent_at: Option<String>,
}

/// The outbox.
pub trait Outbox {
    /// Installs (or removes) the planner `record` asks which alerts to queue.
    fn set_alert_planner(&self, planner: Option<Arc<dyn AlertPlanner>>);

    /// Queues alerts outside a run (repeats) and marks their findings alerted at `now`.
    fn queue_alerts(&self, alerts: &[QueuedAlert], now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Findings alerted before that are still new or open and not acknowledged at `now`, with
    /// when they were last alerted.
    fn standing_alerted(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Finding, DateTime<Utc>)>, StoreError>;

    /// Queued alerts not yet sealed; only those due at `now` when given.
    fn waiting_alerts(&self, due_at: Option<DateTime<Utc>>) -> Result<Vec<QueueRow>, StoreError>;

    /// Seals queued alerts into a message with one pending delivery per sink, atomically.
    fn seal(&self, msg: &NewMessage) -> Result<(), StoreError>;

    /// Pending deliveries whose next attempt is due at `now`.
    fn deliveries_due(&self, now: DateTime<Utc>) -> Result<Vec<Delivery>, StoreError>;

    /// Claims a pending delivery for `owner` until `until`; false when it is sent already or
    /// another live process holds it.
    fn claim_delivery(
        &self,
        message_id: &str,
        sink: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The sink accepted the message: `sent`, never sent again.
    fn mark_sent(
        &self,
        message_id: &str,
        sink: &str,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The sink did not accept: count the attempt, keep the error, try again at `next_attempt`.
    fn mark_failed(
        &self,
        message_id: &str,
        sink: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every delivery, newest message first (at most `limit`).
    fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;
}

/// `host:pid` of this process: who claims a delivery.
pub fn process_owner() -> String {
    format!("{}:{}", this_host(), std::process::id())
}

/// This host's name (`/proc/sys/kernel/hostname`, else `/etc/hostname`, else `localhost`).
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the process that claimed a delivery may still be sending it. A process on this host
/// that no longer exists is not (it crashed: its claim is void); elsewhere, its claim holds
/// until it expires.
pub(super) fn owner_alive(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return true;
    };
    if host != this_host() || !cfg!(target_os = "linux") {
        return true;
    }
    if pid == std::process::id().to_string() {
        return true;
    }
    std::path::Path::new("/proc").join(pid).exists()
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Writes queued alerts and marks their findings alerted (in the caller's transaction).
fn insert_queued(
    tx: &Transaction<'_>,
    alerts: &[QueuedAlert],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let now_s = ts(now);
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO alert_queue (id, kind, key, finding_ids, severity, queued_at, \
         due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut state = tx.prepare_cached(
        "INSERT INTO alert_state (finding_id, first_alerted_at, last_alerted_at, last_alert_id) \
         VALUES (?1, ?2, ?2, ?3) ON CONFLICT (finding_id) DO UPDATE SET \
         last_alerted_at = excluded.last_alerted_at, last_alert_id = excluded.last_alert_id",
    )?;
    for a in alerts {
        insert.execute(params![
            a.id,
            a.kind.as_str(),
            a.key,
            serde_json::to_string(&a.finding_ids).expect("ids serialize"),
            a.severity.as_str(),
            now_s,
            ts(a.due_at),
        ])?;
        if a.kind != AlertKind::Resolved {
            for f in &a.finding_ids {
                state.execute(params![f, now_s, a.id])?;
            }
        }
    }
    Ok(())
}

/// The recording path's hook: asks the installed planner what this run queues and writes it in
/// the run's transaction. Nothing happens without a planner (alerts not configured).
pub(super) fn queue_in_run(
    store: &SqliteStore,
    tx: &Transaction<'_>,
    recorded: &[Finding],
    resolved: &[Finding],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let Some(planner) = store.alert_planner() else {
        return Ok(());
    };
    let mut resolved_alerted = Vec::new();
    if !resolved.is_empty() {
        let mut alerted = tx.prepare_cached("SELECT 1 FROM alert_state WHERE finding_id = ?1")?;
        for f in resolved {
            if alerted.exists([&f.id])? {
                resolved_alerted.push(f.clone());
            }
        }
    }
    let queued = planner.plan(recorded, &resolved_alerted, now);
    insert_queued(tx, &queued, now)?;
    if !resolved_alerted.is_empty() {
        // A resolved finding that comes back is new again: forget it was alerted.
        let mut forget = tx.prepare_cached("DELETE FROM alert_state WHERE finding_id = ?1")?;
        for f in &resolved_alerted {
            forget.execute([&f.id])?;
        }
    }
    Ok(())
}

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        message_id: r.get(0)?,
        sink: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        document: r.get(4)?,
        created_at: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        next_attempt_at: r.get(8)?,
        last_error: r.get(9)?,
        reply: r.get(10)?,
        sent_at: r.get(11)?,
    })
}

const DELIVERY_COLUMNS: &str = "d.message_id, d.sink, m.kind, m.subject, m.document, \
     m.created_at, d.state, d.attempts, d.next_attempt_at, d.last_error, d.reply, d.sent_at \
     FROM alert_deliveries d JOIN alert_messages m ON m.id = d.message_id";

impl Outbox for SqliteStore {
    fn set_alert_planner(&self, planner: Option<Arc<dyn AlertPlanner>>) {
        *self.planner.write().unwrap_or_else(|e| e.into_inner()) = planner;
    }

    fn queue_alerts(&self, alerts: &[QueuedAlert], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin"))?;
        insert_queued(&tx, alerts, now).map_err(self.q("queue alerts"))?;
        tx.commit().map_err(self.q("commit"))
    }

    fn standing_alerted(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Finding, DateTime<Utc>)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT f.finding, f.status, s.last_alerted_at, a.expires_at, a.reason \
                 FROM alert_state s JOIN findings f ON f.id = s.finding_id \
                 LEFT JOIN acknowledgements a ON a.finding_id = f.id \
                 WHERE f.status IN ('new', 'open')",
            )
            .map_err(self.q("prepare standing"))?;
        let now_s = ts(now);
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(self.q("list standing"))?;
        let mut out = Vec::new();
        for row in rows {
            let (json, status, last, expires, reason) = row.map_err(self.q("list standing"))?;
            let acked = reason.is_some() && expires.as_deref().is_none_or(|e| e > now_s.as_str());
            let (Ok(mut f), Some(last)) = (serde_json::from_str::<Finding>(&json), parse_ts(&last))
            else {
                continue;
            };
            f.status = Some(if acked {
                Status::Acknowledged
            } else if status == "new" {
                Status::New
            } else {
                Status::Open
            });
            out.push((f, last));
        }
        Ok(out)
    }

    fn waiting_alerts(&self, due_at: Option<DateTime<Utc>>) -> Result<Vec<QueueRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, kind, key, finding_ids, severity, queued_at, due_at, message_id \
                 FROM alert_queue WHERE message_id IS NULL AND (?1 IS NULL OR due_at <= ?1) \
                 ORDER BY due_at, queued_at, id",
            )
            .map_err(self.q("prepare waiting alerts"))?;
        let rows = stmt
            .query_map([due_at.map(ts)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(self.q("list waiting alerts"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, key, ids, severity, queued_at, due, message_id) =
                row.map_err(self.q("list waiting alerts"))?;
            let (Ok(kind), Ok(finding_ids), Ok(severity), Some(due_at)) = (
                kind.parse::<AlertKind>(),
                serde_json::from_str::<Vec<String>>(&ids),
                severity.parse::<Severity>(),
                parse_ts(&due),
            ) else {
                continue;
            };
            out.push(QueueRow {
                alert: QueuedAlert {
                    id,
                    kind,
                    key,
                    finding_ids,
                    severity,
                    due_at,
                },
                queued_at,
                message_id,
            });
        }
        Ok(out)
    }

    fn seal(&self, msg: &NewMessage) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin"))?;
        // Another process may have sealed these rows meanwhile (the write lock is held from
        // here): seal only what is still waiting, all of it or nothing, as on PostgreSQL.
        let mut waiting = tx
            .prepare_cached("SELECT 1 FROM alert_queue WHERE id = ?1 AND message_id IS NULL")
            .map_err(self.q("prepare seal check"))?;
        let distinct: std::collections::HashSet<&String> = msg.rows.iter().collect();
        for row in distinct {
            if !waiting
                .exists([row])
                .map_err(self.q("check queued alert"))?
            {
                return Ok(());
            }
        }
        drop(waiting);
        let created = ts(msg.created_at);
        tx.execute(
            "INSERT OR IGNORE INTO alert_messages (id, kind, subject, document, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                msg.id,
                msg.kind.as_str(),
                msg.subject,
                msg.document,
                created
            ],
        )
        .map_err(self.q("seal message"))?;
        for sink in &msg.sinks {
            tx.execute(
                "INSERT OR IGNORE INTO alert_deliveries (message_id, sink, state, attempts, \
                 next_attempt_at) VALUES (?1, ?2, 'pending', 0, ?3)",
                params![msg.id, sink, created],
            )
            .map_err(self.q("seal delivery"))?;
        }
        for row in &msg.rows {
            tx.execute(
                "UPDATE alert_queue SET message_id = ?2 WHERE id = ?1 AND message_id IS NULL",
                params![row, msg.id],
            )
            .map_err(self.q("seal queued alert"))?;
        }
        tx.commit().map_err(self.q("commit"))
    }

    fn deliveries_due(&self, now: DateTime<Utc>) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 \
                 ORDER BY m.created_at, d.message_id, d.sink"
            ))
            .map_err(self.q("prepare due deliveries"))?;
        let rows = stmt
            .query_map([ts(now)], delivery_row)
            .map_err(self.q("list due deliveries"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.q("list due deliveries"))?;
        Ok(rows)
    }

    fn claim_delivery(
        &self,
        message_id: &str,
        sink: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.q("begin claim"))?;
        let current: Option<(String, Option<String>, Option<String>)> = tx
            .query_row(
                "SELECT state, claimed_by, claimed_until FROM alert_deliveries \
                 WHERE message_id = ?1 AND sink = ?2",
                params![message_id, sink],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.q("read claim"))?;
        let Some((state, by, by_until)) = current else {
            return Ok(false);
        };
        if state != "pending" {
            return Ok(false);
        }
        let held = match (&by, &by_until) {
            (Some(by), Some(u)) => by != owner && u.as_str() > ts(now).as_str() && owner_alive(by),
            _ => false,
        };
        if held {
            return Ok(false);
        }
        tx.execute(
            "UPDATE alert_deliveries SET claimed_by = ?3, claimed_until = ?4 \
             WHERE message_id = ?1 AND sink = ?2",
            params![message_id, sink, owner, ts(until)],
        )
        .map_err(self.q("claim delivery"))?;
        tx.commit().map_err(self.q("commit claim"))?;
        Ok(true)
    }

    fn mark_sent(
        &self,
        message_id: &str,
        sink: &str,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE alert_deliveries SET state = 'sent', reply = ?3, sent_at = ?4, \
                 attempts = attempts + 1, last_error = NULL, claimed_by = NULL, \
                 claimed_until = NULL WHERE message_id = ?1 AND sink = ?2",
                params![message_id, sink, reply, ts(now)],
            )
            .map_err(self.q("mark delivery sent"))?;
        Ok(())
    }

    fn mark_failed(
        &self,
        message_id: &str,
        sink: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?3, \
                 next_attempt_at = ?4, claimed_by = NULL, claimed_until = NULL \
                 WHERE message_id = ?1 AND sink = ?2 AND state = 'pending'",
                params![message_id, sink, error, ts(next_attempt)],
            )
            .map_err(self.q("mark delivery failed"))?;
        Ok(())
    }

    fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} ORDER BY m.created_at DESC, d.message_id, d.sink \
                 LIMIT ?1"
            ))
            .map_err(self.q("prepare deliveries"))?;
        let rows = stmt
            .query_map([limit as i64], delivery_row)
            .map_err(self.q("list deliveries"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.q("list deliveries"))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct EveryNew;
    impl AlertPlanner for EveryNew {
        fn plan(
            &self,
            recorded: &[Finding],
            _: &[Finding],
            now: DateTime<Utc>,
        ) -> Vec<QueuedAlert> {
            recorded
                .iter()
                .filter(|f| f.status == Some(Status::New))
                .map(|f| QueuedAlert {
                    id: format!("a-{}", f.id),
                    kind: AlertKind::Immediate,
                    key: f.key.clone().unwrap_or_default(),
                    finding_ids: vec![f.id.clone()],
                    severity: f.severity,
                    due_at: now,
                })
                .collect()
        }
    }

    fn f(part: &str) -> Finding {
        let mut f = Finding::new("privilege.test", Severity::High, "m", &[part]);
        f.key = Some(part.into());
        f
    }

    #[test]
    fn record_queues_in_its_transaction_and_a_delivery_is_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        for s in crate::store::tests::backends(dir.path(), "outbox") {
            let t0 = Utc::now();
            // No planner: nothing queued.
            s.record("audit", &mut [f("x")], t0).unwrap();
            assert!(s.waiting_alerts(None).unwrap().is_empty());
            s.set_alert_planner(Some(Arc::new(EveryNew)));
            s.record("audit", &mut [f("x"), f("a")], t0).unwrap();
            let waiting = s.waiting_alerts(Some(t0)).unwrap();
            assert_eq!(waiting.len(), 1, "only the new finding: {waiting:?}");
            let row = &waiting[0].alert;
            s.seal(&NewMessage {
                id: row.id.clone(),
                kind: row.kind,
                subject: "s".into(),
                document: "{}".into(),
                created_at: t0,
                rows: vec![row.id.clone()],
                sinks: vec!["email".into(), "file".into()],
            })
            .unwrap();
            assert!(s.waiting_alerts(None).unwrap().is_empty());
            let due = s.deliveries_due(t0).unwrap();
            assert_eq!(due.len(), 2);
            let me = process_owner();
            let later = t0 + chrono::Duration::minutes(5);
            assert!(s.claim_delivery(&row.id, "email", &me, t0, later).unwrap());
            // Another live process cannot take it while the claim holds.
            assert!(!s
                .claim_delivery(&row.id, "email", "elsewhere:1", t0, later)
                .unwrap());
            s.mark_failed(&row.id, "email", "connection refused", later)
                .unwrap();
            assert_eq!(s.deliveries_due(t0).unwrap().len(), 1, "file only");
            assert_eq!(s.deliveries_due(later).unwrap().len(), 2);
            assert!(s
                .claim_delivery(&row.id, "email", &me, later, later)
                .unwrap());
            s.mark_sent(&row.id, "email", "250 ok", later).unwrap();
            assert!(!s
                .claim_delivery(&row.id, "email", &me, later, later)
                .unwrap());
            let all = s.deliveries(10).unwrap();
            let email = all.iter().find(|d| d.sink == "email").unwrap();
            assert_eq!(
                (email.state.as_str(), email.attempts, email.reply.as_deref()),
                ("sent", 2, Some("250 ok"))
            );
            // Alerted and still open: a repeat candidate.
            let standing = s.standing_alerted(later).unwrap();
            assert_eq!(standing.len(), 1);
            // Sealing rows that are sealed already makes no second message.
            s.seal(&NewMessage {
                id: "another".into(),
                kind: row.kind,
                subject: "s".into(),
                document: "{}".into(),
                created_at: t0,
                rows: vec![row.id.clone()],
                sinks: vec!["email".into()],
            })
            .unwrap();
            let ids: std::collections::BTreeSet<String> = s
                .deliveries(10)
                .unwrap()
                .into_iter()
                .map(|d| d.message_id)
                .collect();
            assert_eq!(ids.len(), 1, "{ids:?}");
        }
    }

    #[test]
    fn a_dead_local_owner_loses_its_claim() {
        // pid 0 never names a process in /proc.
        let dead = format!("{}:0", this_host());
        assert!(!owner_alive(&dead) || !cfg!(target_os = "linux"));
        assert!(owner_alive("another-host:1"));
        assert!(owner_alive(&process_owner()));
    }
}
