//! The upstream side of one downstream connection (a "lane"): its own HTTP/1.1 connection to the
//! upstream, driven inside the downstream connection's task. A pooled client (hyper-util's) hands
//! every request to the upstream connection's own task and the answer back: two task wake-ups
//! and a pool lock per request. Here the request goes from the downstream connection's service
//! straight to a `SendRequest` whose connection the same task polls, so a request crosses no
//! task boundary.
//!
//! The lane opens its connection on the first request and keeps it while both sides keep
//! theirs alive. When the downstream connection ends, a live upstream connection goes to the
//! shared idle list (`IdleConns`, unpolled, at most `max` and `ttl` old), where the next new
//! downstream connection takes it, so clients that open a connection per request do not pay a
//! TCP and TLS handshake each. A connection is checked before reuse (polled once: one the
//! upstream closed meanwhile ends there); a request refused before any byte of it was written
//! (a connection closed under it) is sent again once on a fresh connection.

use super::body::Body;
use super::upstream::Connector;
use http::Request;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// An upstream connection's driving future.
pub(crate) type ConnFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why the upstream did not answer.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

struct Idle {
    sender: SendRequest<Body>,
    conn: ConnFuture,
    since: Instant,
}

/// Upstream connections no downstream connection uses now.
pub(crate) struct IdleConns {
    conns: Mutex<Vec<Idle>>,
    max: usize,
    ttl: Duration,
}

impl IdleConns {
    pub(crate) fn new(max: usize, ttl: Duration) -> IdleConns {
        IdleConns {
            conns: Mutex::new(Vec::new()),
            max,
            ttl,
        }
    }

    /// The most recently parked live connection, if any.
    fn take(&self) -> Option<(SendRequest<Body>, ConnFuture)> {
        loop {
            let mut idle = self.conns.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if idle.since.elapsed() > self.ttl || idle.sender.is_closed() {
                continue; // dropped: closed
            }
            // one poll: a connection the upstream closed while it was parked ends here
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if idle.conn.as_mut().poll(&mut cx).is_ready() || idle.sender.is_closed() {
                continue;
            }
            return Some((idle.sender, idle.conn));
        }
    }

    fn put(&self, sender: SendRequest<Body>, conn: ConnFuture) {
        if sender.is_closed() {
            return;
        }
        let mut g = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|i| i.since.elapsed() <= self.ttl);
        if g.len() < self.max {
            g.push(Idle {
                sender,
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// What opening a connection needs.
pub(crate) struct Dialer {
    pub connector: Connector,
    pub target: http::Uri,
    pub connect_timeout: Duration,
    pub idle: IdleConns,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// One downstream connection's upstream side.
pub(crate) struct Lane {
    current: Mutex<Option<(u64, SendRequest<Body>)>>,
    /// A connection just opened, for the connection's task to drive (it looks here after every
    /// poll of the downstream side, which is where `open` runs).
    opened: Mutex<Option<(u64, ConnFuture)>>,
    /// The downstream connection ended: nothing drives a connection opened now.
    closed: std::sync::atomic::AtomicBool,
}

impl Lane {
    /// Sends `req` upstream on this lane's connection (opened or reopened as needed).
    pub(crate) async fn send(
        &self,
        dialer: &Dialer,
        req: Request<Body>,
    ) -> Result<hyper::Response<Incoming>, Error> {
        let mut req = Some(req);
        for attempt in 0..2 {
            let taken = self
                .current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let (id, mut sender) = match taken {
                Some((id, s)) if !s.is_closed() => (id, s),
                // once per connection: boxed, so the per-request future stays small
                _ => Box::pin(self.open(dialer)).await?,
            };
            // ready once the previous answer was read whole; an error: the connection is gone
            if let Err(e) = sender.ready().await {
                if attempt == 0 {
                    continue;
                }
                return Err(e.into());
            }
            match sender
                .try_send_request(req.take().expect("a request to send"))
                .await
            {
                Ok(resp) => {
                    *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, sender));
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // never written: the connection closed under it; once more on a fresh one
                    Some(r) if attempt == 0 => req = Some(r),
                    _ => return Err(e.into_error().into()),
                },
            }
        }
        Err("the upstream closed two connections in a row".into())
    }

    async fn open(&self, d: &Dialer) -> Result<(u64, SendRequest<Body>), Error> {
        let (sender, conn) = match d.idle.take() {
            Some(x) => x,
            None => {
                let mut c = d.connector.clone();
                let io = tokio::time::timeout(
                    d.connect_timeout,
                    tower_service::Service::call(&mut c, d.target.clone()),
                )
                .await
                .map_err(|_| format!("connect timed out after {:?}", d.connect_timeout))??;
                let (sender, conn) = http1::Builder::new().handshake(io).await?;
                let conn: ConnFuture = Box::pin(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("proxy: upstream connection ended: {e}");
                    }
                });
                (sender, conn)
            }
        };
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            return Err("the downstream connection is closing".into());
        }
        *self.opened.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, conn));
        Ok((id, sender))
    }
}

/// Serves one downstream connection: `serve(lane)` is its HTTP server future; the lane's upstream
/// connections are polled here too, in the same task. At the end a live upstream connection is
/// parked in `dialer.idle`.
pub(crate) async fn drive<F, Fut>(dialer: Arc<Dialer>, serve: F) -> Fut::Output
where
    F: FnOnce(Arc<Lane>) -> Fut,
    Fut: Future,
{
    let lane = Arc::new(Lane {
        current: Mutex::new(None),
        opened: Mutex::new(None),
        closed: std::sync::atomic::AtomicBool::new(false),
    });
    let down = serve(lane.clone());
    let mut down = std::pin::pin!(down);
    let mut current: Option<(u64, ConnFuture)> = None;
    let mut retired: Vec<ConnFuture> = Vec::new();
    let out = std::future::poll_fn(|cx| loop {
        let opened = lane.opened.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((id, f)) = opened {
            if let Some((_, old)) = current.replace((id, f)) {
                retired.push(old);
            }
        }
        if let Some((_, f)) = current.as_mut() {
            if f.as_mut().poll(cx).is_ready() {
                current = None;
            }
        }
        if !retired.is_empty() {
            retired.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        }
        match down.as_mut().poll(cx) {
            Poll::Ready(out) => return Poll::Ready(out),
            // a connection opened during that poll: drive it now (nothing else wakes this task
            // for it)
            Poll::Pending
                if lane
                    .opened
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some() => {}
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    lane.closed.store(true, Ordering::Release);
    let parked = lane
        .current
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let (Some((id, conn)), Some((lid, sender))) = (current, parked) {
        if id == lid {
            dialer.idle.put(sender, conn);
        }
    }
    out
}
