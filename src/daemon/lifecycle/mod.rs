//! The one lifecycle owner. A single loop holds the job table and everything running, and wakes
//! for whichever comes first: a job falling due, a job ending, an alert delivery round ending or
//! falling due, the proxy stopping, the lock's heartbeat, the watchdog, or a signal. Jobs run as
//! tasks (each wrapped so a panic is a failure, and aborting the wrapper aborts the job); the loop
//! never waits for one. SIGHUP validates the new config before swapping it in. SIGTERM or SIGINT
//! stops scheduling, stops the proxy and gives running jobs `drain_timeout` to finish (a second
//! signal cuts that short); what is still running then is interrupted and recorded so.
//!
//! Pieces: `runs` (the job table: firing, running, recording each run), `delivery` (alert
//! delivery rounds), `proxy` (the in-process proxy's start, stop and restart), `reload`
//! (SIGHUP), `drain` (the stop).

use super::http;
use super::jobs;
use super::lock;
use super::metrics::Metrics;
use super::notify;
use super::state::Shared;
use super::{DaemonError, Options};
use crate::alert::{self, deliver::DeliverError, DeliveryReport};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{self, DaemonHolder, Store};
use chrono::{DateTime, Utc};
use proxy::{ProxyResult, ProxyTask};
use runs::Ended;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::{JoinError, JoinHandle, JoinSet};

/// The loop turns at least this often (so `/healthz` can tell it is alive).
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Longest a recorded error detail is.
const DETAIL_MAX: usize = 2000;

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> Result<Signals, DaemonError> {
        let s = |k| signal(k).map_err(DaemonError::Signals);
        Ok(Signals {
            term: s(SignalKind::terminate())?,
            int: s(SignalKind::interrupt())?,
            hup: s(SignalKind::hangup())?,
        })
    }
}

mod delivery;
mod drain;
mod proxy;
mod reload;
mod runs;

enum Event {
    Stop(&'static str),
    Reload,
    JobEnded(Result<Ended, JoinError>),
    Delivered(Result<Result<DeliveryReport, DeliverError>, JoinError>),
    ProxyEnded(Result<ProxyResult, JoinError>),
    Tick,
}

fn clip(s: &str) -> String {
    if s.len() <= DETAIL_MAX {
        return s.to_string();
    }
    let mut end = DETAIL_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn db_path(opts: &Options, config: &Config) -> PathBuf {
    opts.db
        .clone()
        .or_else(|| config.store.path.clone())
        .unwrap_or_else(store::default_path)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DaemonError::Panicked(e.to_string()))
}

/// Starts, runs until stopped, drains, releases the lock.
pub(super) async fn serve(opts: Options, config: Config) -> Result<(), DaemonError> {
    // First: a SIGHUP or SIGTERM during start-up must not kill the process unannounced.
    let mut signals = Signals::new()?;
    if std::env::var_os("AWXGUARD_NOW").is_some() {
        tracing::warn!("AWXGUARD_NOW is ignored by the daemon: it runs on the system clock");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let started = clock.now();
    let db = db_path(&opts, &config);
    let d = db.clone();
    let store: Arc<dyn Store> = blocking(move || store::open(&d)).await??;
    let me = lock::me(started);
    let (s, d, m) = (store.clone(), db.clone(), me.clone());
    blocking(move || lock::acquire(s.as_ref(), &d, &m, started)).await??;
    let result = run_locked(
        opts,
        config,
        db.clone(),
        store.clone(),
        clock,
        me.clone(),
        &mut signals,
    )
    .await;
    let s = store.clone();
    match blocking(move || s.release_daemon_lock(&me)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot release the daemon lock of {}: {e}", db.display()),
        Err(e) => tracing::warn!("cannot release the daemon lock of {}: {e}", db.display()),
    }
    result
}

async fn run_locked(
    opts: Options,
    config: Config,
    db: PathBuf,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    me: DaemonHolder,
    signals: &mut Signals,
) -> Result<(), DaemonError> {
    let now = clock.now();
    let s = store.clone();
    let interrupted = blocking(move || {
        s.interrupt_job_runs(now, "the daemon running it stopped before it ended")
    })
    .await??;
    if interrupted > 0 {
        tracing::warn!(
            "{interrupted} job run(s) left running by an earlier daemon are recorded as interrupted"
        );
    }
    alert::install(store.as_ref(), &config);
    let metrics = Arc::new(Metrics::new(now));
    let shared = Arc::new(Shared::new(
        store.clone(),
        metrics,
        clock.clone(),
        me,
        config.daemon.timezone,
    ));
    let addr = config.daemon.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen { addr, source })?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server =
        axum::serve(listener, http::router(shared.clone())).with_graceful_shutdown(async move {
            let _ = http_stopped.await;
        });
    let http_task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("the health and metrics endpoint stopped: {e}");
        }
    });
    let watchdog = notify::watchdog_interval();
    let mut d = Daemon {
        db_override: opts.db.is_some(),
        config_path: opts.config_path,
        db,
        config: Arc::new(config),
        shared,
        running: JoinSet::new(),
        in_flight: HashMap::new(),
        delivery: None,
        deliver_again: false,
        next_delivery: Instant::now(),
        proxy: None,
        proxy_restart: None,
        proxy_backoff: Duration::from_secs(1),
        watchdog,
        next_watchdog: Instant::now(),
        next_heartbeat: Instant::now() + lock::HEARTBEAT,
        lost_lock: false,
    };
    d.take_jobs(jobs::registry(&d.config), BTreeMap::new())
        .await;
    if d.config.daemon.proxy {
        d.start_proxy(None);
    }
    let summary = d.summary();
    tracing::info!(
        "awxguard daemon {} started (pid {}): database {}; health and metrics on http://{bound} \
         (/healthz /readyz /metrics); {summary}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        d.db.display()
    );
    notify::ready(&summary);
    let reason = d.run(signals).await;
    d.drain(signals, reason).await;
    let _ = http_stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), http_task).await;
    tracing::info!("awxguard daemon stopped");
    Ok(())
}

struct Daemon {
    config_path: PathBuf,
    db: PathBuf,
    db_override: bool,
    config: Arc<Config>,
    shared: Arc<Shared>,
    running: JoinSet<Ended>,
    /// Jobs running now, by name (with their start): a job never overlaps itself, across
    /// reloads too.
    in_flight: HashMap<String, DateTime<Utc>>,
    delivery: Option<JoinHandle<Result<DeliveryReport, DeliverError>>>,
    deliver_again: bool,
    next_delivery: Instant,
    proxy: Option<ProxyTask>,
    proxy_restart: Option<Instant>,
    proxy_backoff: Duration,
    watchdog: Option<Duration>,
    next_watchdog: Instant,
    next_heartbeat: Instant,
    lost_lock: bool,
}

impl Daemon {
    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    fn summary(&self) -> String {
        let board = self.shared.board();
        let jobs: Vec<String> = board
            .jobs
            .iter()
            .map(|(n, j)| {
                format!(
                    "{n} [{}] next {}",
                    j.spec.schedule.expr,
                    j.next.map_or("never".into(), ts)
                )
            })
            .collect();
        format!(
            "{} job(s) in {}: {}{}",
            jobs.len(),
            board.tz,
            if jobs.is_empty() {
                "none".into()
            } else {
                jobs.join("; ")
            },
            if board.proxy.is_some() {
                "; proxy in process"
            } else {
                ""
            }
        )
    }

    async fn run(&mut self, signals: &mut Signals) -> &'static str {
        loop {
            let now = self.shared.clock.now();
            self.fire_due(now);
            self.shared.board_mut().tick = Instant::now();
            self.housekeeping().await;
            if self.lost_lock {
                return "lost the daemon lock";
            }
            let sleep = self.sleep_for(now);
            match self.next_event(signals, sleep).await {
                Event::Stop(why) => return why,
                Event::Reload => self.reload().await,
                Event::JobEnded(r) => self.job_ended(r),
                Event::Delivered(r) => self.delivered(r),
                Event::ProxyEnded(r) => self.proxy_ended(r),
                Event::Tick => {}
            }
        }
    }

    async fn next_event(&mut self, signals: &mut Signals, sleep: Duration) -> Event {
        let Daemon {
            running,
            delivery,
            proxy,
            ..
        } = self;
        let delivery = async {
            match delivery.as_mut() {
                Some(h) => h.await,
                None => std::future::pending().await,
            }
        };
        let proxy = async {
            match proxy.as_mut() {
                Some(p) => (&mut p.handle).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = signals.term.recv() => Event::Stop("SIGTERM"),
            _ = signals.int.recv() => Event::Stop("SIGINT"),
            _ = signals.hup.recv() => Event::Reload,
            Some(r) = running.join_next() => Event::JobEnded(r),
            r = delivery => Event::Delivered(r),
            r = proxy => Event::ProxyEnded(r),
            _ = tokio::time::sleep(sleep) => Event::Tick,
        }
    }

    /// Until the next thing to do (at most `MAX_SLEEP`).
    fn sleep_for(&self, now: DateTime<Utc>) -> Duration {
        let mut sleep = MAX_SLEEP;
        let board = self.shared.board();
        for j in board.jobs.values() {
            if let Some(n) = j.next {
                sleep = sleep.min((n - now).to_std().unwrap_or(Duration::ZERO));
            }
        }
        let mono = Instant::now();
        let mut until = |t: Instant| sleep = sleep.min(t.saturating_duration_since(mono));
        until(self.next_heartbeat);
        if self.config.alerts.is_some() {
            until(self.next_delivery);
        }
        if self.watchdog.is_some() {
            until(self.next_watchdog);
        }
        if let Some(t) = self.proxy_restart {
            until(t);
        }
        // Fire on the second, not a hair before it.
        sleep.max(Duration::from_millis(1))
    }

    /// Heartbeat, watchdog, the delivery timer, the proxy's restart.
    async fn housekeeping(&mut self) {
        let mono = Instant::now();
        if let Some(every) = self.watchdog {
            if mono >= self.next_watchdog {
                notify::watchdog();
                self.next_watchdog = mono + every;
            }
        }
        if self.config.alerts.is_some() && mono >= self.next_delivery {
            self.next_delivery = mono + self.config.daemon.alert_interval;
            self.request_delivery();
        }
        if self.proxy_restart.is_some_and(|t| mono >= t) {
            self.proxy_restart = None;
            self.start_proxy(None);
        }
        if mono >= self.next_heartbeat {
            self.next_heartbeat = mono + lock::HEARTBEAT;
            let (s, me, now) = (
                self.shared.store.clone(),
                self.shared.me.clone(),
                self.shared.clock.now(),
            );
            match blocking(move || s.renew_daemon_lock(&me, now)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::error!(
                        "another daemon took over the lock of {} (this one was judged gone); \
                         stopping",
                        self.db.display()
                    );
                    self.lost_lock = true;
                }
                Ok(Err(e)) => tracing::warn!("cannot renew the daemon lock's heartbeat: {e}"),
                Err(e) => tracing::warn!("cannot renew the daemon lock's heartbeat: {e}"),
            }
        }
    }
}
