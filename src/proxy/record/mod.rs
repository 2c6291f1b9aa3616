//! Recording without slowing or failing a request: the request path puts each usage event (and
//! each finding, each learned token attribution) on a bounded queue and moves on; one writer
//! thread takes them off in batches and writes a batch in one transaction. When the store is
//! locked, read-only or failing, the batch goes to the spill file (JSON Lines, the usage-event
//! contract, created 0600, which `awxguard usage ingest` also reads) and the writer tries the
//! store again after a back-off; once the store answers, it reads the spill files back into it
//! (the usage store ignores an event it already holds, so a spill read twice counts once) and
//! removes them. Should the queue ever be full, the
//! request path appends its event to the spill file itself. Everything is counted
//! (`Counters`) and said in the log.

mod spill;
mod writer;

pub use spill::Spill;

use super::store::{ProxyStore, TokenAttribution};
use crate::finding::Finding;
use chrono::{DateTime, Utc};
use crossbeam_channel::{Sender, TrySendError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The proxy's events are the usage evidence store's (`via: "proxy"`): one store, one form.
pub use crate::store::UsageEvent;

/// Milliseconds with microsecond precision.
pub fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// RFC 3339 in UTC with microseconds (object sightings, finding texts).
pub fn event_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// What the proxy counted since it started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests handled (each gets one event).
    pub requests: AtomicU64,
    /// Events written to the store.
    pub stored: AtomicU64,
    /// Events written to a spill file (by the writer or, with the queue full, by the request).
    pub spilled: AtomicU64,
    /// Spilled events read back into the store.
    pub unspilled: AtomicU64,
    /// Events lost: the queue was full and the spill file could not be written either.
    pub dropped: AtomicU64,
    /// Times the queue was full.
    pub queue_full: AtomicU64,
    /// Batches the store refused (locked, read-only, failing).
    pub store_failures: AtomicU64,
    /// Findings recorded (or spilled to the log when the store was down).
    pub findings: AtomicU64,
    /// Calls with a token no login through any proxy on this store returned.
    pub unknown_tokens: AtomicU64,
    /// Calls answered 403 by the proxy (scope, client, money guard).
    pub refused: AtomicU64,
    /// Upstream failures answered 502 or 504.
    pub upstream_errors: AtomicU64,
    /// Messages (events, findings) waiting in the queue when the writer last looked: after each
    /// batch (the request path does not count them, so the serving loops share no counter for
    /// it).
    pub queued: AtomicU64,
}

impl Counters {
    /// The counters as JSON (served at `/__awxguard/counters`, logged at shutdown).
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "requests": g(&self.requests),
            "stored": g(&self.stored),
            "spilled": g(&self.spilled),
            "unspilled": g(&self.unspilled),
            "dropped": g(&self.dropped),
            "queue_full": g(&self.queue_full),
            "store_failures": g(&self.store_failures),
            "findings": g(&self.findings),
            "unknown_tokens": g(&self.unknown_tokens),
            "refused": g(&self.refused),
            "upstream_errors": g(&self.upstream_errors),
            "queued": g(&self.queued),
        })
    }
}

/// What goes to the writer.
#[derive(Debug)]
pub(crate) enum Msg {
    /// Boxed: the queue's slots stay small (it is allocated whole, at its capacity).
    Event(Box<UsageEvent>),
    Finding(Box<Finding>),
    Attribution(TokenAttribution),
    /// Write everything queued so far, then answer.
    Flush(crossbeam_channel::Sender<()>),
}

/// The request path's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: Sender<Msg>,
    spill: Arc<Spill>,
    counters: Arc<Counters>,
    /// Flushes sent and not answered yet (the writer cuts its batching sleep short for them).
    flush_waiting: Arc<AtomicU64>,
    /// The writer thread, to wake it for a flush.
    writer: std::thread::Thread,
}

impl Recorder {
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Queues an event; with the queue full, appends it to the spill file at once.
    pub fn event(&self, e: Box<UsageEvent>) {
        match self.tx.try_send(Msg::Event(e)) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Event(e)))
            | Err(TrySendError::Disconnected(Msg::Event(e))) => {
                let n = self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        times = n + 1,
                        "proxy: recording queue full; events go straight to {}",
                        self.spill.path().display()
                    );
                }
                match self.spill.append(std::slice::from_ref(&e)) {
                    Ok(()) => {
                        self.counters.spilled.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            "proxy: event lost: queue full and spill file {} not writable: {err}",
                            self.spill.path().display()
                        );
                    }
                }
            }
            Err(_) => unreachable!("only events are sent here"),
        }
    }

    /// Queues a finding (the writer records it; with the queue full it goes to the log).
    pub fn finding(&self, f: Finding) {
        if let Err(e) = self.tx.try_send(Msg::Finding(Box::new(f))) {
            if let Msg::Finding(f) = e.into_inner() {
                tracing::warn!(rule = %f.rule, id = %f.id, key = ?f.key, "proxy: finding not recorded (queue full): {}", f.message);
            }
        }
    }

    /// Queues a token attribution (the login path also writes it at once; this is the retry).
    pub(crate) fn attribution(&self, a: TokenAttribution) {
        let _ = self.tx.try_send(Msg::Attribution(a));
    }

    /// Waits until everything queued before this call is written (or spilled), at most
    /// `timeout`. For shutdown and tests.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.flush_waiting.fetch_add(1, Ordering::AcqRel);
        if self.tx.send_timeout(Msg::Flush(tx), timeout).is_err() {
            self.flush_waiting.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.writer.unpark();
        rx.recv_timeout(timeout).is_ok()
    }
}

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub queue_capacity: usize,
    pub batch_max: usize,
    /// Longest an event waits in the queue before its batch is written.
    pub linger: Duration,
    /// First wait before trying a failed store again (doubles up to 30 s).
    pub retry_base: Duration,
    /// Spill files of other runs untouched this long are read back by this one (also how
    /// often the writer looks for them).
    pub adopt_after: Duration,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            queue_capacity: 65_536,
            batch_max: 4_096,
            linger: Duration::from_millis(100),
            retry_base: Duration::from_millis(500),
            adopt_after: Duration::from_secs(300),
        }
    }
}

/// Starts the writer thread over `store`; events it cannot store go to `spill`. Returns the
/// request path's handle and the thread (which ends when every `Recorder` is dropped).
pub fn start(
    store: Box<dyn ProxyStore>,
    spill: Spill,
    settings: WriterSettings,
    counters: Arc<Counters>,
) -> std::io::Result<(Recorder, std::thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded(settings.queue_capacity);
    let spill = Arc::new(spill);
    let flush_waiting = Arc::new(AtomicU64::new(0));
    let mut w = writer::Writer {
        store,
        spill: spill.clone(),
        counters: counters.clone(),
        settings,
        healthy: true,
        retry_at: Instant::now(),
        backoff: Duration::ZERO,
        pending_attributions: Vec::new(),
        seen_findings: HashSet::new(),
        need_unspill: true,
        last_unspill: Instant::now(),
        flush_waiting: flush_waiting.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("awxguard-proxy-writer".into())
        .spawn(move || w.run(rx))?;
    let recorder = Recorder {
        tx,
        spill,
        counters,
        flush_waiting,
        writer: handle.thread().clone(),
    };
    Ok((recorder, handle))
}
