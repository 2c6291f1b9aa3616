//! Alert delivery rounds: one at a time, after every job and every `alert_interval`; a
//! request while one runs asks for another when it ends.

use super::Daemon;
use crate::alert::{self, deliver::DeliverError, DeliveryReport};
use crate::daemon::jobs;
use crate::daemon::metrics::ResultLabels;
use std::time::Instant;
use tokio::task::JoinError;
impl Daemon {
    pub(super) fn request_delivery(&mut self) {
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

    pub(super) fn delivered(&mut self, r: Result<Result<DeliveryReport, DeliverError>, JoinError>) {
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
}
