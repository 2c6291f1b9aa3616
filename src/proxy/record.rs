//! Recording without slowing or failing a request: the request path puts each usage event (and
//! each finding, each learned token attribution) on a bounded queue and moves on; one writer
//! thread takes them off in batches and writes a batch in one transaction. When the store is
//! locked, read-only or failing, the batch goes to the spill file (JSON Lines, the usage-event
//! contract, created 0600) and the writer tries the store again after a back-off; once the store
//! answers, it reads the spill files back into it (the store ignores an event it already holds,
//! so a spill read twice counts once) and removes them. Should the queue ever be full, the
//! request path appends its event to the spill file itself. Everything is counted
//! (`Counters`) and said in the log.

use super::store::{ProxyStore, TokenAttribution};
use crate::finding::Finding;
use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One line of the usage-event contract, as the proxy writes it (`via: "proxy"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub ts: String,
    pub key: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub object_ids: Vec<String>,
    /// Unique per request (`<proxy run>-<n>`): two requests alike in every other field (same
    /// microsecond, key, route, status, latency) stay two events under whole-event dedup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Milliseconds with microsecond precision.
pub fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// RFC 3339 in UTC with microseconds, as events carry it.
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
    /// Events currently waiting in the queue.
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

/// The spill file: owner-only JSON Lines, one file per proxy process, in the spill directory.
#[derive(Debug)]
pub struct Spill {
    dir: PathBuf,
    name: String,
    file: Mutex<Option<File>>,
}

impl Spill {
    pub fn new(dir: &Path) -> Spill {
        let name = format!(
            "proxy-spill-{}-{}.jsonl",
            Utc::now().format("%Y%m%dT%H%M%S"),
            std::process::id()
        );
        Spill {
            dir: dir.to_path_buf(),
            name,
            file: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    fn open(&self) -> std::io::Result<File> {
        create_private_dir(&self.dir)?;
        let mut o = OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(self.path())
    }

    /// Appends events, one JSON line each, in one write.
    pub fn append(&self, events: &[UsageEvent]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 256);
        for e in events {
            serde_json::to_writer(&mut buf, e).expect("events serialize");
            buf.push(b'\n');
        }
        // Through the redaction gate: a spill file is as private as the store it stands in for.
        let buf = crate::redact::scrub_bytes(&buf);
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        guard.as_mut().expect("opened").write_all(&buf)
    }

    /// Closes the current file so the next append starts a new one, and renames it for reading
    /// back (`<name>.<micros>.draining`).
    fn rotate(&self) {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        guard.take();
        let from = self.path();
        if from.exists() {
            let to = self.dir.join(format!(
                "{}.{}.draining",
                self.name,
                Utc::now().timestamp_micros()
            ));
            if let Err(e) = std::fs::rename(&from, &to) {
                tracing::warn!("proxy: cannot rename {}: {e}", from.display());
            }
        }
    }

    /// Takes over spill files left by earlier runs (`proxy-spill-*.jsonl`, or `.draining` ones a
    /// run did not finish) untouched for `min_age`, so this writer reads them back. A second
    /// proxy's live file is younger and left to it.
    fn adopt_leftovers(&self, min_age: Duration) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with("proxy-spill-") || name.starts_with(&self.name) {
                continue;
            }
            if !(name.ends_with(".jsonl") || name.ends_with(".draining")) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if old {
                let to = self.dir.join(format!("{}.{name}.draining", self.name));
                if std::fs::rename(&p, &to).is_ok() {
                    tracing::info!("proxy: reading back {} left by an earlier run", p.display());
                }
            }
        }
    }

    /// This writer's files waiting to be read back, oldest first.
    fn draining(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&self.name) && n.ends_with(".draining"))
            })
            .collect();
        files.sort();
        files
    }
}

/// Creates `dir` (and parents) owner-only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// The request path's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: Sender<Msg>,
    spill: Arc<Spill>,
    counters: Arc<Counters>,
}

impl Recorder {
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Queues an event; with the queue full, appends it to the spill file at once.
    pub fn event(&self, e: UsageEvent) {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Event(Box::new(e))) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Event(e)))
            | Err(TrySendError::Disconnected(Msg::Event(e))) => {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
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
        if self.tx.send_timeout(Msg::Flush(tx), timeout).is_err() {
            return false;
        }
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
    let recorder = Recorder {
        tx,
        spill: spill.clone(),
        counters: counters.clone(),
    };
    let mut w = Writer {
        store,
        spill,
        counters,
        settings,
        healthy: true,
        retry_at: Instant::now(),
        backoff: Duration::ZERO,
        pending_attributions: Vec::new(),
        seen_findings: HashSet::new(),
        need_unspill: true,
        last_unspill: Instant::now(),
    };
    let handle = std::thread::Builder::new()
        .name("awxguard-proxy-writer".into())
        .spawn(move || w.run(rx))?;
    Ok((recorder, handle))
}

struct Writer {
    store: Box<dyn ProxyStore>,
    spill: Arc<Spill>,
    counters: Arc<Counters>,
    settings: WriterSettings,
    healthy: bool,
    retry_at: Instant,
    backoff: Duration,
    pending_attributions: Vec<TokenAttribution>,
    /// Findings already recorded by this process (each is recorded once per run).
    seen_findings: HashSet<String>,
    /// Spill files may be waiting (at start: from an earlier run).
    need_unspill: bool,
    last_unspill: Instant,
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
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
                let deadline = Instant::now() + self.settings.linger;
                while events.len() < self.settings.batch_max {
                    match rx.try_recv() {
                        Ok(m) => self.take(m, &mut events, &mut findings, &mut flushes),
                        Err(_) => {
                            if !flushes.is_empty() || Instant::now() >= deadline {
                                break;
                            }
                            match rx
                                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                            {
                                Ok(m) => self.take(m, &mut events, &mut findings, &mut flushes),
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
            self.write(&mut events, &mut findings);
            for f in flushes.drain(..) {
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
            Msg::Event(e) => {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                events.push(*e)
            }
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
            match serde_json::from_str::<UsageEvent>(&line) {
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
    use super::*;
    use std::sync::atomic::AtomicBool;

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
            ts: format!("2026-11-20T10:00:{:02}.000Z", i % 60),
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
            request_id: None,
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
            rec.event(event(i));
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
        rec.event(event(500));
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
