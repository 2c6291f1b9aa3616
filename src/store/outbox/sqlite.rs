//! The outbox's SQLite rows: queueing inside the recording transaction, sealing, claiming and
//! marking deliveries.

use super::{
    owner_alive, AlertKind, AlertPlanner, Delivery, NewMessage, Outbox, QueueRow, QueuedAlert,
};
use crate::finding::{Finding, Severity, Status};
use crate::store::params;
use crate::store::{ts, SqliteStore, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction};
use std::sync::Arc;

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
pub(crate) fn queue_in_run(
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
        dead_at: r.get(12)?,
    })
}

const DELIVERY_COLUMNS: &str = "d.message_id, d.sink, m.kind, m.subject, m.document, \
     m.created_at, d.state, d.attempts, d.next_attempt_at, d.last_error, d.reply, d.sent_at, \
     d.dead_at \
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

    fn mark_dead(
        &self,
        message_id: &str,
        sink: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE alert_deliveries SET state = 'dead', attempts = attempts + 1, \
                 last_error = ?3, dead_at = ?4, claimed_by = NULL, claimed_until = NULL \
                 WHERE message_id = ?1 AND sink = ?2 AND state = 'pending'",
                params![message_id, sink, error, ts(now)],
            )
            .map_err(self.q("mark delivery dead"))?;
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
    use super::super::{process_owner, this_host};
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

    #[test]
    fn a_dead_delivery_is_never_due_again_and_is_counted() {
        use crate::store::DaemonRecords;
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let t0 = Utc::now();
        s.seal(&NewMessage {
            id: "m1".into(),
            kind: AlertKind::Immediate,
            subject: "s".into(),
            document: "{}".into(),
            created_at: t0,
            rows: Vec::new(),
            sinks: vec!["email".into(), "file".into()],
        })
        .unwrap();
        let me = process_owner();
        assert!(s.claim_delivery("m1", "email", &me, t0, t0).unwrap());
        s.mark_dead("m1", "email", "connection refused", t0)
            .unwrap();
        let later = t0 + chrono::Duration::days(30);
        let due = s.deliveries_due(later).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].sink, "file");
        assert!(!s.claim_delivery("m1", "email", &me, later, later).unwrap());
        // A dead delivery is not marked sent by a late answer either.
        s.mark_failed("m1", "email", "late", later).unwrap();
        let email = s
            .deliveries(10)
            .unwrap()
            .into_iter()
            .find(|d| d.sink == "email")
            .unwrap();
        assert_eq!(
            (
                email.state.as_str(),
                email.attempts,
                email.last_error.as_deref()
            ),
            ("dead", 1, Some("connection refused"))
        );
        assert_eq!(email.dead_at, Some(ts(t0)));
        let stats = s.store_stats(later).unwrap();
        assert_eq!((stats.deliveries_pending, stats.deliveries_dead), (1, 1));
    }
}
