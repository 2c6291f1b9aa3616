//! The recording and enforcing proxy: the integration points its Airwallex base URL at it; it
//! forwards every request and response unchanged (streamed, HTTP/1.1 keep-alive on both sides,
//! TLS to the upstream with rustls) and records one usage event per request (`via: "proxy"`,
//! the key that made it, the object ids a write created or changed) without ever slowing or
//! failing the request for it. With `--enforce` it answers an Airwallex-style 403 for calls that
//! need a scope the key does not declare or come from a client outside `allowed_clients`; the
//! optional money guard holds transfers to beneficiaries created moments ago.
//!
//! Built on hyper 1 (server and client connections): the HTTP/1.1 engine axum and reqwest run
//! on, so the proxy streams bodies frame by frame without copying them, with no HTTP logic of our
//! own to get wrong. Each downstream connection drives its own upstream connection in its own
//! task (`lane`); idle upstream connections are reused by later downstream connections.
//!
//! Pieces: `forward` (one request), `body` (streamed, bounded-read and recording bodies),
//! `upstream` (the host rule and the TLS client), `attribution` (token → key), `policy`
//! (decisions and their findings, rules in `rules/proxy/`), `record` (queue, writer, spill),
//! `store` (what the proxy needs from the store, and its SQLite tables).

mod attribution;
pub mod body;
mod forward;
pub mod job;
mod lane;
pub mod policy;
pub mod record;
pub mod store;
pub mod upstream;

pub use forward::{COUNTERS_PATH, UNKNOWN_KEY};
pub use policy::{KeyPolicy, Policy, ProxyRules};
pub use record::{Counters, UsageEvent, WriterSettings};
pub use upstream::{Upstream, UpstreamError};

use crate::airwallex::Catalog;
use crate::clock::Clock;
use chrono::{DateTime, Utc};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{ProxyLookup, ProxyStore};

/// How the proxy runs (from `[proxy]` and the command line).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub upstream: Upstream,
    /// PEM files of CAs to trust for the upstream, besides the webpki roots.
    pub upstream_ca: Vec<PathBuf>,
    pub connect_timeout: Duration,
    /// Longest wait for the upstream's response headers (then 504).
    pub response_timeout: Duration,
    /// Where events go when the store refuses them.
    pub spill_dir: PathBuf,
    pub writer: WriterSettings,
    /// Most bytes of a body the proxy reads whole (login and write answers, transfer requests
    /// under the money guard); a larger one streams through unread.
    pub read_limit: usize,
    /// Longest a client may take to send its request headers.
    pub header_timeout: Duration,
}

impl ProxySettings {
    pub fn new(upstream: Upstream, spill_dir: PathBuf) -> ProxySettings {
        ProxySettings {
            upstream,
            upstream_ca: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            spill_dir,
            writer: WriterSettings::default(),
            read_limit: 64 * 1024,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// A serving loop handed to another thread.
pub type ServerFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many event loops serve, and how the caller starts one more: it runs the future to its
/// end on a new thread with its own single-threaded runtime (the library builds no runtime).
#[derive(Clone)]
pub struct ServerThreads {
    pub count: usize,
    #[allow(clippy::type_complexity)]
    pub spawn:
        Arc<dyn Fn(ServerFuture) -> std::io::Result<std::thread::JoinHandle<()>> + Send + Sync>,
}

impl std::fmt::Debug for ServerThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerThreads")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("cannot start the recording thread: {0}")]
    Writer(std::io::Error),
}

/// What every request shares.
pub(crate) struct Shared {
    dialer: Arc<lane::Dialer>,
    upstream: Upstream,
    policy: Policy,
    catalog: &'static Catalog,
    clock: Arc<dyn Clock>,
    recorder: record::Recorder,
    counters: Arc<Counters>,
    attributions: attribution::Attributions,
    lookup: Option<Arc<dyn ProxyLookup>>,
    response_timeout: Duration,
    read_limit: usize,
    header_timeout: Duration,
    /// Conditions already reported as findings by this process.
    reported: Mutex<HashSet<String>>,
    /// Beneficiaries created or changed through this proxy (for the money guard).
    recent_objects: Mutex<HashMap<String, DateTime<Utc>>>,
    /// The time of the last event (Unix nanoseconds): see `event_ts`.
    last_event_ns: std::sync::atomic::AtomicI64,
    /// Keys the hash under which a connection remembers its last token (`forward::Downstream`).
    token_hasher: ahash::RandomState,
}

impl Shared {
    /// The time of a new request's event: `now`, or a nanosecond after this proxy's previous
    /// event if that is later. The usage store deduplicates on the whole event, so no two of
    /// one proxy's events may be alike in every field (two requests in one clock tick, or a
    /// clock that stands still).
    fn event_ts(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        use std::sync::atomic::Ordering::Relaxed;
        let want = now.timestamp_nanos_opt().unwrap_or(i64::MAX - 1);
        let prev = self
            .last_event_ns
            .fetch_update(Relaxed, Relaxed, |last| Some(want.max(last + 1)))
            .unwrap_or(want);
        let ns = want.max(prev + 1);
        if ns == want {
            now
        } else {
            DateTime::from_timestamp_nanos(ns)
        }
    }
}

/// Hands a connection to another loop.
type Dealer = tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>;

/// A proxy ready to serve.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Proxy {
    /// Builds the proxy and starts its writer. `store` takes the writer's batches; `lookup`
    /// answers the request path (both over the same database, or `None`/a spill-only store).
    pub fn new(
        settings: ProxySettings,
        policy: Policy,
        store: Box<dyn ProxyStore>,
        lookup: Option<Arc<dyn ProxyLookup>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Proxy, ProxyError> {
        let dialer = Arc::new(lane::Dialer {
            connector: upstream::connector(&settings.upstream_ca, settings.connect_timeout)?,
            target: settings.upstream.dial_target(),
            connect_timeout: settings.connect_timeout,
            idle: lane::IdleConns::new(1024, Duration::from_secs(50)),
        });
        let counters = Arc::new(Counters::default());
        let spill = record::Spill::new(&settings.spill_dir);
        let (recorder, writer) =
            record::start(store, spill, settings.writer.clone(), counters.clone())
                .map_err(ProxyError::Writer)?;
        let shared = Shared {
            dialer,
            upstream: settings.upstream.clone(),
            policy,
            catalog: Catalog::builtin_ref(),
            clock,
            recorder,
            counters,
            attributions: attribution::Attributions::new(lookup.clone()),
            lookup,
            response_timeout: settings.response_timeout,
            read_limit: settings.read_limit,
            header_timeout: settings.header_timeout,
            reported: Mutex::new(HashSet::new()),
            recent_objects: Mutex::new(HashMap::new()),
            last_event_ns: std::sync::atomic::AtomicI64::new(i64::MIN + 1),
            token_hasher: ahash::RandomState::new(),
        };
        Ok(Proxy {
            shared: Arc::new(shared),
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.shared.counters.clone()
    }

    /// Waits until every event recorded so far is in the store or the spill file.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.recorder.flush(timeout)
    }

    /// Serves connections from `listener` until `shutdown` completes, then lets open requests
    /// finish (up to 10 s) and writes every event. Runs on the caller's runtime.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.serve_on(listener, shutdown, Vec::new()).await
    }

    /// `serve` on `threads.count` event loops: this thread's and `threads.count - 1` more, each
    /// a single-threaded runtime on its own thread (`threads.spawn` starts one: the caller owns
    /// runtimes). This loop accepts and deals the connections out in turn; a connection then
    /// stays on its loop with its upstream connection, so no request crosses threads (as
    /// nginx's worker processes). The recording thread, the store and the counters are shared.
    pub async fn serve_threads(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
        threads: &ServerThreads,
    ) -> std::io::Result<()> {
        let mut loops = Vec::new();
        let mut handles = Vec::new();
        for _ in 1..threads.count.max(1) {
            let (tx, rx) =
                tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
            let me = self.clone();
            let served: ServerFuture = Box::pin(async move { me.serve_dealt(rx).await });
            handles.push((threads.spawn)(served)?);
            loops.push(tx);
        }
        let out = self.serve_on(listener, shutdown, loops).await;
        // the other loops end once their senders are gone (dropped by `serve_on`)
        let _ = tokio::task::spawn_blocking(move || {
            for h in handles {
                let _ = h.join();
            }
        })
        .await;
        out
    }

    /// The accepting loop: every connection in turn to this loop or to one of `others`.
    async fn serve_on(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
        others: Vec<Dealer>,
    ) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        let mut turn = 0usize;
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // out of file descriptors and the like: say so, wait, go on
                        tracing::warn!("proxy: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            turn = (turn + 1) % (others.len() + 1);
            if turn > 0 {
                match stream.into_std() {
                    Ok(s) => {
                        if let Err(e) = others[turn - 1].send((s, peer)) {
                            // that loop is gone: serve the connection here
                            let (s, peer) = e.0;
                            if let Ok(s) = tokio::net::TcpStream::from_std(s) {
                                self.connection(s, peer, &graceful);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(%peer, "proxy: cannot hand a connection on: {e}"),
                }
                continue;
            }
            self.connection(stream, peer, &graceful);
        }
        drop(others);
        self.drain(graceful).await;
        Ok(())
    }

    /// A further loop: serves the connections the accepting loop deals it until it stops.
    async fn serve_dealt(
        &self,
        mut dealt: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    ) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        while let Some((s, peer)) = dealt.recv().await {
            match tokio::net::TcpStream::from_std(s) {
                Ok(s) => self.connection(s, peer, &graceful),
                Err(e) => tracing::warn!(%peer, "proxy: cannot take a connection: {e}"),
            }
        }
        self.drain(graceful).await;
    }

    /// Serves one connection (and its upstream side) in its own task on this loop.
    fn connection(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
    ) {
        let shared = self.shared.clone();
        let watcher = graceful.watcher();
        // the connection and its upstream side in one task (see `lane`)
        tokio::spawn(lane::drive(
            self.shared.dialer.clone(),
            move |lane| async move {
                let header_timeout = shared.header_timeout;
                let down = Arc::new(forward::Downstream::new(shared, peer, lane));
                let service =
                    hyper::service::service_fn(move |req| forward::handle(down.clone(), req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, "proxy: connection ended: {e}");
                }
            },
        ));
    }

    /// Lets open requests finish (up to 10 s), then writes every event.
    async fn drain(&self, graceful: hyper_util::server::graceful::GracefulShutdown) {
        if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("proxy: requests still open after 10 s; stopping anyway");
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.recorder.flush(Duration::from_secs(30)))
            .await;
    }

    /// The address the upstream sees this proxy connect from, when it can tell: the local
    /// address of a TCP connection to the upstream (right unless a NAT sits between).
    pub async fn egress_address(&self) -> Option<IpAddr> {
        let target = self.shared.upstream.socket_target();
        let s = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(target),
        )
        .await
        .ok()?
        .ok()?;
        s.local_addr().ok().map(|a| a.ip())
    }

    /// One line per declared key on whether the proxy's egress address is in its
    /// `ip_whitelist`, as far as it can tell (a private egress address means a NAT it cannot
    /// see past).
    pub fn whitelist_report(&self, egress: Option<IpAddr>) -> Vec<String> {
        let mut keys: Vec<&KeyPolicy> = self.shared.policy.keys().collect();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        let upstream_loopback = egress.is_some_and(|ip| ip.is_loopback());
        keys.iter()
            .map(|k| match egress {
                None => format!(
                    "key {}: cannot tell whether the proxy's egress address is in its ip_whitelist (upstream not reachable now)",
                    k.name
                ),
                Some(ip) if k.ip_whitelist.is_empty() => format!(
                    "key {}: no ip_whitelist declared; Airwallex accepts it from any address (the proxy connects from {ip})",
                    k.name
                ),
                Some(ip) if policy::in_whitelist(&k.ip_whitelist, ip) => format!(
                    "key {}: the proxy's egress address {ip} is in its ip_whitelist",
                    k.name
                ),
                Some(ip) if is_private(ip) && !upstream_loopback => format!(
                    "key {}: cannot tell: the proxy connects from {ip}, a private address behind a NAT; check that the NAT's public address is in its ip_whitelist ({})",
                    k.name,
                    k.ip_whitelist.join(", ")
                ),
                Some(ip) => format!(
                    "key {}: the proxy's egress address {ip} is NOT in its ip_whitelist ({}): Airwallex will refuse its calls through this proxy",
                    k.name,
                    k.ip_whitelist.join(", ")
                ),
            })
            .collect()
    }

    /// Bound on the address and serving: for tests and the CLI. Returns the local address.
    pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind(addr).await
    }

    /// Waits for the writer thread to end (after every clone of the proxy is dropped).
    pub fn join(self) {
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(self);
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    pub fn listen_note(addr: SocketAddr, upstream: &str) -> String {
        format!("awxguard proxy: listening on http://{addr}, forwarding to {upstream}")
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        // 100.64.0.0/10 is carrier-grade NAT
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The usage store deduplicates on the whole event: a clock that stands still (or two
    /// requests in one tick) must still give every event its own time, in order.
    #[test]
    fn event_times_are_distinct_and_increasing() {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::ManualClock::new(
            DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
                .unwrap()
                .to_utc(),
        ));
        let upstream = Upstream::parse("http://127.0.0.1:9", &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        struct Nowhere;
        impl ProxyStore for Nowhere {
            fn append_events(&mut self, _: &[UsageEvent]) -> Result<(), String> {
                Ok(())
            }
            fn record_findings(&mut self, _: &mut [crate::finding::Finding]) -> Result<(), String> {
                Ok(())
            }
            fn remember_tokens(&mut self, _: &[store::TokenAttribution]) -> Result<(), String> {
                Ok(())
            }
        }
        let p = Proxy::new(
            ProxySettings::new(upstream, dir.path().join("spill")),
            Policy::default(),
            Box::new(Nowhere),
            None,
            clock.clone(),
        )
        .unwrap();
        let now = clock.now();
        let ts: Vec<DateTime<Utc>> = (0..1000).map(|_| p.shared.event_ts(now)).collect();
        assert_eq!(ts[0], now);
        assert!(ts.windows(2).all(|w| w[1] > w[0]));
        // a later clock reading is taken as it is
        let later = now + chrono::Duration::seconds(1);
        assert_eq!(p.shared.event_ts(later), later);
    }
}
