//! The one lifecycle owner. A single loop holds the job table and everything running, and wakes
//! for whichever comes first: a job falling due, a job ending, an alert delivery round ending or
//! falling due, the proxy stopping, the lock's heartbeat, the watchdog, or a signal. Jobs run as
//! tasks (each wrapped so a panic is a failure, and aborting the wrapper aborts the job); the loop
//! never waits for one. SIGHUP validates the new config before swapping it in. SIGTERM or SIGINT
//! stops scheduling, stops the proxy and gives running jobs `drain_timeout` to finish (a second
//! signal cuts that short); what is still running then is interrupted and recorded so.

use super::http;
use super::jobs::{self, JobDone, JobSpec};
use super::lock;
use super::metrics::{Metrics, ResultLabels};
use super::notify;
use super::state::{JobState, ProxyState, Shared};
use super::{DaemonError, Options};
use crate::alert::{self, deliver::DeliverError, DeliveryReport};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::proxy::job::{self as proxy_job, ProxyOutcome, ProxyRequest};
use crate::store::{self, DaemonHolder, JobOutcome, Store};
use chrono::{DateTime, Utc};
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

/// A job run that ended.
struct Ended {
    name: String,
    result: Result<JobDone, String>,
    seconds: f64,
    at: DateTime<Utc>,
}

type ProxyResult = Result<ProxyOutcome, String>;

struct ProxyTask {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: JoinHandle<ProxyResult>,
    started: Instant,
}

enum Event {
    Stop(&'static str),
    Reload,
    JobEnded(Result<Ended, JoinError>),
    Delivered(Result<Result<DeliveryReport, DeliverError>, JoinError>),
    ProxyEnded(Result<ProxyResult, JoinError>),
    Tick,
}

/// Aborts the task when dropped (a job's wrapper aborted at the drain timeout aborts the job).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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

/// What the in-process proxy depends on: a change restarts it on reload.
fn proxy_fingerprint(c: &Config) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}",
        c.daemon.proxy, c.proxy, c.keys, c.airwallex, c.alerts
    )
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

    /// Puts `specs` on the board, keeping what is known of jobs that stay.
    async fn take_jobs(&mut self, specs: Vec<JobSpec>, mut old: BTreeMap<String, JobState>) {
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
                            .get_or_create(&super::metrics::JobLabels { job: name.clone() })
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

    /// Starts every job whose time has come, unless it is still running.
    fn fire_due(&mut self, now: DateTime<Utc>) {
        let due: Vec<JobSpec> = {
            let mut board = self.shared.board_mut();
            let tz = board.tz;
            let mut due = Vec::new();
            for (name, j) in board.jobs.iter_mut() {
                if j.next.is_none_or(|n| n > now) {
                    continue;
                }
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
                due.push(j.spec.clone());
            }
            due
        };
        for spec in due {
            self.in_flight.insert(spec.name.clone(), now);
            self.spawn(spec);
        }
    }

    fn spawn(&mut self, spec: JobSpec) {
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
            Ended {
                name,
                result,
                seconds,
                at,
            }
        });
    }

    fn job_ended(&mut self, r: Result<Ended, JoinError>) {
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

    fn request_delivery(&mut self) {
        if self.config.alerts.is_none() {
            return;
        }
        if self.delivery.is_some() {
            self.deliver_again = true;
            return;
        }
        let (store, config, clock) = (
            self.shared.store.clone(),
            self.config.clone(),
            self.shared.clock.clone(),
        );
        self.next_delivery = Instant::now() + config.daemon.alert_interval;
        self.delivery = Some(tokio::spawn(async move {
            alert::deliver_due(store, &config, clock.as_ref()).await
        }));
    }

    fn delivered(&mut self, r: Result<Result<DeliveryReport, DeliverError>, JoinError>) {
        self.delivery = None;
        let m = self.metrics();
        match r {
            Ok(Ok(rep)) => {
                let count = |result: &str, n: usize| {
                    m.deliveries
                        .get_or_create(&ResultLabels {
                            result: result.into(),
                        })
                        .inc_by(n as u64)
                };
                count("sent", rep.sent.len());
                count("failed", rep.failed.len());
                count("dead", rep.dead.len());
                if !rep.sent.is_empty() {
                    tracing::info!("alerts: {} delivered", rep.sent.len());
                }
            }
            Ok(Err(e)) => {
                m.delivery_round_errors.inc();
                tracing::warn!("alert delivery round failed (retried): {}", jobs::chain(&e));
            }
            Err(e) => {
                m.delivery_round_errors.inc();
                tracing::warn!("alert delivery round stopped: {e}");
            }
        }
        if std::mem::take(&mut self.deliver_again) {
            self.request_delivery();
        }
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

    /// Starts the in-process proxy, after `after` (the one it replaces) has stopped.
    fn start_proxy(&mut self, after: Option<JoinHandle<ProxyResult>>) {
        let config = self.config.clone();
        let clock = self.shared.clock.clone();
        let shared = self.shared.clone();
        let planner = config
            .alerts
            .as_ref()
            .map(|c| Arc::new(alert::Planner::new(c.clone())) as Arc<dyn store::AlertPlanner>);
        let req = ProxyRequest {
            db: self.db.clone(),
            ..ProxyRequest::default()
        };
        let drain = config.daemon.drain_timeout;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.shared.board_mut().proxy = Some(ProxyState::default());
        let handle = tokio::spawn(async move {
            if let Some(mut old) = after {
                if tokio::time::timeout(drain, &mut old).await.is_err() {
                    old.abort();
                }
            }
            let ready_shared = shared.clone();
            let result = proxy_job::serve(
                req,
                &config,
                clock,
                planner,
                async move {
                    let _ = stopped.await;
                },
                move |addr, counters| {
                    ready_shared.metrics.proxy_started();
                    ready_shared.set_proxy_counters(Some(counters));
                    if let Some(p) = ready_shared.board_mut().proxy.as_mut() {
                        p.listening = Some(addr);
                        p.last_error = None;
                    }
                    tracing::info!("proxy listening on http://{addr}");
                },
            )
            .await;
            if let Some(c) = shared.proxy_counters() {
                shared.metrics.mirror_proxy(&c);
            }
            shared.set_proxy_counters(None);
            if let Some(p) = shared.board_mut().proxy.as_mut() {
                p.listening = None;
            }
            result.map_err(|e| jobs::chain(&e))
        });
        self.proxy = Some(ProxyTask {
            stop: Some(stop),
            handle,
            started: Instant::now(),
        });
    }

    fn proxy_ended(&mut self, r: Result<ProxyResult, JoinError>) {
        let Some(task) = self.proxy.take() else {
            return;
        };
        let why = match r {
            Ok(Ok(_)) => "it stopped".to_string(),
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        if task.started.elapsed() > Duration::from_secs(60) {
            self.proxy_backoff = Duration::from_secs(1);
        }
        let wait = self.proxy_backoff;
        self.proxy_backoff = (self.proxy_backoff * 2).min(Duration::from_secs(60));
        tracing::error!(
            "the in-process proxy stopped: {why}; starting it again in {} s",
            wait.as_secs()
        );
        if let Some(p) = self.shared.board_mut().proxy.as_mut() {
            p.last_error = Some(clip(&why));
        }
        self.proxy_restart = Some(Instant::now() + wait);
    }

    /// Stops the proxy; returns its task to await.
    fn stop_proxy(&mut self) -> Option<JoinHandle<ProxyResult>> {
        self.proxy_restart = None;
        let mut p = self.proxy.take()?;
        if let Some(s) = p.stop.take() {
            let _ = s.send(());
        }
        Some(p.handle)
    }

    /// Why `new` cannot replace the running config.
    fn refuse(&self, new: &Config) -> Option<String> {
        if !new.daemon.has_work() {
            return Some(
                "the new config runs nothing ([daemon.audit], [[daemon.repo]], [daemon.watch], \
                 [daemon.usage] or [daemon] proxy = true)"
                    .into(),
            );
        }
        if !self.db_override {
            let db = new.store.path.clone().unwrap_or_else(store::default_path);
            if db != self.db {
                return Some(format!(
                    "[store] path changed from {} to {}: the database cannot change while the \
                     daemon runs; restart it to switch",
                    self.db.display(),
                    db.display()
                ));
            }
        }
        None
    }

    async fn reload(&mut self) {
        notify::reloading();
        let path = self.config_path.clone();
        let loaded = blocking(move || Config::load(&path, true))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let new = match loaded.map(|c| (self.refuse(&c), c)) {
            Ok((None, c)) => c,
            Ok((Some(why), _)) | Err(why) => {
                self.metrics()
                    .reloads
                    .get_or_create(&ResultLabels {
                        result: "refused".into(),
                    })
                    .inc();
                tracing::error!(
                    "SIGHUP: the new config of {} is refused; the running config stays in \
                     force:\n{why}",
                    self.config_path.display()
                );
                let first = why.lines().next().unwrap_or_default().to_string();
                notify::ready(&format!("reload refused: {first}"));
                return;
            }
        };
        if new.daemon.listen != self.config.daemon.listen {
            tracing::warn!(
                "SIGHUP: [daemon] listen changed to {}: health and metrics move at the next start",
                new.daemon.listen
            );
        }
        let restart_proxy = proxy_fingerprint(&new) != proxy_fingerprint(&self.config);
        let old = std::mem::take(&mut self.shared.board_mut().jobs);
        self.config = Arc::new(new);
        self.take_jobs(jobs::registry(&self.config), old).await;
        if alert::install(self.shared.store.as_ref(), &self.config).is_none() {
            self.shared.store.set_alert_planner(None);
        }
        if restart_proxy {
            let old = self.stop_proxy();
            self.shared.board_mut().proxy = None;
            if self.config.daemon.proxy {
                tracing::info!("SIGHUP: the proxy's settings changed: restarting it");
                self.start_proxy(old);
            } else if let Some(mut old) = old {
                let drain = self.config.daemon.drain_timeout;
                tokio::spawn(async move {
                    if tokio::time::timeout(drain, &mut old).await.is_err() {
                        old.abort();
                    }
                });
            }
        }
        self.metrics()
            .reloads
            .get_or_create(&ResultLabels {
                result: "applied".into(),
            })
            .inc();
        let summary = self.summary();
        tracing::info!("SIGHUP: reloaded {}: {summary}", self.config_path.display());
        notify::ready(&format!("reloaded: {summary}"));
    }

    /// Stops scheduling and waits (up to the drain timeout) for what runs.
    async fn drain(&mut self, signals: &mut Signals, reason: &str) {
        let drain = self.config.daemon.drain_timeout;
        let names: Vec<String> = self.in_flight.keys().cloned().collect();
        tracing::info!(
            "stopping ({reason}): no new runs; {} running job(s){} get up to {} s to finish",
            names.len(),
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            },
            drain.as_secs()
        );
        notify::stopping(&format!(
            "stopping ({reason}): draining {} job(s)",
            names.len()
        ));
        self.shared.board_mut().stopping = true;
        let mut proxy = self.stop_proxy();
        let deadline = tokio::time::Instant::now() + drain;
        let mut hurry = false;
        loop {
            if self.running.is_empty() && self.delivery.is_none() && proxy.is_none() {
                break;
            }
            let Daemon {
                running, delivery, ..
            } = self;
            let delivery_done = async {
                match delivery.as_mut() {
                    Some(h) => h.await,
                    None => std::future::pending().await,
                }
            };
            let proxy_done = async {
                match proxy.as_mut() {
                    Some(h) => h.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(r) = running.join_next() => self.job_ended(r),
                r = delivery_done => self.delivered(r),
                r = proxy_done => {
                    proxy = None;
                    if let Ok(Err(e)) = r {
                        tracing::warn!("the proxy stopped with an error: {e}");
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = signals.term.recv() => { hurry = true; break }
                _ = signals.int.recv() => { hurry = true; break }
            }
        }
        if hurry {
            tracing::warn!("second stop signal: not waiting any longer");
        }
        if !self.running.is_empty() {
            let names: Vec<String> = self.in_flight.keys().cloned().collect();
            self.running.abort_all();
            while self.running.join_next().await.is_some() {}
            let now = self.shared.clock.now();
            for n in &names {
                self.metrics().job_ended(n, "interrupted", 0.0, 0, 0.0);
            }
            let why = format!(
                "interrupted: the daemon stopped ({reason}) and the drain timeout ({} s) ran out",
                drain.as_secs()
            );
            let s = self.shared.store.clone();
            let w = why.clone();
            let _ = blocking(move || s.interrupt_job_runs(now, &w)).await;
            tracing::warn!("{why}: {} recorded as interrupted", names.join(", "));
        }
        if let Some(d) = self.delivery.take() {
            d.abort();
        }
        if let Some(p) = proxy {
            p.abort();
        }
    }
}
