//! The alert outbox on PostgreSQL: the same rows and rules as `store/outbox.rs`, made safe for
//! several daemons on one database. A delivery is claimed with `SELECT .. FOR UPDATE SKIP
//! LOCKED` (a delivery another process is claiming right now is simply not ours); a message is
//! sealed only while every queued alert it carries is still waiting, those rows locked, so two
//! daemons sealing the same alerts make one message, not two.

use super::{pg_params, PgStore};
use crate::finding::{Finding, Severity, Status};
use crate::store::outbox::{
    owner_alive, AlertKind, AlertPlanner, Delivery, NewMessage, Outbox, QueueRow, QueuedAlert,
};
use crate::store::{ts, StoreError};
use chrono::{DateTime, Utc};
use postgres::Transaction;
use std::sync::Arc;

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Writes queued alerts and marks their findings alerted (in the caller's transaction).
fn insert_queued(
    tx: &mut Transaction<'_>,
    alerts: &[QueuedAlert],
    now: DateTime<Utc>,
) -> Result<(), postgres::Error> {
    let now_s = ts(now);
    let insert = tx.prepare(
        "INSERT INTO alert_queue (id, kind, key, finding_ids, severity, queued_at, due_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )?;
    let state = tx.prepare(
        "INSERT INTO alert_state (finding_id, first_alerted_at, last_alerted_at, last_alert_id) \
         VALUES ($1, $2, $2, $3) ON CONFLICT (finding_id) DO UPDATE SET \
         last_alerted_at = excluded.last_alerted_at, last_alert_id = excluded.last_alert_id",
    )?;
    for a in alerts {
        tx.execute(
            &insert,
            pg_params![
                a.id,
                a.kind.as_str(),
                a.key,
                serde_json::to_string(&a.finding_ids).expect("ids serialize"),
                a.severity.as_str(),
                now_s,
                ts(a.due_at),
            ],
        )?;
        if a.kind != AlertKind::Resolved {
            for f in &a.finding_ids {
                tx.execute(&state, pg_params![f, now_s, a.id])?;
            }
        }
    }
    Ok(())
}

/// The recording path's hook (see `store::outbox::queue_in_run`).
pub(super) fn queue_in_run(
    store: &PgStore,
    tx: &mut Transaction<'_>,
    recorded: &[Finding],
    resolved: &[Finding],
    now: DateTime<Utc>,
) -> Result<(), postgres::Error> {
    let Some(planner) = store.alert_planner() else {
        return Ok(());
    };
    let mut resolved_alerted = Vec::new();
    for f in resolved {
        if tx
            .query_opt(
                "SELECT 1 FROM alert_state WHERE finding_id = $1",
                pg_params![f.id],
            )?
            .is_some()
        {
            resolved_alerted.push(f.clone());
        }
    }
    let queued = planner.plan(recorded, &resolved_alerted, now);
    insert_queued(tx, &queued, now)?;
    for f in &resolved_alerted {
        // A resolved finding that comes back is new again: forget it was alerted.
        tx.execute(
            "DELETE FROM alert_state WHERE finding_id = $1",
            pg_params![f.id],
        )?;
    }
    Ok(())
}

fn delivery_row(r: &postgres::Row) -> Delivery {
    Delivery {
        message_id: r.get(0),
        sink: r.get(1),
        kind: r.get(2),
        subject: r.get(3),
        document: r.get(4),
        created_at: r.get(5),
        state: r.get(6),
        attempts: r.get(7),
        next_attempt_at: r.get(8),
        last_error: r.get(9),
        reply: r.get(10),
        sent_at: r.get(11),
        dead_at: r.get(12),
    }
}

const DELIVERY_COLUMNS: &str = "d.message_id, d.sink, m.kind, m.subject, m.document, \
     m.created_at, d.state, d.attempts, d.next_attempt_at, d.last_error, d.reply, d.sent_at, \
     d.dead_at FROM alert_deliveries d JOIN alert_messages m ON m.id = d.message_id";

impl Outbox for PgStore {
    fn set_alert_planner(&self, planner: Option<Arc<dyn AlertPlanner>>) {
        *self.planner.write().unwrap_or_else(|e| e.into_inner()) = planner;
    }

    fn queue_alerts(&self, alerts: &[QueuedAlert], now: DateTime<Utc>) -> Result<(), StoreError> {
        self.run(|c| {
            let mut tx = c.transaction().map_err(self.q("begin"))?;
            insert_queued(&mut tx, alerts, now).map_err(self.q("queue alerts"))?;
            tx.commit().map_err(self.q("commit"))
        })
    }

    fn standing_alerted(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Finding, DateTime<Utc>)>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                "SELECT f.finding, f.status, s.last_alerted_at, a.expires_at, a.reason \
                 FROM alert_state s JOIN findings f ON f.id = s.finding_id \
                 LEFT JOIN acknowledgements a ON a.finding_id = f.id \
                 WHERE f.status IN ('new', 'open') ORDER BY f.id",
                &[],
            )
            .map_err(self.q("list standing"))
        })?;
        let now_s = ts(now);
        let mut out = Vec::new();
        for r in rows {
            let (json, status, last): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let (expires, reason): (Option<String>, Option<String>) = (r.get(3), r.get(4));
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
        let due_s = due_at.map(ts);
        let rows = self.run(|c| {
            c.query(
                "SELECT id, kind, key, finding_ids, severity, queued_at, due_at, message_id \
                 FROM alert_queue WHERE message_id IS NULL \
                 AND ($1::text IS NULL OR due_at <= $1) ORDER BY due_at, queued_at, id",
                pg_params![due_s],
            )
            .map_err(self.q("list waiting alerts"))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (kind, ids, severity, due): (String, String, String, String) =
                (r.get(1), r.get(3), r.get(4), r.get(6));
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
                    id: r.get(0),
                    kind,
                    key: r.get(2),
                    finding_ids,
                    severity,
                    due_at,
                },
                queued_at: r.get(5),
                message_id: r.get(7),
            });
        }
        Ok(out)
    }

    fn seal(&self, msg: &NewMessage) -> Result<(), StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin"))?;
            if !msg.rows.is_empty() {
                // Another daemon may have sealed these rows meanwhile: seal only what is still
                // waiting, all of it or nothing.
                let waiting = tx
                    .query(
                        "SELECT id FROM alert_queue WHERE id = ANY($1) AND message_id IS NULL \
                         ORDER BY id FOR UPDATE",
                        pg_params![msg.rows],
                    )
                    .map_err(q("lock queued alerts"))?;
                if waiting.len()
                    < msg
                        .rows
                        .iter()
                        .collect::<std::collections::HashSet<_>>()
                        .len()
                {
                    return Ok(());
                }
            }
            let created = ts(msg.created_at);
            tx.execute(
                "INSERT INTO alert_messages (id, kind, subject, document, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                pg_params![
                    msg.id,
                    msg.kind.as_str(),
                    msg.subject,
                    msg.document,
                    created
                ],
            )
            .map_err(q("seal message"))?;
            for sink in &msg.sinks {
                tx.execute(
                    "INSERT INTO alert_deliveries (message_id, sink, state, attempts, \
                     next_attempt_at) VALUES ($1, $2, 'pending', 0, $3) \
                     ON CONFLICT (message_id, sink) DO NOTHING",
                    pg_params![msg.id, sink, created],
                )
                .map_err(q("seal delivery"))?;
            }
            for row in &msg.rows {
                tx.execute(
                    "UPDATE alert_queue SET message_id = $2 WHERE id = $1 AND message_id IS NULL",
                    pg_params![row, msg.id],
                )
                .map_err(q("seal queued alert"))?;
            }
            tx.commit().map_err(q("commit"))
        })
    }

    fn deliveries_due(&self, now: DateTime<Utc>) -> Result<Vec<Delivery>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} WHERE d.state = 'pending' \
                     AND d.next_attempt_at <= $1 ORDER BY m.created_at, d.message_id, d.sink"
                ),
                pg_params![ts(now)],
            )
            .map_err(self.q("list due deliveries"))
        })?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    fn claim_delivery(
        &self,
        message_id: &str,
        sink: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin claim"))?;
            // A row another process is claiming right now is skipped: not ours.
            let current = tx
                .query_opt(
                    "SELECT state, claimed_by, claimed_until FROM alert_deliveries \
                     WHERE message_id = $1 AND sink = $2 FOR UPDATE SKIP LOCKED",
                    pg_params![message_id, sink],
                )
                .map_err(q("read claim"))?;
            let Some(row) = current else {
                return Ok(false);
            };
            let (state, by, by_until): (String, Option<String>, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            if state != "pending" {
                return Ok(false);
            }
            let held = match (&by, &by_until) {
                (Some(by), Some(u)) => {
                    by != owner && u.as_str() > ts(now).as_str() && owner_alive(by)
                }
                _ => false,
            };
            if held {
                return Ok(false);
            }
            tx.execute(
                "UPDATE alert_deliveries SET claimed_by = $3, claimed_until = $4 \
                 WHERE message_id = $1 AND sink = $2",
                pg_params![message_id, sink, owner, ts(until)],
            )
            .map_err(q("claim delivery"))?;
            tx.commit().map_err(q("commit claim"))?;
            Ok(true)
        })
    }

    fn mark_sent(
        &self,
        message_id: &str,
        sink: &str,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run(|c| {
            c.execute(
                "UPDATE alert_deliveries SET state = 'sent', reply = $3, sent_at = $4, \
                 attempts = attempts + 1, last_error = NULL, claimed_by = NULL, \
                 claimed_until = NULL WHERE message_id = $1 AND sink = $2",
                pg_params![message_id, sink, reply, ts(now)],
            )
            .map_err(self.q("mark delivery sent"))
        })?;
        Ok(())
    }

    fn mark_failed(
        &self,
        message_id: &str,
        sink: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run(|c| {
            c.execute(
                "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = $3, \
                 next_attempt_at = $4, claimed_by = NULL, claimed_until = NULL \
                 WHERE message_id = $1 AND sink = $2 AND state = 'pending'",
                pg_params![message_id, sink, error, ts(next_attempt)],
            )
            .map_err(self.q("mark delivery failed"))
        })?;
        Ok(())
    }

    fn mark_dead(
        &self,
        message_id: &str,
        sink: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run(|c| {
            c.execute(
                "UPDATE alert_deliveries SET state = 'dead', attempts = attempts + 1, \
                 last_error = $3, dead_at = $4, claimed_by = NULL, claimed_until = NULL \
                 WHERE message_id = $1 AND sink = $2 AND state = 'pending'",
                pg_params![message_id, sink, error, ts(now)],
            )
            .map_err(self.q("mark delivery dead"))
        })?;
        Ok(())
    }

    fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} ORDER BY m.created_at DESC, d.message_id, d.sink \
                     LIMIT $1"
                ),
                pg_params![limit as i64],
            )
            .map_err(self.q("list deliveries"))
        })?;
        Ok(rows.iter().map(delivery_row).collect())
    }
}
