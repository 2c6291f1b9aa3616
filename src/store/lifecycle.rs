//! Recording a run: the one call every capability makes with its findings. The store decides
//! each finding's lifecycle (`new` the first time, `open` after, `acknowledged` under an
//! unexpired acknowledgement) and resolves what the same scope reported before and no longer
//! does, all in one transaction with the run itself.

use super::params;
use super::runs::{self, RunRecord};
use super::{ts, SqliteStore, StoreError};
use crate::finding::{Finding, Resolution, Status};
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

/// What recording a run did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RecordSummary {
    pub new: usize,
    pub open: usize,
    pub acknowledged: usize,
    pub resolved: usize,
    /// Acknowledgements that expired and no longer suppress their finding.
    pub expired_acknowledgements: Vec<String>,
}

/// The outcome of `record`: the counts, and the findings this run resolved (status `resolved`).
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub summary: RecordSummary,
    pub resolved: Vec<Finding>,
}

/// Recording runs.
pub trait Lifecycle {
    /// Records the findings of one run of `scope` at `now`: sets each finding's `status`
    /// (`new` the first time, `open` after; `acknowledged` under an unexpired acknowledgement),
    /// marks the scope's earlier findings that are gone as `resolved` and returns them too, with
    /// status `resolved`, so a report can show what was fixed.
    fn record(
        &self,
        scope: &str,
        findings: &mut [Finding],
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError>;
}

impl Lifecycle for SqliteStore {
    fn record(
        &self,
        scope: &str,
        findings: &mut [Finding],
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let q = |what: &'static str| self.q(what);
        let now_s = ts(now);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(q("begin"))?;
        let mut summary = RecordSummary::default();
        {
            let mut get = tx
                .prepare_cached("SELECT status FROM findings WHERE id = ?1")
                .map_err(q("prepare lookup"))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO findings (id, scope, rule, severity, key, path, message, finding, \
                     status, first_seen, last_seen, times_seen) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'new', ?9, ?9, 1)",
                )
                .map_err(q("prepare insert"))?;
            let mut update = tx
                .prepare_cached(
                    "UPDATE findings SET status = ?2, severity = ?3, message = ?4, finding = ?5, \
                     last_seen = ?6, resolved_at = NULL, resolution = NULL, times_seen = times_seen + 1, scope = ?7 \
                     WHERE id = ?1",
                )
                .map_err(q("prepare update"))?;
            let mut ack = tx
                .prepare_cached(
                    "SELECT reason, expires_at FROM acknowledgements WHERE finding_id = ?1",
                )
                .map_err(q("prepare acknowledgement lookup"))?;
            for f in findings.iter_mut() {
                let json = serde_json::to_string(&*f).expect("findings serialize");
                let prior: Option<String> = get
                    .query_row([&f.id], |r| r.get(0))
                    .optional()
                    .map_err(q("look up finding"))?;
                let status = match prior.as_deref() {
                    None => {
                        insert
                            .execute(params![
                                f.id,
                                scope,
                                f.rule,
                                f.severity.as_str(),
                                f.key,
                                f.path,
                                f.message,
                                json,
                                now_s
                            ])
                            .map_err(q("insert finding"))?;
                        Status::New
                    }
                    // A finding that was resolved and came back is new again.
                    Some("resolved") => {
                        update
                            .execute(params![
                                f.id,
                                "new",
                                f.severity.as_str(),
                                f.message,
                                json,
                                now_s,
                                scope
                            ])
                            .map_err(q("reopen finding"))?;
                        Status::New
                    }
                    Some(_) => {
                        update
                            .execute(params![
                                f.id,
                                "open",
                                f.severity.as_str(),
                                f.message,
                                json,
                                now_s,
                                scope
                            ])
                            .map_err(q("update finding"))?;
                        Status::Open
                    }
                };
                let acked: Option<(String, Option<String>)> = ack
                    .query_row([&f.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(q("look up acknowledgement"))?;
                f.status = Some(status);
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
        }
        // Whatever this scope reported before and not now is resolved.
        let current: std::collections::HashSet<&str> =
            findings.iter().map(|f| f.id.as_str()).collect();
        let mut resolved = Vec::new();
        {
            let mut stale = tx
                .prepare_cached(
                    "SELECT id, finding FROM findings WHERE scope = ?1 AND status IN ('new', 'open')",
                )
                .map_err(q("prepare resolve"))?;
            let rows: Vec<(String, String)> = stale
                .query_map([scope], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(q("list open findings"))?
                .collect::<Result<_, _>>()
                .map_err(q("list open findings"))?;
            let mut mark = tx
                .prepare_cached(
                    "UPDATE findings SET status = 'resolved', resolved_at = ?2, resolution = ?3 \
                     WHERE id = ?1",
                )
                .map_err(q("prepare resolve"))?;
            for (id, json) in rows {
                if current.contains(id.as_str()) {
                    continue;
                }
                // A finding with an evidence window (an anomaly) that is no longer reported
                // went quiet: aged out. Any other is no longer seen: fixed.
                let parsed = serde_json::from_str::<Finding>(&json).ok();
                let resolution = if parsed.as_ref().is_some_and(|f| f.end.is_some()) {
                    Resolution::AgedOut
                } else {
                    Resolution::Fixed
                };
                mark.execute(params![id, now_s, resolution.as_str()])
                    .map_err(q("resolve finding"))?;
                if let Some(mut f) = parsed {
                    f.status = Some(Status::Resolved);
                    f.resolution = Some(resolution);
                    resolved.push(f);
                }
            }
        }
        summary.resolved = resolved.len();
        // Alerts for this run's new findings are queued with them, or not at all.
        super::outbox::queue_in_run(self, &tx, findings, &resolved, now)
            .map_err(q("queue alerts"))?;
        let run = RunRecord {
            scope: scope.to_string(),
            at: now_s.clone(),
            findings: findings.len() as u64,
            new: summary.new as u64,
            resolved: summary.resolved as u64,
        };
        runs::insert(&tx, &run).map_err(q("record run"))?;
        tx.commit().map_err(q("commit"))?;
        Ok(Recorded { summary, resolved })
    }
}
