//! The job table: which jobs are on the board, firing the due ones (never one still running),
//! running each as a task that records its start and end, and what an ended run changes.

use super::{blocking, clip, ts, Daemon};
use crate::daemon::jobs::{self, JobDone, JobSpec};
use crate::daemon::metrics::JobLabels;
use crate::daemon::state::JobState;
use crate::store::JobOutcome;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Instant;
use tokio::task::JoinError;
/// A job run that ended.
pub(super) struct Ended {
    name: String,
    result: Result<JobDone, String>,
    /// Not run here: another daemon sharing the database runs it, or ran it for this time.
    elsewhere: bool,
    seconds: f64,
    at: DateTime<Utc>,
}

/// Aborts the task when dropped (a job's wrapper aborted at the drain timeout aborts the job).
pub(super) struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Daemon {
    /// Puts `specs` on the board, keeping what is known of jobs that stay.
    pub(super) async fn take_jobs(
        &mut self,
        specs: Vec<JobSpec>,
        mut old: BTreeMap<String, JobState>,
    ) {
        let now = self.shared.clock.now();
        let tz = self.config.daemon.timezone;
        let mut jobs = BTreeMap::new();
        for spec in specs {
            let name = spec.name.clone();
            self.metrics().declare_job(&name);
            let state = match old.remove(&name) {
                Some(prev) => JobState {
                    next: spec.schedule.next_after(now, tz),
                    spec,
                    ..prev
                },
                None => {
                    let (s, n) = (self.shared.store.clone(), name.clone());
                    let last = blocking(move || s.last_job_success(&n))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten();
                    if let Some(t) = last {
                        self.metrics()
                            .job_last_success
                            .get_or_create(&JobLabels { job: name.clone() })
                            .set(t.timestamp_millis() as f64 / 1000.0);
                    }
                    JobState {
                        next: spec.schedule.next_after(now, tz),
                        spec,
                        since: now,
                        last_success: last,
                        last_error: None,
                        running_since: self.in_flight.get(&name).copied(),
                    }
                }
            };
            jobs.insert(name, state);
        }
        for (name, _) in old {
            let running = self.in_flight.contains_key(&name);
            tracing::info!(
                "job {name} is no longer scheduled{}",
                if running {
                    " (its current run finishes)"
                } else {
                    ""
                }
            );
        }
        let mut board = self.shared.board_mut();
        board.jobs = jobs;
        board.tz = tz;
    }

    /// Starts every job whose time has come, unless it is still running.
    pub(super) fn fire_due(&mut self, now: DateTime<Utc>) {
        let due: Vec<(JobSpec, DateTime<Utc>)> = {
            let mut board = self.shared.board_mut();
            let tz = board.tz;
            let mut due = Vec::new();
            for (name, j) in board.jobs.iter_mut() {
                if j.next.is_none_or(|n| n > now) {
                    continue;
                }
                let slot = j.next.unwrap_or(now);
                j.next = j.spec.schedule.next_after(now, tz);
                if let Some(since) = self.in_flight.get(name) {
                    self.shared.metrics.job_skipped(name);
                    tracing::info!(
                        "job {name}: still running since {}; this run is skipped (next {})",
                        ts(*since),
                        j.next.map_or("never".into(), ts)
                    );
                    continue;
                }
                j.running_since = Some(now);
                due.push((j.spec.clone(), slot));
            }
            due
        };
        for (spec, slot) in due {
            self.in_flight.insert(spec.name.clone(), now);
            self.spawn(spec, slot);
        }
    }

    /// Runs `spec` for its scheduled time `slot`. Daemons sharing a database (PostgreSQL) first
    /// claim the job (`claim_job`): one run at a time anywhere, one run per scheduled time.
    pub(super) fn spawn(&mut self, spec: JobSpec, slot: DateTime<Utc>) {
        let (config, store, clock) = (
            self.config.clone(),
            self.shared.store.clone(),
            self.shared.clock.clone(),
        );
        let name = spec.name.clone();
        self.metrics().job_started(&name);
        tracing::debug!("job {name}: starting");
        self.running.spawn(async move {
            let t0 = Instant::now();
            let shared_db = store.daemons_share_work();
            if shared_db {
                let (s, n) = (store.clone(), name.clone());
                let claimed = tokio::task::spawn_blocking(move || s.claim_job(&n, slot)).await;
                let result = match claimed {
                    Ok(Ok(true)) => None,
                    Ok(Ok(false)) => Some(Ok(JobDone::default())),
                    Ok(Err(e)) => Some(Err(format!("cannot claim the job: {e}"))),
                    Err(e) => Some(Err(format!("cannot claim the job: {e}"))),
                };
                if let Some(result) = result {
                    return Ended {
                        elsewhere: result.is_ok(),
                        name,
                        result,
                        seconds: t0.elapsed().as_secs_f64(),
                        at: clock.now(),
                    };
                }
            }
            let start = clock.now();
            let (s, n) = (store.clone(), name.clone());
            let id = match tokio::task::spawn_blocking(move || s.start_job_run(&n, start)).await {
                Ok(Ok(id)) => Some(id),
                Ok(Err(e)) => {
                    tracing::warn!("job {name}: cannot record its start: {e}");
                    None
                }
                Err(_) => None,
            };
            let inner = {
                let (clock, store) = (clock.clone(), store.clone());
                tokio::spawn(
                    async move { jobs::run(&spec.kind, &config, clock.as_ref(), store).await },
                )
            };
            let guard = AbortOnDrop(inner.abort_handle());
            let result = match inner.await {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(format!("the job panicked: {e}")),
                Err(e) => Err(e.to_string()),
            };
            drop(guard);
            let seconds = t0.elapsed().as_secs_f64();
            let at = clock.now();
            if let Some(id) = id {
                let (outcome, counts, detail) = match &result {
                    Ok(done) => (JobOutcome::Ok, done.counts.clone(), clip(&done.detail)),
                    Err(e) => (JobOutcome::Failed, Default::default(), clip(e)),
                };
                let ms = (seconds * 1000.0) as u64;
                let s = store.clone();
                let n = name.clone();
                match tokio::task::spawn_blocking(move || {
                    s.finish_job_run(id, outcome, &counts, Some(&detail), ms, at)
                })
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("job {n}: cannot record its end: {e}"),
                    Err(_) => {}
                }
            }
            if shared_db {
                let (s, n) = (store.clone(), name.clone());
                match tokio::task::spawn_blocking(move || s.release_job(&n)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("job {name}: cannot release its claim: {e}"),
                    Err(_) => {}
                }
            }
            Ended {
                elsewhere: false,
                name,
                result,
                seconds,
                at,
            }
        });
    }

    pub(super) fn job_ended(&mut self, r: Result<Ended, JoinError>) {
        let e = match r {
            Ok(e) => e,
            Err(err) => {
                // Only aborted at the drain timeout; the wrapper itself does not panic.
                tracing::warn!("a job wrapper ended abnormally: {err}");
                return;
            }
        };
        self.in_flight.remove(&e.name);
        let at = e.at.timestamp_millis() as f64 / 1000.0;
        let mut board = self.shared.board_mut();
        if e.elsewhere {
            self.shared.metrics.job_skipped(&e.name);
            tracing::info!(
                "job {}: run by another daemon sharing this database; skipped here",
                e.name
            );
            if let Some(j) = board.jobs.get_mut(&e.name) {
                j.running_since = None;
            }
            return;
        }
        let next = board.jobs.get(&e.name).and_then(|j| j.next);
        match &e.result {
            Ok(done) => {
                self.shared
                    .metrics
                    .job_ended(&e.name, "ok", e.seconds, done.counts.new, at);
                if done.events_stored > 0 {
                    self.shared.metrics.file_events_stored(done.events_stored);
                }
                tracing::info!("job {} ok in {:.1} s: {}", e.name, e.seconds, done.detail);
            }
            Err(err) => {
                self.shared
                    .metrics
                    .job_ended(&e.name, "failed", e.seconds, 0, at);
                tracing::warn!(
                    "job {} failed after {:.1} s (retried at its next time, {}): {err}",
                    e.name,
                    e.seconds,
                    next.map_or("never".into(), ts)
                );
            }
        }
        if let Some(j) = board.jobs.get_mut(&e.name) {
            j.running_since = None;
            match e.result {
                Ok(_) => {
                    j.last_success = Some(e.at);
                    j.last_error = None;
                }
                Err(err) => j.last_error = Some(clip(&err)),
            }
        }
        drop(board);
        // What the run recorded goes out now.
        self.request_delivery();
    }
}
