//! SIGHUP: the new config is validated whole and checked against what cannot change while
//! running; refused, the old one stays and the log says why; accepted, it replaces the
//! schedules, the alert routing and (when its settings changed) the proxy.

use super::proxy::proxy_fingerprint;
use super::{blocking, Daemon};
use crate::alert;
use crate::config::Config;
use crate::daemon::jobs;
use crate::daemon::metrics::ResultLabels;
use crate::daemon::notify;
use crate::store;
use std::sync::Arc;
impl Daemon {
    /// Why `new` cannot replace the running config.
    pub(super) fn refuse(&self, new: &Config) -> Option<String> {
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

    pub(super) async fn reload(&mut self) {
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
}
