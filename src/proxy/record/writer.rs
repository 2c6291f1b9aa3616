//! The writer thread: takes events, findings and token attributions off the queue in batches
//! (sleeping while a batch gathers, so the request path never wakes it per event), writes a
//! batch in one transaction, spills what the store refuses, backs off, and reads the spill files
//! back into the store once it answers.

use super::spill::Spill;
use super::{Counters, Msg, UsageEvent, WriterSettings};
use crate::finding::Finding;
use crate::proxy::store::{ProxyStore, TokenAttribution};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) struct Writer {
    pub(super) store: Box<dyn ProxyStore>,
    pub(super) spill: Arc<Spill>,
    pub(super) counters: Arc<Counters>,
    pub(super) settings: WriterSettings,
    pub(super) healthy: bool,
    pub(super) retry_at: Instant,
    pub(super) backoff: Duration,
    pub(super) pending_attributions: Vec<TokenAttribution>,
    /// Findings already recorded by this process (each is recorded once per run).
    pub(super) seen_findings: HashSet<String>,
    /// Spill files may be waiting (at start: from an earlier run).
    pub(super) need_unspill: bool,
    pub(super) last_unspill: Instant,
    pub(super) flush_waiting: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn run(&mut self, rx: Receiver<Msg>) {
        let mut events = Vec::with_capacity(self.settings.batch_max);
        let mut findings = Vec::new();
        let mut flushes = Vec::new();
        loop {
            let first = match rx.recv_timeout(self.settings.linger.max(Duration::from_millis(10))) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.write(&mut events, &mut findings);
                    return;
                }
            };
            if let Some(m) = first {
                self.take(m, &mut events, &mut findings, &mut flushes);
                // Let the batch gather while this thread sleeps: a sender then never has to
                // wake a waiting receiver (one futex call and a context switch per event). A
                // flush or a full batch ends the sleep early.
                let deadline = Instant::now() + self.settings.linger;
                while flushes.is_empty()
                    && self.flush_waiting.load(Ordering::Acquire) == 0
                    && rx.len() + events.len() < self.settings.batch_max
                {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    std::thread::park_timeout((deadline - now).min(Duration::from_millis(10)));
                }
                while events.len() < self.settings.batch_max {
                    match rx.try_recv() {
                        Ok(m) => self.take(m, &mut events, &mut findings, &mut flushes),
                        Err(_) => break,
                    }
                }
            }
            self.write(&mut events, &mut findings);
            self.counters
                .queued
                .store(rx.len() as u64, Ordering::Relaxed);
            for f in flushes.drain(..) {
                self.flush_waiting.fetch_sub(1, Ordering::AcqRel);
                let _ = f.send(());
            }
        }
    }

    fn take(
        &mut self,
        m: Msg,
        events: &mut Vec<UsageEvent>,
        findings: &mut Vec<Finding>,
        flushes: &mut Vec<crossbeam_channel::Sender<()>>,
    ) {
        match m {
            Msg::Event(e) => events.push(*e),
            Msg::Finding(f) => {
                if self.seen_findings.len() < 100_000 && self.seen_findings.insert(f.id.clone()) {
                    findings.push(*f);
                }
            }
            Msg::Attribution(a) => self.pending_attributions.push(a),
            Msg::Flush(tx) => flushes.push(tx),
        }
    }

    fn store_ready(&self) -> bool {
        self.healthy || Instant::now() >= self.retry_at
    }

    fn failed(&mut self, what: &str, e: &str) {
        self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
        self.backoff = if self.backoff.is_zero() {
            self.settings.retry_base
        } else {
            (self.backoff * 2).min(Duration::from_secs(30))
        };
        self.retry_at = Instant::now() + self.backoff;
        if self.healthy {
            tracing::warn!(
                "proxy: the store refused {what} ({e}); events go to {} until it answers again (next try in {:?})",
                self.spill.path().display(),
                self.backoff
            );
        } else {
            tracing::debug!("proxy: store still refusing {what}: {e}");
        }
        self.healthy = false;
    }

    fn recovered(&mut self) {
        if !self.healthy {
            tracing::warn!("proxy: the store answers again; reading spilled events back into it");
            self.need_unspill = true;
        }
        self.healthy = true;
        self.backoff = Duration::ZERO;
    }

    fn write(&mut self, events: &mut Vec<UsageEvent>, findings: &mut Vec<Finding>) {
        if self.store_ready() && !self.pending_attributions.is_empty() {
            match self.store.remember_tokens(&self.pending_attributions) {
                Ok(()) => {
                    self.pending_attributions.clear();
                    self.recovered();
                }
                Err(e) => self.failed("token attributions", &e),
            }
        }
        if !findings.is_empty() {
            if self.store_ready() {
                match self.store.record_findings(findings) {
                    Ok(()) => {
                        self.counters
                            .findings
                            .fetch_add(findings.len() as u64, Ordering::Relaxed);
                        findings.clear();
                        self.recovered();
                    }
                    Err(e) => self.failed("findings", &e),
                }
            }
            if findings.len() > 1_000 {
                // the store has been down long: keep the newest, say what is dropped
                for f in findings.drain(..findings.len() - 1_000) {
                    tracing::warn!(rule = %f.rule, id = %f.id, "proxy: finding not recorded (store down): {}", f.message);
                }
            }
        }
        if !events.is_empty() {
            let n = events.len() as u64;
            let stored = if self.store_ready() {
                match self.store.append_events(events) {
                    Ok(()) => {
                        self.recovered();
                        true
                    }
                    Err(e) => {
                        self.failed("usage events", &e);
                        false
                    }
                }
            } else {
                false
            };
            if stored {
                self.counters.stored.fetch_add(n, Ordering::Relaxed);
            } else {
                match self.spill.append(events) {
                    Ok(()) => {
                        self.counters.spilled.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                        tracing::error!(
                            "proxy: {n} events lost: the store refused them and the spill file {} is not writable: {e}",
                            self.spill.path().display()
                        );
                    }
                }
            }
            events.clear();
        }
        let due = if self.healthy {
            self.need_unspill || self.last_unspill.elapsed() >= self.settings.adopt_after
        } else {
            // the store refused the last batch: try it again with the spilled events
            Instant::now() >= self.retry_at
        };
        if due {
            self.unspill();
        }
    }

    /// Reads this writer's spill files (and leftovers of earlier runs) back into the store and
    /// removes each one fully stored.
    fn unspill(&mut self) {
        self.need_unspill = false;
        self.last_unspill = Instant::now();
        self.spill.rotate();
        self.spill.adopt_leftovers(self.settings.adopt_after);
        for path in self.spill.draining() {
            match self.unspill_file(&path) {
                Ok(n) => {
                    if !self.healthy {
                        tracing::warn!(
                            "proxy: the store answers again; spilled events go back into it"
                        );
                        self.healthy = true;
                        self.backoff = Duration::ZERO;
                    }
                    self.counters.unspilled.fetch_add(n, Ordering::Relaxed);
                    tracing::info!(
                        "proxy: {n} spilled events from {} are in the store",
                        path.display()
                    );
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    self.failed("spilled events", &e);
                    return;
                }
            }
        }
    }

    fn unspill_file(&mut self, path: &Path) -> Result<u64, String> {
        let (f, _) = crate::files::open_regular(path).map_err(|e| e.to_string())?;
        let mut batch = Vec::with_capacity(self.settings.batch_max);
        let mut n = 0;
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            // read as `usage ingest` reads it: the same normalization, so the same event meets
            match crate::usage::ingest::parse_line(line.as_bytes()) {
                Ok(e) => batch.push(e),
                Err(e) => {
                    tracing::warn!(
                        "{}:{}: not a usage event, skipped: {e}",
                        path.display(),
                        i + 1
                    )
                }
            }
            if batch.len() >= self.settings.batch_max {
                self.store.append_events(&batch)?;
                n += batch.len() as u64;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.store.append_events(&batch)?;
            n += batch.len() as u64;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{start, Counters, UsageEvent, WriterSettings};
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;

    /// A store that refuses while `down` is set (read-only, failing disk...).
    struct Flaky {
        down: Arc<AtomicBool>,
        got: Arc<Mutex<Vec<UsageEvent>>>,
    }

    impl ProxyStore for Flaky {
        fn append_events(&mut self, events: &[UsageEvent]) -> Result<(), String> {
            if self.down.load(Ordering::SeqCst) {
                return Err("attempt to write a readonly database".into());
            }
            let mut got = self.got.lock().unwrap();
            for e in events {
                if !got.contains(e) {
                    got.push(e.clone());
                }
            }
            Ok(())
        }
        fn record_findings(&mut self, _: &mut [Finding]) -> Result<(), String> {
            Ok(())
        }
        fn remember_tokens(&mut self, _: &[TokenAttribution]) -> Result<(), String> {
            Ok(())
        }
    }

    fn event(i: usize) -> UsageEvent {
        UsageEvent {
            ts: chrono::DateTime::parse_from_rfc3339(&format!(
                "2026-11-20T10:00:{:02}.000Z",
                i % 60
            ))
            .unwrap()
            .to_utc(),
            key: "payvy".into(),
            method: "GET".into(),
            path: format!("/api/v1/transfers/{i}"),
            status: 200,
            source_ip: None,
            user_agent: None,
            account_id: None,
            latency_ms: None,
            host: None,
            via: Some("proxy".into()),
            object_ids: vec![],
        }
    }

    #[test]
    fn a_read_only_store_spills_then_gets_every_event_back() {
        let dir = tempfile::tempdir().unwrap();
        let down = Arc::new(AtomicBool::new(true));
        let got = Arc::new(Mutex::new(Vec::new()));
        let counters = Arc::new(Counters::default());
        let settings = WriterSettings {
            queue_capacity: 8,
            batch_max: 16,
            linger: Duration::from_millis(1),
            retry_base: Duration::from_millis(1),
            adopt_after: Duration::from_secs(300),
        };
        let (rec, handle) = start(
            Box::new(Flaky {
                down: down.clone(),
                got: got.clone(),
            }),
            Spill::new(&dir.path().join("spill")),
            settings,
            counters.clone(),
        )
        .unwrap();
        // more than the queue holds: some go straight to the spill file
        for i in 0..200 {
            rec.event(Box::new(event(i)));
        }
        assert!(rec.flush(Duration::from_secs(10)));
        assert!(got.lock().unwrap().is_empty());
        assert_eq!(counters.spilled.load(Ordering::SeqCst), 200);
        down.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.lock().unwrap().len() < 200 {
            assert!(Instant::now() < deadline);
            rec.flush(Duration::from_secs(1));
        }
        rec.event(Box::new(event(500)));
        assert!(rec.flush(Duration::from_secs(10)));
        assert_eq!(got.lock().unwrap().len(), 201);
        assert_eq!(counters.unspilled.load(Ordering::SeqCst), 200);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 0);
        assert!(counters.store_failures.load(Ordering::SeqCst) >= 1);
        drop(rec);
        handle.join().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path().join("spill"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
