//! How a request's event ends: the pending event (recorded as 499 should the client leave
//! before the answer), the proxy's refusals (403 with their finding) and upstream body failures
//! (502), each recorded once with its latency.

use super::wire::{answer, error_chain};
use super::Downstream;
use crate::proxy::body::{Body, Recorded, Sink};
use crate::proxy::policy::{self, Check};
use crate::proxy::record::{millis, UsageEvent};
use crate::proxy::Shared;
use chrono::{DateTime, Utc};
use http::{Response, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// The event of a request in progress. Should the request end before the proxy answers (the
/// client closed its connection and hyper dropped the request), dropping this records it with
/// status 499 (nginx's "client closed request"): every request is one event.
pub(super) struct Pending {
    down: Arc<Downstream>,
    started: Instant,
    event: Option<Box<UsageEvent>>,
}

impl Pending {
    pub(super) fn new(down: Arc<Downstream>, started: Instant, event: UsageEvent) -> Pending {
        Pending {
            down,
            started,
            event: Some(Box::new(event)),
        }
    }

    pub(super) fn event(&self) -> &UsageEvent {
        self.event.as_ref().expect("event not taken yet")
    }

    pub(super) fn event_mut(&mut self) -> &mut UsageEvent {
        self.event.as_mut().expect("event not taken yet")
    }

    /// The event, for the path that records it.
    pub(super) fn take(&mut self) -> Box<UsageEvent> {
        self.event.take().expect("event taken once")
    }

    /// A response body that records the event when it ends.
    pub(super) fn into_body(mut self, inner: Body) -> Recorded {
        let event = self.take();
        Recorded::new(inner, self.down.clone(), event, self.started)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut e) = self.event.take() {
            e.status = 499;
            self.down.shared.record(e, self.started);
        }
    }
}

impl Shared {
    pub(super) fn record(&self, mut event: Box<UsageEvent>, started: Instant) {
        event.latency_ms = Some(millis(started.elapsed()));
        self.recorder.event(event);
    }

    /// Records `event` with `status` and answers the client with the proxy's own error.
    pub(super) fn fail(
        &self,
        mut event: Box<UsageEvent>,
        started: Instant,
        status: StatusCode,
        code: &str,
        message: &str,
    ) -> Response<Recorded> {
        event.status = status.as_u16();
        self.record(event, started);
        answer(status, code, message).map(Recorded::done)
    }

    /// Whether `what` is reported for the first time by this process (bounded memory).
    pub(super) fn first_report(&self, what: &str) -> bool {
        let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        if r.contains(what) {
            return false;
        }
        if r.len() >= 100_000 {
            r.clear();
        }
        r.insert(what.to_string());
        true
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn refuse(
        &self,
        check: Check,
        code: &str,
        message: &str,
        writes: bool,
        key: &str,
        subject: &[&str],
        vars: &[(&str, &str)],
        event: Box<UsageEvent>,
        started: Instant,
        now: DateTime<Utc>,
    ) -> Response<Recorded> {
        self.counters
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let f = policy::finding(
            check,
            writes,
            key,
            subject,
            vars,
            now,
            json!({"refused": {"method": event.method, "path": event.path, "source_ip": event.source_ip,
                               "user_agent": event.user_agent, "at": event.ts}}),
        );
        tracing::warn!(rule = %f.rule, id = %f.id, "{}", f.message);
        self.recorder.finding(f);
        self.fail(event, started, StatusCode::FORBIDDEN, code, message)
    }

    pub(super) fn body_failed(
        &self,
        event: Box<UsageEvent>,
        started: Instant,
        e: hyper::Error,
    ) -> Response<Recorded> {
        self.counters
            .upstream_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let status = event.status;
        self.fail(
            event,
            started,
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            &format!(
                "awxguard proxy: upstream {} answered {status} but its body failed: {}",
                self.upstream.url,
                error_chain(&e)
            ),
        )
    }
}

/// A connection records the events of its responses' bodies.
impl Sink for Downstream {
    fn record(&self, event: Box<UsageEvent>, started: Instant) {
        self.shared.record(event, started);
    }
}
