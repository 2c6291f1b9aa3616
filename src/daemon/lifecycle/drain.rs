//! The stop: no new runs, the proxy stopped, running jobs given `drain_timeout` (a second
//! signal cuts it short), what still runs then interrupted and recorded so.

use super::{blocking, Daemon, Signals};
use crate::daemon::notify;
impl Daemon {
    /// Stops scheduling and waits (up to the drain timeout) for what runs.
    pub(super) async fn drain(&mut self, signals: &mut Signals, reason: &str) {
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
