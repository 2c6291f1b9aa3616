//! What the alert commands show: the outbox (`awxguard alerts list`), what a delivery round did
//! (`alerts deliver`, the end of a recording run) and what each sink said to a test alert
//! (`alerts test`). Typed outcomes with the lines the command prints.

use super::deliver::DeliveryReport;
use super::render::AlertDoc;
use super::TestOutcome;
use crate::config::{AlertsConfig, Config};
use crate::store::{Delivery, QueueRow, Store, StoreError};
use serde::Serialize;

/// `[alerts]` is needed by every alert command.
#[derive(Debug, thiserror::Error)]
#[error(
    "alerts are not configured: add an [alerts] section with a sink ([alerts.email], \
     [alerts.webhook] or [alerts.file]) to the config (see examples/awxguard.toml)"
)]
pub struct NotConfigured;

/// The `[alerts]` section, or why there is none.
pub fn configured(config: &Config) -> Result<&AlertsConfig, NotConfigured> {
    config.alerts.as_ref().ok_or(NotConfigured)
}

/// The outbox as `awxguard alerts list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// Queued alerts waiting for their time (the digest) or the next delivery round.
    pub waiting: Vec<QueueRow>,
    /// Deliveries, newest first: pending (with the last error when failing), sent (with what
    /// the server said) or dead (delivery gave up, with the last error).
    pub deliveries: Vec<Delivery>,
}

/// Reads the outbox.
pub fn list(store: &dyn Store, limit: usize) -> Result<Listing, StoreError> {
    Ok(Listing {
        waiting: store.waiting_alerts(None)?,
        deliveries: store.deliveries(limit)?,
    })
}

impl Listing {
    /// The human listing.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("waiting: {}", self.waiting.len())];
        for w in &self.waiting {
            let a = &w.alert;
            out.push(format!(
                "  {:<9} key {}  {} finding{} ({})  due {}",
                a.kind.as_str(),
                a.key,
                a.finding_ids.len(),
                if a.finding_ids.len() == 1 { "" } else { "s" },
                a.severity,
                a.due_at.format("%Y-%m-%d %H:%M UTC"),
            ));
        }
        out.push(format!("deliveries: {}", self.deliveries.len()));
        for d in &self.deliveries {
            let state = match (d.state.as_str(), d.attempts) {
                ("sent", _) => "sent",
                ("dead", _) => "dead",
                (_, 0) => "queued",
                _ => "failing",
            };
            out.push(format!(
                "  {state:<8} {:<8} {}  {}",
                d.sink, d.message_id, d.subject
            ));
            match state {
                "sent" => out.push(format!(
                    "           sent {} after {} attempt(s): {}",
                    d.sent_at.as_deref().unwrap_or("-"),
                    d.attempts,
                    d.reply.as_deref().unwrap_or("")
                )),
                "dead" => out.push(format!(
                    "           GAVE UP {} after {} attempt(s), not retried: {}",
                    d.dead_at.as_deref().unwrap_or("-"),
                    d.attempts,
                    d.last_error.as_deref().unwrap_or("")
                )),
                "failing" => out.push(format!(
                    "           {} attempt(s), next at {}: {}",
                    d.attempts,
                    d.next_attempt_at,
                    d.last_error.as_deref().unwrap_or("")
                )),
                _ => {}
            }
        }
        out
    }
}

impl DeliveryReport {
    /// One line per delivery sent or failed; `nothing due` when asked for and there was none.
    pub fn lines(&self, say_nothing_due: bool) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.sent {
            out.push(format!(
                "alert {} sent by {}: {} ({})",
                s.alert, s.sink, s.reply, s.subject
            ));
        }
        for f in &self.failed {
            out.push(format!(
                "alert {} NOT sent by {} (attempt {}, next at {}): {}",
                f.alert,
                f.sink,
                f.attempts,
                f.next_attempt_at.format("%Y-%m-%d %H:%M:%S UTC"),
                f.error
            ));
        }
        for f in &self.dead {
            out.push(format!(
                "alert {} NOT sent by {}: GAVE UP after {} attempt(s), not retried: {}",
                f.alert, f.sink, f.attempts, f.error
            ));
        }
        if say_nothing_due && self.sent.is_empty() && self.failed.is_empty() && self.dead.is_empty()
        {
            out.push("nothing due".into());
        }
        out
    }
}

/// What `awxguard alerts test` did.
#[derive(Debug)]
pub struct TestReport {
    pub doc: AlertDoc,
    pub outcomes: Vec<TestOutcome>,
}

impl TestReport {
    /// Whether a sink refused the test alert.
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|o| o.result.is_err())
    }

    /// The alert's id and Message-ID, then exactly what each server said.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "test alert {} (Message-ID {})",
            self.doc.id, self.doc.message_id
        )];
        for o in &self.outcomes {
            out.push(match &o.result {
                Ok(r) => format!("{:<8} {}: accepted: {}", o.sink, o.target, r.reply),
                Err(e) => format!("{:<8} {}: FAILED: {e}", o.sink, o.target),
            });
        }
        out
    }
}
