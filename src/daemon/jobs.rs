//! The job registry: which jobs the config schedules (`audit`, `watch`, `usage`, `scan:NAME`
//! per repository) and how each runs. A job is a library job (`privilege::audit::run`,
//! `watch::run`, `usage::job::ingest`, `scan::job::run` through the incremental repository
//! scan) called with the config, the clock and the store; what it reports becomes the counts
//! and the one-line detail of its recorded run.

use super::repo;
use crate::clock::Clock;
use crate::config::{Config, Schedule, ScheduledRepo};
use crate::inventory::Inventory;
use crate::privilege::audit::{self, AuditRequest};
use crate::store::{JobCounts, Store};
use crate::usage::job::{self as usage_job, IngestRequest};
use crate::watch::{self, WatchRequest};
use std::sync::Arc;

/// What a job does.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// The least-privilege audit, recorded.
    Audit { verify: bool },
    /// The incremental scan of one repository.
    Repo(Box<ScheduledRepo>),
    /// One poll of the money-movement watch, with this declared key (`None`: `[watch] key`).
    Watch { key: Option<String> },
    /// The usage ingest of `[usage] sources`: new lines only (each file's cursor resumes),
    /// then detection over the stored events, recorded.
    Usage,
}

/// A scheduled job.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Unique: `audit`, `scan:NAME`.
    pub name: String,
    pub schedule: Schedule,
    pub kind: JobKind,
}

/// What a run that went well reports.
#[derive(Debug, Clone, Default)]
pub struct JobDone {
    pub counts: JobCounts,
    pub detail: String,
    /// Usage events this run stored (new ones, not duplicates): `/metrics`' events ingested.
    pub events_stored: u64,
}

/// The jobs `config` schedules, in a stable order.
pub fn registry(config: &Config) -> Vec<JobSpec> {
    let d = &config.daemon;
    let mut jobs = Vec::new();
    if let Some(a) = &d.audit {
        jobs.push(JobSpec {
            name: "audit".into(),
            schedule: a.schedule.clone(),
            kind: JobKind::Audit { verify: a.verify },
        });
    }
    if let Some(w) = &d.watch {
        jobs.push(JobSpec {
            name: "watch".into(),
            schedule: w.schedule.clone(),
            kind: JobKind::Watch { key: w.key.clone() },
        });
    }
    if let Some(u) = &d.usage {
        jobs.push(JobSpec {
            name: "usage".into(),
            schedule: u.schedule.clone(),
            kind: JobKind::Usage,
        });
    }
    for r in &d.repos {
        jobs.push(JobSpec {
            name: format!("scan:{}", r.name),
            schedule: r.schedule.clone(),
            kind: JobKind::Repo(Box::new(r.clone())),
        });
    }
    jobs
}

/// An error with its causes, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        source = c.source();
    }
    s
}

/// Runs one job once.
pub async fn run(
    kind: &JobKind,
    config: &Config,
    clock: &dyn Clock,
    store: Arc<dyn Store>,
) -> Result<JobDone, String> {
    match kind {
        JobKind::Audit { verify } => {
            let req = AuditRequest {
                no_verify: !verify,
                record: true,
                ..AuditRequest::default()
            };
            let r = audit::run(req, config, clock, Some(store))
                .await
                .map_err(|e| chain(&e))?;
            let record = r.audit.store.clone().unwrap_or_default();
            let counts = JobCounts {
                findings: r.findings.len() as u64,
                new: record.new as u64,
                resolved: record.resolved as u64,
                items: r.audit.keys as u64,
            };
            Ok(JobDone {
                detail: format!(
                    "{} keys, {} findings, {} new, {} resolved{}",
                    counts.items,
                    counts.findings,
                    counts.new,
                    counts.resolved,
                    if r.problems.is_empty() {
                        String::new()
                    } else {
                        format!(", {} inputs unreadable", r.problems.len())
                    }
                ),
                counts,
                ..JobDone::default()
            })
        }
        JobKind::Watch { key } => {
            let req = WatchRequest {
                key: key.clone(),
                calls: None,
            };
            let w = watch::run(&req, config, clock, store)
                .await
                .map_err(|e| chain(&e))?;
            let record = w.store.clone().unwrap_or_default();
            let counts = JobCounts {
                findings: w.findings.len() as u64,
                new: record.new as u64,
                resolved: record.resolved as u64,
                items: w.judged as u64,
            };
            Ok(JobDone {
                detail: format!(
                    "key {}: {} objects judged in {} API calls, {} findings, {} new{}{}",
                    w.watcher,
                    w.judged,
                    w.api_calls,
                    counts.findings,
                    counts.new,
                    if w.complete {
                        ""
                    } else {
                        ", some lists not read up to now"
                    },
                    if w.problems.is_empty() {
                        String::new()
                    } else {
                        format!("; problems: {}", w.problems.join("; "))
                    }
                ),
                counts,
                ..JobDone::default()
            })
        }
        JobKind::Usage => {
            let req = IngestRequest {
                inputs: Vec::new(),
                fingerprints: Inventory::fingerprints_of(config),
            };
            let u = usage_job::ingest(req, config, clock, store)
                .await
                .map_err(|e| chain(&e))?;
            let s = &u.summary;
            let record = s.store.clone().unwrap_or_default();
            let counts = JobCounts {
                findings: u.findings.len() as u64,
                new: record.new as u64,
                resolved: record.resolved as u64,
                items: s.new,
            };
            let mut detail = format!(
                "{} sources: {} lines, {} events stored, {} duplicates, {} rejected; {} \
                 findings, {} new, {} resolved",
                s.sources.len(),
                s.lines,
                s.new,
                s.duplicates,
                s.rejected + s.future,
                counts.findings,
                counts.new,
                counts.resolved
            );
            let notes: Vec<String> = s
                .sources
                .iter()
                .filter_map(|src| Some(format!("{}: {}", src.source, src.note.as_ref()?)))
                .filter(|n| !n.ends_with("unchanged since the last read"))
                .collect();
            if !notes.is_empty() {
                detail.push_str("; ");
                detail.push_str(&notes.join("; "));
            }
            if let Some(p) = u.problems.first() {
                detail.push_str(&format!("; first problem: {p}"));
            }
            Ok(JobDone {
                events_stored: s.new,
                detail: crate::redact::scrub(&detail).into_owned(),
                counts,
            })
        }
        JobKind::Repo(job) => {
            let r = repo::scan(job, config, clock, store)
                .await
                .map_err(|e| chain(&e))?;
            Ok(JobDone {
                counts: r.counts,
                detail: r.detail,
                ..JobDone::default()
            })
        }
    }
}
