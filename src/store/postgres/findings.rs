//! Findings, the lifecycle (recording a run), acknowledgements and runs on PostgreSQL: the same
//! semantics as `store/{findings,lifecycle,acks,runs}.rs` (the same tests run on both), with a
//! finding upserted by id in one statement so writers on several hosts agree on new/open.

use super::{pg_params, retryable, PgStore};
use crate::finding::{Finding, Resolution, Status};
use crate::store::acks::AckRecord;
use crate::store::findings::{Findings, StoredFinding};
use crate::store::keys::{KeyRecord, KeyRecords};
use crate::store::lifecycle::{
    observed_from, Lifecycle, NotRechecked, Observation, RecordSummary, Recorded,
};
use crate::store::runs::{RunRecord, Runs};
use crate::store::{ts, Acknowledgements, StoreError};
use chrono::{DateTime, Utc};

/// How often a run that met a serialization failure or deadlock is tried again.
const ATTEMPTS: u32 = 6;

impl Findings for PgStore {
    fn resolve_id(&self, prefix: &str) -> Result<String, StoreError> {
        let ids: Vec<String> = self.run(|c| {
            Ok(c.query(
                "SELECT id FROM findings WHERE id LIKE $1::text || '%' ORDER BY id LIMIT 5",
                pg_params![prefix],
            )
            .map_err(self.q("look up id"))?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        match ids.len() {
            0 => Err(StoreError::UnknownFinding(prefix.to_string())),
            1 => Ok(ids.into_iter().next().expect("one id")),
            _ => Err(StoreError::AmbiguousFinding(
                prefix.to_string(),
                ids.join(", "),
            )),
        }
    }

    fn list(
        &self,
        scope: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                "SELECT f.finding, f.status, f.first_seen, f.last_seen, f.resolved_at, \
                 f.times_seen, f.scope, a.reason, a.expires_at, f.observed_by, f.resolution \
                 FROM findings f LEFT JOIN acknowledgements a ON a.finding_id = f.id \
                 WHERE $1::text IS NULL OR f.scope = $1 ORDER BY f.first_seen, f.id",
                pg_params![scope],
            )
            .map_err(self.q("list findings"))
        })?;
        let now_s = ts(now);
        let mut out = Vec::new();
        for r in rows {
            let json: String = r.get(0);
            let status: String = r.get(1);
            let reason: Option<String> = r.get(7);
            let expires: Option<String> = r.get(8);
            let Ok(mut finding) = serde_json::from_str::<Finding>(&json) else {
                continue;
            };
            let ack_active =
                reason.is_some() && expires.as_deref().is_none_or(|e| e > now_s.as_str());
            finding.status = Some(match status.as_str() {
                "resolved" => Status::Resolved,
                _ if ack_active => Status::Acknowledged,
                "new" => Status::New,
                _ => Status::Open,
            });
            finding.observed_by = observed_from(r.get(9));
            finding.resolution = match finding.status {
                Some(Status::Resolved) => Some(
                    r.get::<_, Option<&str>>(10)
                        .and_then(Resolution::parse)
                        .unwrap_or(Resolution::Fixed),
                ),
                _ => None,
            };
            out.push(StoredFinding {
                finding,
                scope: r.get(6),
                first_seen: r.get(2),
                last_seen: r.get(3),
                resolved_at: r.get(4),
                times_seen: r.get(5),
                acknowledgement: reason.map(|r| (r, expires)),
            });
        }
        Ok(out)
    }
}

impl Lifecycle for PgStore {
    fn record_observed(
        &self,
        scope: &str,
        observation: &Observation,
        findings: &mut [Finding],
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        // A retry starts from the findings as they came (statuses are set on the way).
        let incoming: Vec<Option<Status>> = findings.iter().map(|f| f.status).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            for (f, st) in findings.iter_mut().zip(&incoming) {
                f.status = *st;
            }
            match self.record_once(scope, observation, findings, now) {
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    tracing::debug!(db = %self.shown(), attempt, "recording retried: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
                }
                r => return r,
            }
        }
    }
}

impl PgStore {
    fn record_once(
        &self,
        scope: &str,
        observation: &Observation,
        findings: &mut [Finding],
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let now_s = ts(now);
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin"))?;
            let mut summary = RecordSummary::default();
            let upsert = tx
                .prepare(
                    "INSERT INTO findings (id, scope, rule, severity, key, path, message, \
                     finding, status, first_seen, last_seen, times_seen, observed_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'new', $9, $9, 1, $10) \
                     ON CONFLICT (id) DO UPDATE SET \
                     status = CASE WHEN findings.status = 'resolved' THEN 'new' ELSE 'open' END, \
                     severity = excluded.severity, message = excluded.message, \
                     finding = excluded.finding, last_seen = excluded.last_seen, \
                     resolved_at = NULL, resolution = NULL, \
                     times_seen = findings.times_seen + 1, scope = excluded.scope, \
                     observed_by = excluded.observed_by \
                     RETURNING status",
                )
                .map_err(q("prepare upsert"))?;
            let ack = tx
                .prepare(
                    "SELECT reason, expires_at, origin FROM acknowledgements WHERE finding_id = $1",
                )
                .map_err(q("prepare acknowledgement lookup"))?;
            let config_ack = tx
                .prepare(
                    "INSERT INTO acknowledgements (finding_id, reason, acked_by, created_at, \
                     expires_at, origin) VALUES ($1, $2, 'config', $3, NULL, 'config') \
                     ON CONFLICT (finding_id) DO UPDATE SET reason = excluded.reason \
                     WHERE acknowledgements.origin = 'config'",
                )
                .map_err(q("prepare config acknowledgement"))?;
            let drop_config_ack = tx
                .prepare("DELETE FROM acknowledgements WHERE finding_id = $1 AND origin = 'config'")
                .map_err(q("prepare config acknowledgement removal"))?;
            // In id order: two runs that share findings lock their rows in the same order.
            let mut order: Vec<usize> = (0..findings.len()).collect();
            order.sort_by(|a, b| findings[*a].id.cmp(&findings[*b].id));
            for i in order {
                let f = &mut findings[i];
                // Acknowledged by the config (`evidence.accepted`), or not at all by it.
                let accepted = (f.status == Some(Status::Acknowledged))
                    .then(|| {
                        f.evidence
                            .as_ref()
                            .and_then(|e| e.get("accepted"))
                            .and_then(|a| a.as_str())
                            .map(str::to_string)
                    })
                    .flatten();
                f.status = None;
                let json = serde_json::to_string(&*f).expect("findings serialize");
                let observed = observed_json(&f.observed_by);
                let row = tx
                    .query_one(
                        &upsert,
                        pg_params![
                            f.id,
                            scope,
                            f.rule,
                            f.severity.as_str(),
                            f.key,
                            f.path,
                            f.message,
                            json,
                            now_s,
                            observed
                        ],
                    )
                    .map_err(q("upsert finding"))?;
                let status: String = row.get(0);
                match &accepted {
                    Some(reason) => tx
                        .execute(&config_ack, pg_params![f.id, reason, now_s])
                        .map_err(q("acknowledge by config"))?,
                    None => tx
                        .execute(&drop_config_ack, pg_params![f.id])
                        .map_err(q("remove config acknowledgement"))?,
                };
                f.status = Some(if status == "new" {
                    Status::New
                } else {
                    Status::Open
                });
                let acked = tx
                    .query_opt(&ack, pg_params![f.id])
                    .map_err(q("look up acknowledgement"))?
                    .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)));
                match acked {
                    Some((_, Some(exp))) if exp.as_str() <= now_s.as_str() => {
                        summary
                            .expired_acknowledgements
                            .push(format!("acknowledgement of {} expired at {exp}", f.id));
                    }
                    Some(_) => f.status = Some(Status::Acknowledged),
                    None => {}
                }
                match f.status {
                    Some(Status::New) => summary.new += 1,
                    Some(Status::Acknowledged) => summary.acknowledged += 1,
                    _ => summary.open += 1,
                }
            }
            // Whatever this scope reported before and not now is resolved, if this run could
            // see it.
            let current: std::collections::HashSet<&str> =
                findings.iter().map(|f| f.id.as_str()).collect();
            let stale = tx
                .query(
                    "SELECT f.id, f.finding, f.observed_by, a.reason IS NOT NULL \
                     AND (a.expires_at IS NULL OR a.expires_at > $2) \
                     FROM findings f LEFT JOIN acknowledgements a ON a.finding_id = f.id \
                     WHERE f.scope = $1 AND f.status IN ('new', 'open') \
                     ORDER BY f.id FOR UPDATE OF f",
                    pg_params![scope, now_s],
                )
                .map_err(q("list open findings"))?;
            let mark = tx
                .prepare(
                    "UPDATE findings SET status = 'resolved', resolved_at = $2, resolution = $3 \
                     WHERE id = $1",
                )
                .map_err(q("prepare resolve"))?;
            let reopen = tx
                .prepare("UPDATE findings SET status = 'open' WHERE id = $1")
                .map_err(q("prepare keep open"))?;
            let mut resolved = Vec::new();
            let mut not_rechecked = Vec::new();
            for r in stale {
                let id: String = r.get(0);
                if current.contains(id.as_str()) {
                    continue;
                }
                let Ok(mut f) = serde_json::from_str::<Finding>(r.get::<_, &str>(1)) else {
                    continue;
                };
                let acked: bool = r.get(3);
                f.observed_by = observed_from(r.get(2));
                let unseen = observation.unseen(&f.observed_by);
                if !unseen.is_empty() {
                    tx.execute(&reopen, pg_params![id])
                        .map_err(q("keep finding open"))?;
                    f.status = Some(if acked {
                        Status::Acknowledged
                    } else {
                        Status::Open
                    });
                    not_rechecked.push(NotRechecked { finding: f, unseen });
                    continue;
                }
                let resolution = Resolution::for_rule(&f.rule);
                tx.execute(&mark, pg_params![id, now_s, resolution.as_str()])
                    .map_err(q("resolve finding"))?;
                f.status = Some(Status::Resolved);
                f.resolution = Some(resolution);
                resolved.push(f);
            }
            summary.resolved = resolved.len();
            summary.not_rechecked = not_rechecked.len();
            // Alerts for this run's new findings are queued with them, or not at all.
            super::outbox::queue_in_run(self, &mut tx, findings, &resolved, now)
                .map_err(q("queue alerts"))?;
            tx.execute(
                "INSERT INTO runs (scope, at, findings, new, resolved) \
                 VALUES ($1, $2, $3, $4, $5)",
                pg_params![
                    scope,
                    now_s,
                    findings.len() as i64,
                    summary.new as i64,
                    summary.resolved as i64
                ],
            )
            .map_err(q("record run"))?;
            tx.commit().map_err(q("commit"))?;
            Ok(Recorded {
                summary,
                resolved,
                not_rechecked,
            })
        })
    }
}

/// The stored form of `observed_by` (a JSON array), none when empty (as SQLite's).
fn observed_json(observed_by: &[String]) -> Option<String> {
    (!observed_by.is_empty())
        .then(|| serde_json::to_string(observed_by).expect("strings serialize"))
}

impl Acknowledgements for PgStore {
    fn acknowledge(
        &self,
        id: &str,
        reason: &str,
        by: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let id = self.resolve_id(id)?;
        self.run(|c| {
            c.execute(
                "INSERT INTO acknowledgements (finding_id, reason, acked_by, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (finding_id) DO UPDATE SET reason = excluded.reason, \
                 acked_by = excluded.acked_by, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at, origin = 'person'",
                pg_params![id, reason, by, ts(now), expires_at.map(ts)],
            )
            .map_err(self.q("acknowledge"))
        })?;
        Ok(id)
    }

    fn unacknowledge(&self, id: &str) -> Result<bool, StoreError> {
        let id = self.resolve_id(id)?;
        let n = self.run(|c| {
            c.execute(
                "DELETE FROM acknowledgements WHERE finding_id = $1",
                pg_params![id],
            )
            .map_err(self.q("remove acknowledgement"))
        })?;
        Ok(n > 0)
    }

    fn acknowledgements(&self) -> Result<Vec<AckRecord>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                "SELECT finding_id, reason, acked_by, created_at, expires_at, origin \
                 FROM acknowledgements ORDER BY finding_id",
                &[],
            )
            .map_err(self.q("list acknowledgements"))
        })?;
        Ok(rows
            .iter()
            .map(|r| AckRecord {
                finding_id: r.get(0),
                reason: r.get(1),
                by: r.get(2),
                at: r.get(3),
                expires_at: r.get(4),
                origin: r.get(5),
            })
            .collect())
    }
}

impl KeyRecords for PgStore {
    fn save_keys(&self, source: &str, keys: &[KeyRecord]) -> Result<(), StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin"))?;
            tx.execute(
                "DELETE FROM key_records WHERE source = $1",
                pg_params![source],
            )
            .map_err(q("forget keys"))?;
            let put = tx
                .prepare(
                    "INSERT INTO key_records (name, fingerprint, source, observed_at, row) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
                     fingerprint = excluded.fingerprint, source = excluded.source, \
                     observed_at = excluded.observed_at, row = excluded.row",
                )
                .map_err(q("prepare key"))?;
            for k in keys {
                tx.execute(
                    &put,
                    pg_params![
                        k.name,
                        k.fingerprint,
                        source,
                        k.observed_at,
                        k.row.to_string()
                    ],
                )
                .map_err(q("save key"))?;
            }
            tx.commit().map_err(q("commit"))
        })
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                "SELECT name, fingerprint, source, observed_at, row FROM key_records \
                 ORDER BY name",
                &[],
            )
            .map_err(self.q("list keys"))
        })?;
        Ok(rows
            .iter()
            .map(|r| KeyRecord {
                name: r.get(0),
                fingerprint: r.get(1),
                source: r.get(2),
                observed_at: r.get(3),
                row: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }
}

impl Runs for PgStore {
    fn runs(&self, scope: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                "SELECT scope, at, findings, new, resolved FROM runs \
                 WHERE $1::text IS NULL OR scope = $1 ORDER BY id",
                pg_params![scope],
            )
            .map_err(self.q("list runs"))
        })?;
        Ok(rows
            .iter()
            .map(|r| RunRecord {
                scope: r.get(0),
                at: r.get(1),
                findings: r.get::<_, i64>(2) as u64,
                new: r.get::<_, i64>(3) as u64,
                resolved: r.get::<_, i64>(4) as u64,
            })
            .collect())
    }
}
