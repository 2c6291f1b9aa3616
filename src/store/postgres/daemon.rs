//! The daemon's records on PostgreSQL, as `store/daemon.rs`, for several daemons sharing one
//! database (on several hosts). There is no one-daemon lock: every daemon runs the schedule,
//! and a job run is claimed under a session advisory lock per job name
//! (`pg_try_advisory_lock(JOB_LOCKS, hashtext(job))`), so one job never runs twice at once
//! anywhere; a daemon that claims a job after another ran it for the same scheduled time skips
//! it. A daemon that dies loses its connection and with it its claims: the other daemons carry
//! on, and the runs it left `running` are marked interrupted by the next daemon that starts
//! (only runs whose job no other live session holds).

use super::{pg_params, PgStore};
use crate::store::daemon::{
    DaemonHolder, DaemonRecords, JobCounts, JobOutcome, JobRun, LockOutcome, StoreStats,
    RUNS_KEPT_PER_JOB,
};
use crate::store::{ts, StoreError};
use chrono::{DateTime, Utc};

/// The first key of every per-job advisory lock ("awxg"); the second is `hashtext(job)`.
const JOB_LOCKS: i32 = 0x6177_7867;

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl DaemonRecords for PgStore {
    fn daemons_share_work(&self) -> bool {
        true
    }

    fn claim_job(&self, job: &str, due: DateTime<Utc>) -> Result<bool, StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let got: bool = c
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    pg_params![JOB_LOCKS, job],
                )
                .map_err(q("claim job"))?
                .get(0);
            if !got {
                return Ok(false);
            }
            // Another daemon may have run it for this very time, and ended, before we looked.
            let done: bool = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM daemon_job_runs \
                     WHERE job = $1 AND started_at >= $2)",
                    pg_params![job, ts(due)],
                )
                .map_err(q("look for a run of this time"))?
                .get(0);
            if done {
                c.execute(
                    "SELECT pg_advisory_unlock($1, hashtext($2))",
                    pg_params![JOB_LOCKS, job],
                )
                .map_err(q("release job"))?;
                return Ok(false);
            }
            Ok(true)
        })
    }

    fn release_job(&self, job: &str) -> Result<(), StoreError> {
        self.run(|c| {
            c.execute(
                "SELECT pg_advisory_unlock($1, hashtext($2))",
                pg_params![JOB_LOCKS, job],
            )
            .map(|_| ())
            .map_err(self.q("release job"))
        })
    }

    fn take_daemon_lock(
        &self,
        _: &DaemonHolder,
        _: DateTime<Utc>,
        _: &dyn Fn(&DaemonHolder) -> bool,
    ) -> Result<LockOutcome, StoreError> {
        // Daemons share a PostgreSQL database; jobs are claimed one by one (`claim_job`).
        Ok(LockOutcome::Acquired { replaced: None })
    }

    fn renew_daemon_lock(&self, _: &DaemonHolder, _: DateTime<Utc>) -> Result<bool, StoreError> {
        // No lock to renew; the heartbeat still proves the database answers and takes writes.
        self.run(|c| {
            c.query_one("SELECT NOT pg_is_in_recovery()", &[])
                .map(|r| r.get(0))
                .map_err(self.q("heartbeat"))
        })
    }

    fn release_daemon_lock(&self, _: &DaemonHolder) -> Result<(), StoreError> {
        Ok(())
    }

    fn daemon_lock_holder(&self) -> Result<Option<DaemonHolder>, StoreError> {
        Ok(None)
    }

    fn start_job_run(&self, job: &str, now: DateTime<Utc>) -> Result<i64, StoreError> {
        self.run(|c| {
            c.query_one(
                "INSERT INTO daemon_job_runs (job, started_at, outcome) \
                 VALUES ($1, $2, 'running') RETURNING id",
                pg_params![job, ts(now)],
            )
            .map(|r| r.get(0))
            .map_err(self.q("record job start"))
        })
    }

    fn finish_job_run(
        &self,
        id: i64,
        outcome: JobOutcome,
        counts: &JobCounts,
        detail: Option<&str>,
        duration_ms: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run(|c| {
            let mut tx = c.transaction().map_err(self.q("begin job end"))?;
            tx.execute(
                "UPDATE daemon_job_runs SET ended_at = $2, outcome = $3, duration_ms = $4, \
                 findings = $5, new = $6, resolved = $7, items = $8, detail = $9 WHERE id = $1",
                pg_params![
                    id,
                    ts(now),
                    outcome.as_str(),
                    duration_ms as i64,
                    counts.findings as i64,
                    counts.new as i64,
                    counts.resolved as i64,
                    counts.items as i64,
                    detail
                ],
            )
            .map_err(self.q("record job end"))?;
            // Keep the newest runs of this job only.
            tx.execute(
                "DELETE FROM daemon_job_runs WHERE job = (SELECT job FROM daemon_job_runs \
                 WHERE id = $1) AND id <= (SELECT id FROM daemon_job_runs WHERE job = \
                 (SELECT job FROM daemon_job_runs WHERE id = $1) ORDER BY id DESC LIMIT 1 \
                 OFFSET $2)",
                pg_params![id, RUNS_KEPT_PER_JOB],
            )
            .map_err(self.q("prune job runs"))?;
            tx.commit().map_err(self.q("commit job end"))
        })
    }

    fn interrupt_job_runs(&self, now: DateTime<Utc>, why: &str) -> Result<usize, StoreError> {
        // Only runs no other live session holds the job of: another daemon's running job is
        // its own (this session's claims were its own jobs, cut short).
        self.run(|c| {
            c.execute(
                "UPDATE daemon_job_runs r SET outcome = 'interrupted', ended_at = $1, \
                 detail = $2 WHERE outcome = 'running' AND NOT EXISTS (SELECT 1 FROM pg_locks l \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
                 AND l.classid = $3::bigint::oid AND l.objid = hashtext(r.job)::oid \
                 AND l.pid <> pg_backend_pid() AND l.database = \
                 (SELECT oid FROM pg_database WHERE datname = current_database()))",
                pg_params![ts(now), why, JOB_LOCKS as i64],
            )
            .map(|n| n as usize)
            .map_err(self.q("mark interrupted runs"))
        })
    }

    fn job_runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<JobRun>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                "SELECT id, job, started_at, ended_at, outcome, duration_ms, findings, new, \
                 resolved, items, detail FROM daemon_job_runs \
                 WHERE $1::text IS NULL OR job = $1 ORDER BY id DESC LIMIT $2",
                pg_params![job, limit as i64],
            )
            .map_err(self.q("list job runs"))
        })?;
        Ok(rows
            .iter()
            .map(|r| JobRun {
                id: r.get(0),
                job: r.get(1),
                started_at: r.get(2),
                ended_at: r.get(3),
                outcome: JobOutcome::parse(r.get(4)),
                duration_ms: r.get::<_, Option<i64>>(5).map(|d| d as u64),
                counts: JobCounts {
                    findings: r.get::<_, i64>(6) as u64,
                    new: r.get::<_, i64>(7) as u64,
                    resolved: r.get::<_, i64>(8) as u64,
                    items: r.get::<_, i64>(9) as u64,
                },
                detail: r.get(10),
            })
            .collect())
    }

    fn last_job_success(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = self.run(|c| {
            c.query_opt(
                "SELECT ended_at FROM daemon_job_runs WHERE job = $1 AND outcome = 'ok' \
                 ORDER BY id DESC LIMIT 1",
                pg_params![job],
            )
            .map(|r| r.and_then(|r| r.get(0)))
            .map_err(self.q("last job success"))
        })?;
        Ok(at.as_deref().and_then(parse_ts))
    }

    fn repo_refs(&self, repo: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                "SELECT ref, commit_id FROM daemon_repo_refs WHERE repo = $1 ORDER BY ref",
                pg_params![repo],
            )
            .map_err(self.q("read repo refs"))
        })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn set_repo_refs(
        &self,
        repo: &str,
        refs: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        self.run(|c| {
            let mut tx = c.transaction().map_err(self.q("begin repo refs"))?;
            tx.execute(
                "DELETE FROM daemon_repo_refs WHERE repo = $1",
                pg_params![repo],
            )
            .map_err(self.q("clear repo refs"))?;
            let ins = tx
                .prepare(
                    "INSERT INTO daemon_repo_refs (repo, ref, commit_id, scanned_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .map_err(self.q("prepare repo refs"))?;
            for (r, cm) in refs {
                tx.execute(&ins, pg_params![repo, r, cm, now])
                    .map_err(self.q("write repo refs"))?;
            }
            tx.commit().map_err(self.q("commit repo refs"))
        })
    }

    fn store_stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let findings = c
                .query(
                    "SELECT f.severity, CASE \
                       WHEN f.status != 'resolved' AND a.finding_id IS NOT NULL \
                         AND (a.expires_at IS NULL OR a.expires_at > $1) THEN 'acknowledged' \
                       ELSE f.status END AS st, count(*) \
                     FROM findings f LEFT JOIN acknowledgements a ON a.finding_id = f.id \
                     GROUP BY f.severity, st ORDER BY f.severity, st",
                    pg_params![ts(now)],
                )
                .map_err(q("count findings"))?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
                .collect();
            let alerts_waiting = c
                .query_one(
                    "SELECT count(*) FROM alert_queue WHERE message_id IS NULL",
                    &[],
                )
                .map_err(q("count waiting alerts"))?
                .get::<_, i64>(0) as u64;
            let r = c
                .query_one(
                    "SELECT count(*) FILTER (WHERE state = 'pending'), \
                     count(*) FILTER (WHERE state = 'pending' AND attempts > 0), \
                     count(*) FILTER (WHERE state = 'dead') \
                     FROM alert_deliveries WHERE state IN ('pending', 'dead')",
                    &[],
                )
                .map_err(q("count pending deliveries"))?;
            Ok(StoreStats {
                findings,
                alerts_waiting,
                deliveries_pending: r.get::<_, i64>(0) as u64,
                deliveries_failing: r.get::<_, i64>(1) as u64,
                deliveries_dead: r.get::<_, i64>(2) as u64,
            })
        })
    }
}
