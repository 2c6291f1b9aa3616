//! The in-process proxy: started once its predecessor stopped, restarted with backoff when it
//! stops by itself, stopped on reload (when its settings changed) and at the drain.

use super::{clip, Daemon};
use crate::alert;
use crate::config::Config;
use crate::daemon::jobs;
use crate::daemon::state::ProxyState;
use crate::proxy::job::{self as proxy_job, ProxyOutcome, ProxyRequest};
use crate::store;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::{JoinError, JoinHandle};
pub(super) type ProxyResult = Result<ProxyOutcome, String>;

pub(super) struct ProxyTask {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(super) handle: JoinHandle<ProxyResult>,
    started: Instant,
}

/// What the in-process proxy depends on: a change restarts it on reload.
pub(super) fn proxy_fingerprint(c: &Config) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}",
        c.daemon.proxy, c.proxy, c.keys, c.airwallex, c.alerts
    )
}

impl Daemon {
    /// Starts the in-process proxy, after `after` (the one it replaces) has stopped.
    pub(super) fn start_proxy(&mut self, after: Option<JoinHandle<ProxyResult>>) {
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

    pub(super) fn proxy_ended(&mut self, r: Result<ProxyResult, JoinError>) {
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
    pub(super) fn stop_proxy(&mut self) -> Option<JoinHandle<ProxyResult>> {
        self.proxy_restart = None;
        let mut p = self.proxy.take()?;
        if let Some(s) = p.stop.take() {
            let _ = s.send(());
        }
        Some(p.handle)
    }
}
