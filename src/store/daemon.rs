//! The daemon's area: the lock that keeps one daemon per database, the record of every scheduled
//! job run, the commit each ref of a scanned repository was last scanned at, and the counts
//! `/metrics` shows (findings by severity and status, outbox depth).

use super::{params, ts, SqliteStore, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior};
use serde::Serialize;

/// Who holds (or wants) the daemon lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonHolder {
    pub pid: u32,
    pub host: String,
    /// RFC 3339.
    pub started_at: String,
    /// The awxguard version.
    pub version: String,
    /// RFC 3339; set when read from the store.
    pub heartbeat_at: Option<String>,
}

/// What taking the lock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// Taken; `replaced` names a previous holder judged gone.
    Acquired { replaced: Option<DaemonHolder> },
    /// Another daemon holds it.
    Held(DaemonHolder),
}

/// How a job run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobOutcome {
    Running,
    Ok,
    Failed,
    Interrupted,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Running => "running",
            JobOutcome::Ok => "ok",
            JobOutcome::Failed => "failed",
            JobOutcome::Interrupted => "interrupted",
        }
    }

    pub(crate) fn parse(s: &str) -> JobOutcome {
        match s {
            "running" => JobOutcome::Running,
            "ok" => JobOutcome::Ok,
            "failed" => JobOutcome::Failed,
            _ => JobOutcome::Interrupted,
        }
    }
}

/// The counts a job run reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub findings: u64,
    pub new: u64,
    pub resolved: u64,
    /// The job's own unit: blobs scanned, events ingested...
    pub items: u64,
}

/// One recorded job run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRun {
    pub id: i64,
    pub job: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: JobOutcome,
    pub duration_ms: Option<u64>,
    pub counts: JobCounts,
    pub detail: Option<String>,
}

/// Counts for `/metrics`, read at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// (severity, status, count); status as of now (`acknowledged` under an unexpired
    /// acknowledgement).
    pub findings: Vec<(String, String, u64)>,
    /// Queued alerts not yet sealed into a message.
    pub alerts_waiting: u64,
    /// Deliveries not yet accepted by their sink.
    pub deliveries_pending: u64,
    /// Pending deliveries that failed at least once.
    pub deliveries_failing: u64,
    /// Deliveries that gave up (`dead`): never retried, an operator must look.
    pub deliveries_dead: u64,
}

/// Runs kept per job; older ones are pruned as new ones finish.
pub const RUNS_KEPT_PER_JOB: i64 = 1000;

/// The daemon's records.
pub trait DaemonRecords {
    /// Takes the lock for `me` unless a holder that `alive` judges alive has it.
    fn take_daemon_lock(
        &self,
        me: &DaemonHolder,
        now: DateTime<Utc>,
        alive: &dyn Fn(&DaemonHolder) -> bool,
    ) -> Result<LockOutcome, StoreError>;
    /// Renews `me`'s heartbeat (a write: it also proves the database writable); false when `me`
    /// no longer holds the lock.
    fn renew_daemon_lock(&self, me: &DaemonHolder, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Gives the lock up (if `me` holds it).
    fn release_daemon_lock(&self, me: &DaemonHolder) -> Result<(), StoreError>;
    /// The current holder, if any.
    fn daemon_lock_holder(&self) -> Result<Option<DaemonHolder>, StoreError>;

    /// Records the start of a run of `job`; returns its id.
    fn start_job_run(&self, job: &str, now: DateTime<Utc>) -> Result<i64, StoreError>;
    /// Records how run `id` ended.
    fn finish_job_run(
        &self,
        id: i64,
        outcome: JobOutcome,
        counts: &JobCounts,
        detail: Option<&str>,
        duration_ms: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Marks every run still `running` as `interrupted` (left by a daemon that is gone, or cut
    /// short by this one's stop); returns how many.
    fn interrupt_job_runs(&self, now: DateTime<Utc>, why: &str) -> Result<usize, StoreError>;
    /// The newest runs (of one job, or all), newest first.
    fn job_runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<JobRun>, StoreError>;
    /// When `job` last ended well.
    fn last_job_success(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The commit each ref of `repo` was last scanned at.
    fn repo_refs(&self, repo: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Replaces what is remembered of `repo`'s refs.
    fn set_repo_refs(
        &self,
        repo: &str,
        refs: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Findings by severity and status, and the outbox's depth.
    fn store_stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError>;

    /// Whether several daemons share this database and its work (PostgreSQL): then there is no
    /// one-daemon lock, and each job run is claimed with `claim_job`. SQLite: one daemon per
    /// database (`take_daemon_lock`).
    fn daemons_share_work(&self) -> bool {
        false
    }
    /// Claims `job` for its run scheduled at `due`: false when another daemon is running it or
    /// already ran it for that time. Held until `release_job` (or until this process's
    /// connection ends).
    fn claim_job(&self, _job: &str, _due: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Gives a claimed job up.
    fn release_job(&self, _job: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn holder_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DaemonHolder> {
    Ok(DaemonHolder {
        pid: r.get::<_, i64>(0)? as u32,
        host: r.get(1)?,
        started_at: r.get(2)?,
        heartbeat_at: Some(r.get(3)?),
        version: r.get(4)?,
    })
}

const HOLDER: &str =
    "SELECT pid, host, started_at, heartbeat_at, version FROM daemon_lock WHERE id = 1";

impl DaemonRecords for SqliteStore {
    fn take_daemon_lock(
        &self,
        me: &DaemonHolder,
        now: DateTime<Utc>,
        alive: &dyn Fn(&DaemonHolder) -> bool,
    ) -> Result<LockOutcome, StoreError> {
        let q = |what: &'static str| self.q(what);
        let mut conn = self.conn();
        // IMMEDIATE: two daemons starting at once serialize here; the second sees the first.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(q("begin lock"))?;
        let current = tx
            .query_row(HOLDER, params![], holder_row)
            .optional()
            .map_err(q("read lock"))?;
        if let Some(h) = &current {
            let same = h.pid == me.pid && h.host == me.host && h.started_at == me.started_at;
            if !same && alive(h) {
                return Ok(LockOutcome::Held(h.clone()));
            }
        }
        tx.execute(
            "INSERT INTO daemon_lock (id, pid, host, started_at, heartbeat_at, version) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO UPDATE SET pid = ?1, host = ?2, started_at = ?3, \
             heartbeat_at = ?4, version = ?5",
            params![me.pid as i64, me.host, me.started_at, ts(now), me.version],
        )
        .map_err(q("take lock"))?;
        tx.commit().map_err(q("commit lock"))?;
        Ok(LockOutcome::Acquired { replaced: current })
    }

    fn renew_daemon_lock(&self, me: &DaemonHolder, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE daemon_lock SET heartbeat_at = ?4 \
                 WHERE id = 1 AND pid = ?1 AND host = ?2 AND started_at = ?3",
                params![me.pid as i64, me.host, me.started_at, ts(now)],
            )
            .map_err(self.q("renew lock"))?;
        Ok(n == 1)
    }

    fn release_daemon_lock(&self, me: &DaemonHolder) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "DELETE FROM daemon_lock WHERE id = 1 AND pid = ?1 AND host = ?2 AND started_at = ?3",
                params![me.pid as i64, me.host, me.started_at],
            )
            .map_err(self.q("release lock"))?;
        Ok(())
    }

    fn daemon_lock_holder(&self) -> Result<Option<DaemonHolder>, StoreError> {
        self.conn()
            .query_row(HOLDER, params![], holder_row)
            .optional()
            .map_err(self.q("read lock"))
    }

    fn start_job_run(&self, job: &str, now: DateTime<Utc>) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT INTO daemon_job_runs (job, started_at, outcome) VALUES (?1, ?2, 'running')",
        )
        .and_then(|mut s| s.execute(params![job, ts(now)]))
        .map_err(self.q("record job start"))?;
        Ok(conn.last_insert_rowid())
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
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin job end"))?;
        tx.prepare_cached(
            "UPDATE daemon_job_runs SET ended_at = ?2, outcome = ?3, duration_ms = ?4, \
             findings = ?5, new = ?6, resolved = ?7, items = ?8, detail = ?9 WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                ts(now),
                outcome.as_str(),
                duration_ms as i64,
                counts.findings as i64,
                counts.new as i64,
                counts.resolved as i64,
                counts.items as i64,
                detail
            ])
        })
        .map_err(self.q("record job end"))?;
        // Keep the newest runs of this job only.
        tx.prepare_cached(
            "DELETE FROM daemon_job_runs WHERE job = (SELECT job FROM daemon_job_runs WHERE id = ?1) \
             AND id <= (SELECT id FROM daemon_job_runs WHERE job = \
             (SELECT job FROM daemon_job_runs WHERE id = ?1) ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )
        .and_then(|mut s| s.execute(params![id, RUNS_KEPT_PER_JOB]))
        .map_err(self.q("prune job runs"))?;
        tx.commit().map_err(self.q("commit job end"))?;
        Ok(())
    }

    fn interrupt_job_runs(&self, now: DateTime<Utc>, why: &str) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "UPDATE daemon_job_runs SET outcome = 'interrupted', ended_at = ?1, detail = ?2 \
                 WHERE outcome = 'running'",
                params![ts(now), why],
            )
            .map_err(self.q("mark interrupted runs"))
    }

    fn job_runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<JobRun>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, job, started_at, ended_at, outcome, duration_ms, findings, new, \
                 resolved, items, detail FROM daemon_job_runs WHERE ?1 IS NULL OR job = ?1 \
                 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.q("prepare job runs"))?;
        let rows = stmt
            .query_map(params![job, limit as i64], |r| {
                Ok(JobRun {
                    id: r.get(0)?,
                    job: r.get(1)?,
                    started_at: r.get(2)?,
                    ended_at: r.get(3)?,
                    outcome: JobOutcome::parse(&r.get::<_, String>(4)?),
                    duration_ms: r.get::<_, Option<i64>>(5)?.map(|d| d as u64),
                    counts: JobCounts {
                        findings: r.get::<_, i64>(6)? as u64,
                        new: r.get::<_, i64>(7)? as u64,
                        resolved: r.get::<_, i64>(8)? as u64,
                        items: r.get::<_, i64>(9)? as u64,
                    },
                    detail: r.get(10)?,
                })
            })
            .map_err(self.q("list job runs"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.q("list job runs"))
    }

    fn last_job_success(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = self
            .conn()
            .query_row(
                "SELECT ended_at FROM daemon_job_runs WHERE job = ?1 AND outcome = 'ok' \
                 ORDER BY id DESC LIMIT 1",
                params![job],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.q("last job success"))?
            .flatten();
        Ok(at.as_deref().and_then(parse_ts))
    }

    fn repo_refs(&self, repo: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT ref, commit_id FROM daemon_repo_refs WHERE repo = ?1 ORDER BY ref",
            )
            .map_err(self.q("prepare repo refs"))?;
        let rows = stmt
            .query_map(params![repo], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.q("read repo refs"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.q("read repo refs"))
    }

    fn set_repo_refs(
        &self,
        repo: &str,
        refs: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin repo refs"))?;
        tx.execute(
            "DELETE FROM daemon_repo_refs WHERE repo = ?1",
            params![repo],
        )
        .map_err(self.q("clear repo refs"))?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO daemon_repo_refs (repo, ref, commit_id, scanned_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(self.q("prepare repo refs"))?;
            let now = ts(now);
            for (r, c) in refs {
                ins.execute(params![repo, r, c, now])
                    .map_err(self.q("write repo refs"))?;
            }
        }
        tx.commit().map_err(self.q("commit repo refs"))
    }

    fn store_stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        let conn = self.conn();
        let mut stats = StoreStats::default();
        let mut stmt = conn
            .prepare_cached(
                "SELECT f.severity, CASE \
                   WHEN f.status != 'resolved' AND a.finding_id IS NOT NULL \
                     AND (a.expires_at IS NULL OR a.expires_at > ?1) THEN 'acknowledged' \
                   ELSE f.status END AS st, count(*) \
                 FROM findings f LEFT JOIN acknowledgements a ON a.finding_id = f.id \
                 GROUP BY f.severity, st ORDER BY f.severity, st",
            )
            .map_err(self.q("prepare finding counts"))?;
        stats.findings = stmt
            .query_map(params![ts(now)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })
            .map_err(self.q("count findings"))?
            .collect::<Result<_, _>>()
            .map_err(self.q("count findings"))?;
        stats.alerts_waiting = conn
            .query_row(
                "SELECT count(*) FROM alert_queue WHERE message_id IS NULL",
                params![],
                |r| r.get::<_, i64>(0),
            )
            .map_err(self.q("count waiting alerts"))? as u64;
        let (pending, failing, dead): (i64, i64, i64) = conn
            .query_row(
                "SELECT coalesce(sum(state = 'pending'), 0), \
                 coalesce(sum(state = 'pending' AND attempts > 0), 0), \
                 coalesce(sum(state = 'dead'), 0) FROM alert_deliveries \
                 WHERE state IN ('pending', 'dead')",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(self.q("count pending deliveries"))?;
        stats.deliveries_pending = pending as u64;
        stats.deliveries_failing = failing as u64;
        stats.deliveries_dead = dead as u64;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Finding, Severity};
    use crate::store::{Acknowledgements, Lifecycle};

    fn holder(pid: u32) -> DaemonHolder {
        DaemonHolder {
            pid,
            host: "h1".into(),
            started_at: "2026-12-04T10:00:00Z".into(),
            version: "0.1.0".into(),
            heartbeat_at: None,
        }
    }

    #[test]
    fn one_holder_at_a_time_and_a_dead_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let now = Utc::now();
        let (a, b) = (holder(10), holder(11));
        assert_eq!(
            s.take_daemon_lock(&a, now, &|_| true).unwrap(),
            LockOutcome::Acquired { replaced: None }
        );
        match s.take_daemon_lock(&b, now, &|_| true).unwrap() {
            LockOutcome::Held(h) => assert_eq!(h.pid, 10),
            o => panic!("{o:?}"),
        }
        assert!(s.renew_daemon_lock(&a, now).unwrap());
        assert!(!s.renew_daemon_lock(&b, now).unwrap());
        // a is judged gone: b takes over and a learns it lost the lock.
        match s.take_daemon_lock(&b, now, &|h| h.pid != 10).unwrap() {
            LockOutcome::Acquired { replaced: Some(h) } => assert_eq!(h.pid, 10),
            o => panic!("{o:?}"),
        }
        assert!(!s.renew_daemon_lock(&a, now).unwrap());
        s.release_daemon_lock(&a).unwrap();
        assert_eq!(s.daemon_lock_holder().unwrap().unwrap().pid, 11);
        s.release_daemon_lock(&b).unwrap();
        assert!(s.daemon_lock_holder().unwrap().is_none());
    }

    /// Regression (found by the soak): with the proxy writing events beside it, recording a run
    /// (reads, then writes) failed at once with "database is locked". Every transaction now takes
    /// the write lock when it begins, so another writer waits instead.
    #[test]
    fn a_transaction_that_reads_then_writes_survives_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let s = SqliteStore::open(&p).unwrap();
        let other = rusqlite::Connection::open(&p).unwrap();
        other.busy_timeout(std::time::Duration::ZERO).unwrap();
        let insert =
            "INSERT INTO runs (scope, at, findings, new, resolved) VALUES ('x', 't', 0, 0, 0)";
        let mut c = s.conn();
        let tx = c.transaction().unwrap();
        let _: i64 = tx
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert!(
            other.execute(insert, []).is_err(),
            "the other writer waits for this transaction"
        );
        tx.execute(insert, []).unwrap();
        tx.commit().unwrap();
        drop(c);
        other.execute(insert, []).unwrap();
    }

    #[test]
    fn job_runs_are_recorded_interrupted_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let now = Utc::now();
        let id = s.start_job_run("audit", now).unwrap();
        let counts = JobCounts {
            findings: 3,
            new: 1,
            resolved: 0,
            items: 7,
        };
        s.finish_job_run(id, JobOutcome::Ok, &counts, Some("fine"), 12, now)
            .unwrap();
        assert!(s.last_job_success("audit").unwrap().is_some());
        assert!(s.last_job_success("scan:x").unwrap().is_none());
        s.start_job_run("scan:x", now).unwrap();
        assert_eq!(s.interrupt_job_runs(now, "daemon gone").unwrap(), 1);
        let runs = s.job_runs(None, 10).unwrap();
        assert_eq!(runs[0].outcome, JobOutcome::Interrupted);
        assert_eq!(runs[1].counts, counts);
        for _ in 0..RUNS_KEPT_PER_JOB + 5 {
            let id = s.start_job_run("scan:x", now).unwrap();
            s.finish_job_run(id, JobOutcome::Failed, &JobCounts::default(), None, 1, now)
                .unwrap();
        }
        assert_eq!(
            s.job_runs(Some("scan:x"), 5000).unwrap().len() as i64,
            RUNS_KEPT_PER_JOB
        );
        assert_eq!(s.job_runs(Some("audit"), 10).unwrap().len(), 1);
    }

    #[test]
    fn repo_refs_are_replaced_and_stats_count_findings_by_status() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let now = Utc::now();
        s.set_repo_refs("/r", &[("refs/heads/main".into(), "abc".into())], now)
            .unwrap();
        s.set_repo_refs("/r", &[("refs/heads/dev".into(), "def".into())], now)
            .unwrap();
        assert_eq!(
            s.repo_refs("/r").unwrap(),
            vec![("refs/heads/dev".to_string(), "def".to_string())]
        );
        let mut f = vec![
            Finding::new("privilege.a", Severity::High, "m", &["1"]),
            Finding::new("privilege.b", Severity::High, "m", &["2"]),
            Finding::new("privilege.c", Severity::Low, "m", &["3"]),
        ];
        s.record("audit", &mut f, now).unwrap();
        s.acknowledge(&f[1].id, "ok", None, None, now).unwrap();
        let stats = s.store_stats(now).unwrap();
        assert_eq!(
            stats.findings,
            vec![
                ("high".into(), "acknowledged".into(), 1),
                ("high".into(), "new".into(), 1),
                ("low".into(), "new".into(), 1)
            ]
        );
        assert_eq!(stats.alerts_waiting, 0);
    }
}
