//! The alert outbox (issue 12): alerts queued by the run that recorded their findings, in the
//! same transaction (`Lifecycle::record` asks the installed `AlertPlanner` which to queue); the
//! messages they were sealed into and one delivery per sink, pending until the sink accepted,
//! then sent and never sent again. The policy (what to queue, what a message says) lives in
//! `alert`; this file only keeps the rows.
//!
//! Exactly once per sink: a delivery is claimed (by `host:pid`, until a deadline) before it is
//! sent, so two processes never send it at once; it is marked `sent` as soon as the sink accepted
//! it. A crash between acceptance and that mark leaves it pending, and the next attempt sends the
//! same stored document again (same `Message-ID`): at most one resend, recognisably the same.

mod sqlite;

pub(crate) use sqlite::queue_in_run;

use super::StoreError;
use crate::finding::{Finding, Severity};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Why an alert is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// New findings at or above `min_severity`: sent as soon as they are recorded.
    Immediate,
    /// New findings below `min_severity` (and standing ones due a repeat): the daily digest.
    Digest,
    /// Findings still open and not acknowledged after `repeat_interval`.
    Repeat,
    /// Alerted findings that a later run no longer sees.
    Resolved,
    /// `awxguard alerts test` (never queued).
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Immediate => "immediate",
            AlertKind::Digest => "digest",
            AlertKind::Repeat => "repeat",
            AlertKind::Resolved => "resolved",
            AlertKind::Test => "test",
        }
    }
}

impl std::str::FromStr for AlertKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "immediate" => AlertKind::Immediate,
            "digest" => AlertKind::Digest,
            "repeat" => AlertKind::Repeat,
            "resolved" => AlertKind::Resolved,
            "test" => AlertKind::Test,
            other => return Err(format!("unknown alert kind {other:?}")),
        })
    }
}

/// One key's alert, queued: ids only, the findings stay in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedAlert {
    pub id: String,
    pub kind: AlertKind,
    /// The key's inventory name, else its fingerprint.
    pub key: String,
    pub finding_ids: Vec<String>,
    /// The most severe finding's severity.
    pub severity: Severity,
    /// When it may be sent.
    pub due_at: DateTime<Utc>,
}

/// A queued alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRow {
    #[serde(flatten)]
    pub alert: QueuedAlert,
    pub queued_at: String,
    /// The message it went out in, once sealed.
    pub message_id: Option<String>,
}

/// Decides what a recorded run queues. Installed on the store by whoever configured alerts
/// (the CLI, the daemon); called inside the recording transaction.
pub trait AlertPlanner: Send + Sync {
    /// `recorded`: the run's findings, status set; `resolved_alerted`: findings the run resolved
    /// that had been alerted before.
    fn plan(
        &self,
        recorded: &[Finding],
        resolved_alerted: &[Finding],
        now: DateTime<Utc>,
    ) -> Vec<QueuedAlert>;
}

/// A message to seal: the rendered document of one or more queued alerts, and the sinks it goes
/// to.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub kind: AlertKind,
    pub subject: String,
    /// The alert document (JSON).
    pub document: String,
    pub created_at: DateTime<Utc>,
    /// The queue rows it carries.
    pub rows: Vec<String>,
    /// One delivery per sink name; empty when there is nothing left to say (the rows are closed).
    pub sinks: Vec<String>,
}

/// One delivery of a message to a sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub message_id: String,
    pub sink: String,
    pub kind: String,
    pub subject: String,
    #[serde(skip)]
    pub document: String,
    pub created_at: String,
    /// `pending`, `sent` or `dead` (delivery gave up: `[alerts] give_up_after`, `max_attempts`).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub reply: Option<String>,
    pub sent_at: Option<String>,
    /// When delivery gave up.
    pub dead_at: Option<String>,
}

/// The outbox.
pub trait Outbox {
    /// Installs (or removes) the planner `record` asks which alerts to queue.
    fn set_alert_planner(&self, planner: Option<Arc<dyn AlertPlanner>>);

    /// Queues alerts outside a run (repeats) and marks their findings alerted at `now`.
    fn queue_alerts(&self, alerts: &[QueuedAlert], now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Findings alerted before that are still new or open and not acknowledged at `now`, with
    /// when they were last alerted.
    fn standing_alerted(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Finding, DateTime<Utc>)>, StoreError>;

    /// Queued alerts not yet sealed; only those due at `now` when given.
    fn waiting_alerts(&self, due_at: Option<DateTime<Utc>>) -> Result<Vec<QueueRow>, StoreError>;

    /// Seals queued alerts into a message with one pending delivery per sink, atomically.
    fn seal(&self, msg: &NewMessage) -> Result<(), StoreError>;

    /// Pending deliveries whose next attempt is due at `now`.
    fn deliveries_due(&self, now: DateTime<Utc>) -> Result<Vec<Delivery>, StoreError>;

    /// Claims a pending delivery for `owner` until `until`; false when it is sent already or
    /// another live process holds it.
    fn claim_delivery(
        &self,
        message_id: &str,
        sink: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The sink accepted the message: `sent`, never sent again.
    fn mark_sent(
        &self,
        message_id: &str,
        sink: &str,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The sink did not accept: count the attempt, keep the error, try again at `next_attempt`.
    fn mark_failed(
        &self,
        message_id: &str,
        sink: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The sink did not accept and delivery gives up: `dead`, never retried; the error is kept.
    fn mark_dead(
        &self,
        message_id: &str,
        sink: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every delivery, newest message first (at most `limit`).
    fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;
}

/// `host:pid` of this process: who claims a delivery.
pub fn process_owner() -> String {
    format!("{}:{}", this_host(), std::process::id())
}

/// This host's name (`/proc/sys/kernel/hostname`, else `/etc/hostname`, else `localhost`).
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the process that claimed a delivery may still be sending it. A process on this host
/// that no longer exists is not (it crashed: its claim is void); elsewhere, its claim holds
/// until it expires.
pub(crate) fn owner_alive(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return true;
    };
    if host != this_host() || !cfg!(target_os = "linux") {
        return true;
    }
    if pid == std::process::id().to_string() {
        return true;
    }
    std::path::Path::new("/proc").join(pid).exists()
}
