//! `awxguard daemon`: awxguard running by itself. It owns the process's one tokio runtime (like
//! `cli::run`), takes the database's daemon lock, and hands everything else to one lifecycle
//! owner (`lifecycle`): the scheduler (cron schedules of `[daemon]`, a job never overlapping
//! itself, every run recorded, a failing job logged, counted and retried at its next time), alert
//! delivery after every job and on a timer, the optional in-process proxy, signals (SIGTERM and
//! SIGINT drain, SIGHUP reloads a validated config or keeps the old one and says why), the lock's
//! heartbeat and systemd's readiness and watchdog. The loopback HTTP endpoint (`http`) serves
//! `/healthz`, `/readyz` and `/metrics` (`metrics`).
//!
//! Pieces: `jobs` (the registry: which jobs the config schedules and how each runs), `repo` (the
//! incremental repository scan), `lock` (one daemon per database), `state` (what the loop shares
//! with the HTTP handlers), `notify` (systemd).

pub mod http;
pub mod jobs;
mod lifecycle;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod repo;
pub mod state;

use crate::config::{Config, ConfigError};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::time::Duration;

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file, re-read on SIGHUP.
    pub config_path: PathBuf,
    /// `--db` / `AWXGUARD_DB`, over `[store] path`.
    pub db: Option<PathBuf>,
}

/// Why the daemon could not start (once it runs, nothing but a signal or a lost lock stops it).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{0}: nothing to run: schedule the audit ([daemon.audit] schedule), a repository scan \
         ([[daemon.repo]] path and schedule), the watch ([daemon.watch] schedule), the usage \
         ingest ([daemon.usage] schedule) or set [daemon] proxy = true (see \
         examples/awxguard.toml)"
    )]
    NothingToDo(PathBuf),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(
        "cannot serve health and metrics on {addr}: {source}; set [daemon] listen to a free \
         loopback port"
    )]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the daemon stopped: {0}")]
    Panicked(String),
}

/// Runs the daemon until a stop signal; builds and owns the process's runtime.
pub fn run(opts: Options) -> Result<(), DaemonError> {
    let config = Config::load(&opts.config_path, true)?;
    if !config.daemon.has_work() {
        return Err(DaemonError::NothingToDo(opts.config_path));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("awxguard-daemon")
        .build()
        .map_err(DaemonError::Runtime)?;
    let result = runtime.block_on(lifecycle::serve(opts, config));
    // Jobs interrupted at the drain timeout may still hold a blocking thread (a scan in
    // progress): do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// One job's next firings, for `awxguard daemon --check`.
#[derive(Debug, Clone)]
pub struct Planned {
    pub job: String,
    pub schedule: String,
    pub next: Vec<DateTime<Utc>>,
}

/// The jobs the config schedules, with their next `count` firings after `now`.
pub fn plan(config: &Config, now: DateTime<Utc>, count: usize) -> Vec<Planned> {
    let tz = config.daemon.timezone;
    jobs::registry(config)
        .into_iter()
        .map(|j| {
            let mut next = Vec::new();
            let mut t = now;
            while next.len() < count {
                match j.schedule.next_after(t, tz) {
                    Some(n) => {
                        next.push(n);
                        t = n;
                    }
                    None => break,
                }
            }
            Planned {
                job: j.name,
                schedule: j.schedule.expr,
                next,
            }
        })
        .collect()
}

/// What `awxguard daemon --check` found: the config is valid and schedules work; each job's
/// schedule and next firings, in the daemon's time zone.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub config_path: PathBuf,
    pub timezone: chrono_tz::Tz,
    pub listen: String,
    pub jobs: Vec<Planned>,
    /// The in-process proxy's address, when `[daemon] proxy = true`.
    pub proxy: Option<String>,
}

impl CheckOutcome {
    /// The report `--check` prints.
    pub fn lines(&self) -> Vec<String> {
        let tz = self.timezone;
        let mut out = vec![format!(
            "{}: ok; schedules in {tz}; health and metrics on http://{}",
            self.config_path.display(),
            self.listen
        )];
        for p in &self.jobs {
            let next: Vec<String> = p
                .next
                .iter()
                .map(|t| {
                    t.with_timezone(&tz)
                        .format("%Y-%m-%d %H:%M:%S %Z")
                        .to_string()
                })
                .collect();
            out.push(format!(
                "  {:<24} {:<18} next: {}",
                p.job,
                p.schedule,
                next.join(", ")
            ));
        }
        if let Some(addr) = &self.proxy {
            out.push(format!("  {:<24} listening on {addr}", "proxy"));
        }
        out
    }
}

/// Loads and checks the daemon's config without starting anything: refused when it schedules
/// nothing; otherwise each job's next three firings after `now`.
pub fn check(
    config_path: &std::path::Path,
    now: DateTime<Utc>,
) -> Result<CheckOutcome, DaemonError> {
    let config = Config::load(config_path, true)?;
    if !config.daemon.has_work() {
        return Err(DaemonError::NothingToDo(config_path.to_path_buf()));
    }
    Ok(CheckOutcome {
        config_path: config_path.to_path_buf(),
        timezone: config.daemon.timezone,
        listen: config.daemon.listen.to_string(),
        jobs: plan(&config, now, 3),
        proxy: config.daemon.proxy.then(|| {
            config
                .proxy
                .listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:8788".into())
        }),
    })
}
