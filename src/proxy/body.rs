//! Bodies the proxy passes on: the peer's stream untouched (no buffering), a small buffered body
//! (a login or write response it had to read, a transfer request the money guard had to read), or
//! a buffered prefix followed by the rest of the stream (when a body turned out larger than the
//! read limit). `Recorded` wraps a response body and sends the request's usage event when the
//! body ends, fails or is dropped (the client went away): exactly one event per request.

use super::record::UsageEvent;
use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// A request or response body as the proxy forwards it.
#[derive(Debug)]
pub enum Body {
    Empty,
    Full(Option<Bytes>),
    Stream(Incoming),
    /// Bytes already read, then the rest of the stream.
    Prefixed(Option<Bytes>, Incoming),
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        if b.is_empty() {
            Body::Empty
        } else {
            Body::Full(Some(b))
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(s) => Pin::new(s).poll_frame(cx),
            Body::Prefixed(prefix, s) => match prefix.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Pin::new(s).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Stream(s) => s.is_end_stream(),
            Body::Prefixed(p, s) => p.is_none() && s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(s) => s.size_hint(),
            Body::Prefixed(p, s) => {
                let n = p.as_ref().map_or(0, |b| b.len() as u64);
                let h = s.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(h.lower() + n);
                if let Some(u) = h.upper() {
                    out.set_upper(u + n);
                }
                out
            }
        }
    }
}

/// What reading a body up to a limit gave.
pub enum Read {
    /// The whole body (it ended within the limit).
    Whole(Bytes),
    /// The limit was reached: what was read, and the rest still to stream.
    TooLarge(Body),
    /// The stream failed.
    Failed(hyper::Error),
}

/// Reads `body` whole if it ends within `limit` bytes; a larger body is not lost: the part read
/// is kept in front of the rest.
pub async fn read_limited(mut body: Incoming, limit: usize) -> Read {
    use http_body_util::BodyExt;
    if body.size_hint().lower() > limit as u64 {
        return Read::TooLarge(Body::Stream(body));
    }
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Read::Whole(buf.freeze()),
            Some(Err(e)) => return Read::Failed(e),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > limit {
                        return Read::TooLarge(Body::Prefixed(Some(buf.freeze()), body));
                    }
                }
            }
        }
    }
}

/// Where a response body's event goes when the body ends (the connection it was served on).
pub trait Sink: Send + Sync {
    /// Records `event`, whose request started at `started`.
    fn record(&self, event: Box<UsageEvent>, started: Instant);
}

/// A response body that records its request's event when it ends.
pub struct Recorded {
    inner: Body,
    pending: Option<(Arc<dyn Sink>, Box<UsageEvent>, Instant)>,
}

impl Recorded {
    /// A body whose event is sent to `sink` when it ends.
    pub fn new(
        inner: Body,
        sink: Arc<dyn Sink>,
        event: Box<UsageEvent>,
        started: Instant,
    ) -> Recorded {
        Recorded {
            inner,
            pending: Some((sink, event, started)),
        }
    }

    /// A body whose event was already sent.
    pub fn done(inner: Body) -> Recorded {
        Recorded {
            inner,
            pending: None,
        }
    }

    fn finish(&mut self) {
        if let Some((sink, event, started)) = self.pending.take() {
            sink.record(event, started);
        }
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.finish();
    }
}

impl HttpBody for Recorded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.finish();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
