//! The areas not ported to PostgreSQL yet: the watch's state and the daemon's records. Their tables exist (the schema steps are the same), but every call answers
//! `StoreError::Unsupported` naming what is missing: a command that needs one of them fails
//! clearly, never reads nothing or drops what it was given.

use super::PgStore;
use crate::store::daemon::{
    DaemonHolder, DaemonRecords, JobCounts, JobOutcome, JobRun, LockOutcome, StoreStats,
};
use crate::store::watch::{Seen, StoredObject, WatchCursor, WatchObject, WatchState};
use crate::store::StoreError;
use chrono::{DateTime, Utc};

const WATCH: &str = "the money-movement watch's state (cursors, objects)";
const DAEMON: &str = "the daemon's records (job runs, scanned refs, per-job locks)";

impl WatchState for PgStore {
    fn watch_cursor(&self, _: &str, _: &str) -> Result<WatchCursor, StoreError> {
        Err(self.unsupported(WATCH))
    }
    fn watch_save_page(
        &self,
        _: &str,
        _: &str,
        _: &[WatchObject],
        _: Option<&WatchCursor>,
        _: DateTime<Utc>,
    ) -> Result<Vec<Seen>, StoreError> {
        Err(self.unsupported(WATCH))
    }
    fn watch_unjudged(&self, _: &str) -> Result<Vec<StoredObject>, StoreError> {
        Err(self.unsupported(WATCH))
    }
    fn watch_objects(
        &self,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<Vec<StoredObject>, StoreError> {
        Err(self.unsupported(WATCH))
    }
    fn watch_object(&self, _: &str, _: &str, _: &str) -> Result<Option<StoredObject>, StoreError> {
        Err(self.unsupported(WATCH))
    }
    fn watch_mark_judged(&self, _: &str, _: &[(String, String)]) -> Result<(), StoreError> {
        Err(self.unsupported(WATCH))
    }
    fn watch_prune(&self, _: &str, _: &[&str], _: DateTime<Utc>) -> Result<usize, StoreError> {
        Err(self.unsupported(WATCH))
    }
}

impl DaemonRecords for PgStore {
    fn take_daemon_lock(
        &self,
        _: &DaemonHolder,
        _: DateTime<Utc>,
        _: &dyn Fn(&DaemonHolder) -> bool,
    ) -> Result<LockOutcome, StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn renew_daemon_lock(&self, _: &DaemonHolder, _: DateTime<Utc>) -> Result<bool, StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn release_daemon_lock(&self, _: &DaemonHolder) -> Result<(), StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn daemon_lock_holder(&self) -> Result<Option<DaemonHolder>, StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn start_job_run(&self, _: &str, _: DateTime<Utc>) -> Result<i64, StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn finish_job_run(
        &self,
        _: i64,
        _: JobOutcome,
        _: &JobCounts,
        _: Option<&str>,
        _: u64,
        _: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn interrupt_job_runs(&self, _: DateTime<Utc>, _: &str) -> Result<usize, StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn job_runs(&self, _: Option<&str>, _: usize) -> Result<Vec<JobRun>, StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn last_job_success(&self, _: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn repo_refs(&self, _: &str) -> Result<Vec<(String, String)>, StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn set_repo_refs(
        &self,
        _: &str,
        _: &[(String, String)],
        _: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(self.unsupported(DAEMON))
    }
    fn store_stats(&self, _: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        Err(self.unsupported(DAEMON))
    }
}
