//! Recording a run: the one call every capability makes with its findings. The store decides
//! each finding's lifecycle (`new` the first time, `open` after, `acknowledged` under an
//! unexpired acknowledgement) and resolves what the same scope reported before and no longer
//! does, all in one transaction with the run itself.
//!
//! Resolution by observation: each finding keeps the inputs that observed it
//! (`Finding::observed_by`: scan roots, the key's secret reference, logins, usage sources...),
//! and each run says what it looked at (`Observation`). A finding the run did not report is
//! resolved (`fixed`, or `aged-out` for incidents) only when the run looked at every input that
//! observed it; otherwise it stays open and is returned as not re-checked, with the inputs the
//! run did not look at. A run that covers its whole scope (a scan of one target, the callers of
//! `record`) looks at everything its scope holds.

use super::params;
use super::runs::{self, RunRecord};
use super::{ts, SqliteStore, StoreError};
use crate::finding::{Finding, Resolution, Status};
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use std::collections::BTreeSet;

/// What recording a run did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RecordSummary {
    pub new: usize,
    pub open: usize,
    pub acknowledged: usize,
    pub resolved: usize,
    /// Earlier findings of the scope this run could not re-check (it did not look where they
    /// were seen): still open.
    #[serde(default)]
    pub not_rechecked: usize,
    /// Acknowledgements that expired and no longer suppress their finding.
    pub expired_acknowledgements: Vec<String>,
}

/// What a run looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The inputs the run looked at (same ids as `Finding::observed_by`).
    pub looked: BTreeSet<String>,
    /// The run looked at everything its scope covers: any earlier finding of the scope it does
    /// not report is resolved.
    pub whole_scope: bool,
}

impl Observation {
    /// A run that covers its whole scope.
    pub fn whole_scope() -> Observation {
        Observation {
            looked: BTreeSet::new(),
            whole_scope: true,
        }
    }

    /// A run that looked at `inputs` only.
    pub fn of(inputs: impl IntoIterator<Item = String>) -> Observation {
        Observation {
            looked: inputs.into_iter().collect(),
            whole_scope: false,
        }
    }

    /// The inputs of `observed_by` this run did not look at (empty: it could see the finding).
    /// A finding recorded without inputs (before they were kept) is seen by any run of its scope.
    pub fn unseen(&self, observed_by: &[String]) -> Vec<String> {
        if self.whole_scope {
            return Vec::new();
        }
        observed_by
            .iter()
            .filter(|i| !self.looked.contains(*i))
            .cloned()
            .collect()
    }
}

/// An earlier finding this run could not re-check: still open.
#[derive(Debug, Clone)]
pub struct NotRechecked {
    /// As last reported, status `open` (or `acknowledged`).
    pub finding: Finding,
    /// The inputs that observed it and this run did not look at.
    pub unseen: Vec<String>,
}

/// The outcome of `record`: the counts, the findings this run resolved (status `resolved`, with
/// their `resolution`), and the ones it could not re-check.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub summary: RecordSummary,
    pub resolved: Vec<Finding>,
    pub not_rechecked: Vec<NotRechecked>,
}

/// Recording runs.
pub trait Lifecycle {
    /// Records the findings of one run of `scope` at `now` that looked at `observation`: sets
    /// each finding's `status` (`new` the first time, `open` after; `acknowledged` under an
    /// unexpired acknowledgement, or when it arrives acknowledged by the config: see below),
    /// keeps the inputs that observed it, marks the scope's earlier findings that are gone and
    /// that this run could see as `resolved` (returned too, with their `resolution`), and
    /// returns those it could not see as not re-checked.
    ///
    /// A finding that arrives with status `acknowledged` and `evidence.accepted` (a sentence)
    /// is acknowledged by the config (`allow_literal = true`): the store keeps such an
    /// acknowledgement in step, and drops it when the finding arrives without.
    fn record_observed(
        &self,
        scope: &str,
        observation: &Observation,
        findings: &mut [Finding],
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError>;

    /// `record_observed` for a run that covers its whole scope.
    fn record(
        &self,
        scope: &str,
        findings: &mut [Finding],
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        self.record_observed(scope, &Observation::whole_scope(), findings, now)
    }
}

/// The stored form of `observed_by` (a JSON array), none when empty.
fn observed_json(observed_by: &[String]) -> Option<String> {
    (!observed_by.is_empty())
        .then(|| serde_json::to_string(observed_by).expect("strings serialize"))
}

/// Reads the stored `observed_by` back (NULL or unreadable: none).
pub(super) fn observed_from(column: Option<String>) -> Vec<String> {
    column
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

impl Lifecycle for SqliteStore {
    fn record_observed(
        &self,
        scope: &str,
        observation: &Observation,
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
                     status, first_seen, last_seen, times_seen, observed_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'new', ?9, ?9, 1, ?10)",
                )
                .map_err(q("prepare insert"))?;
            let mut update = tx
                .prepare_cached(
                    "UPDATE findings SET status = ?2, severity = ?3, message = ?4, finding = ?5, \
                     last_seen = ?6, resolved_at = NULL, resolution = NULL, \
                     times_seen = times_seen + 1, scope = ?7, observed_by = ?8 WHERE id = ?1",
                )
                .map_err(q("prepare update"))?;
            let mut ack = tx
                .prepare_cached(
                    "SELECT reason, expires_at, origin FROM acknowledgements WHERE finding_id = ?1",
                )
                .map_err(q("prepare acknowledgement lookup"))?;
            let mut config_ack = tx
                .prepare_cached(
                    "INSERT INTO acknowledgements (finding_id, reason, acked_by, created_at, \
                     expires_at, origin) VALUES (?1, ?2, 'config', ?3, NULL, 'config') \
                     ON CONFLICT (finding_id) DO UPDATE SET reason = excluded.reason \
                     WHERE acknowledgements.origin = 'config'",
                )
                .map_err(q("prepare config acknowledgement"))?;
            let mut drop_config_ack = tx
                .prepare_cached(
                    "DELETE FROM acknowledgements WHERE finding_id = ?1 AND origin = 'config'",
                )
                .map_err(q("prepare config acknowledgement removal"))?;
            for f in findings.iter_mut() {
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
                                now_s,
                                observed
                            ])
                            .map_err(q("insert finding"))?;
                        Status::New
                    }
                    // A finding that was resolved and came back is new again.
                    Some(prior) => {
                        let status = if prior == "resolved" { "new" } else { "open" };
                        update
                            .execute(params![
                                f.id,
                                status,
                                f.severity.as_str(),
                                f.message,
                                json,
                                now_s,
                                scope,
                                observed
                            ])
                            .map_err(q("update finding"))?;
                        if prior == "resolved" {
                            Status::New
                        } else {
                            Status::Open
                        }
                    }
                };
                match &accepted {
                    Some(reason) => config_ack
                        .execute(params![f.id, reason, now_s])
                        .map(|_| ())
                        .map_err(q("acknowledge by config"))?,
                    None => drop_config_ack
                        .execute([&f.id])
                        .map(|_| ())
                        .map_err(q("remove config acknowledgement"))?,
                }
                let acked: Option<(String, Option<String>, String)> = ack
                    .query_row([&f.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
                    .map_err(q("look up acknowledgement"))?;
                f.status = Some(status);
                match acked {
                    Some((_, Some(exp), _)) if exp.as_str() <= now_s.as_str() => {
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
        // Whatever this scope reported before and not now is resolved, if this run could see it.
        let current: std::collections::HashSet<&str> =
            findings.iter().map(|f| f.id.as_str()).collect();
        let mut resolved = Vec::new();
        let mut not_rechecked = Vec::new();
        {
            let mut stale = tx
                .prepare_cached(
                    "SELECT f.id, f.finding, f.observed_by, a.reason IS NOT NULL \
                     AND (a.expires_at IS NULL OR a.expires_at > ?2) \
                     FROM findings f LEFT JOIN acknowledgements a ON a.finding_id = f.id \
                     WHERE f.scope = ?1 AND f.status IN ('new', 'open')",
                )
                .map_err(q("prepare resolve"))?;
            let rows: Vec<(String, String, Option<String>, bool)> = stale
                .query_map(params![scope, now_s], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(q("list open findings"))?
                .collect::<Result<_, _>>()
                .map_err(q("list open findings"))?;
            let mut mark = tx
                .prepare_cached(
                    "UPDATE findings SET status = 'resolved', resolved_at = ?2, resolution = ?3 \
                     WHERE id = ?1",
                )
                .map_err(q("prepare resolve"))?;
            let mut reopen = tx
                .prepare_cached("UPDATE findings SET status = 'open' WHERE id = ?1")
                .map_err(q("prepare keep open"))?;
            for (id, json, observed, acked) in rows {
                if current.contains(id.as_str()) {
                    continue;
                }
                let Ok(mut f) = serde_json::from_str::<Finding>(&json) else {
                    continue;
                };
                f.observed_by = observed_from(observed);
                let unseen = observation.unseen(&f.observed_by);
                if !unseen.is_empty() {
                    reopen.execute([&id]).map_err(q("keep finding open"))?;
                    f.status = Some(if acked {
                        Status::Acknowledged
                    } else {
                        Status::Open
                    });
                    not_rechecked.push(NotRechecked { finding: f, unseen });
                    continue;
                }
                let resolution = Resolution::for_rule(&f.rule);
                mark.execute(params![id, now_s, resolution.as_str()])
                    .map_err(q("resolve finding"))?;
                f.status = Some(Status::Resolved);
                f.resolution = Some(resolution);
                resolved.push(f);
            }
        }
        summary.resolved = resolved.len();
        summary.not_rechecked = not_rechecked.len();
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
        Ok(Recorded {
            summary,
            resolved,
            not_rechecked,
        })
    }
}
