//! One request through the proxy: who makes it (the key of a login, the key behind a token),
//! what the proxy decides (pass, or an Airwallex-style 403), the call upstream with both bodies
//! streamed, and the usage event. Only three kinds of body are read whole, each bounded by
//! `read_limit`: a login's 201 (to learn its token), the 2xx answer of a beneficiary, transfer or
//! webhook write (to learn the object ids it created or changed), and with the money guard on,
//! a transfer-create request (to learn its beneficiary). Every other body streams through.

use super::body::{read_limited, Body, Read, Recorded};
use super::policy::{self, Check, TRANSFER_CREATE};
use super::record::{event_time, millis, UsageEvent};
use super::store::TokenAttribution;
use super::Shared;
use crate::secret::fingerprint;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Reserved path: the proxy's counters (JSON), for loopback clients only; never forwarded.
pub const COUNTERS_PATH: &str = "/__awxguard/counters";

/// The key recorded for calls the proxy cannot attribute.
pub const UNKNOWN_KEY: &str = "unknown";

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    if let Some(c) = h.get(header::CONNECTION) {
        if let Ok(list) = c.to_str() {
            let named: Vec<HeaderName> = list
                .split(',')
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect();
            for n in named {
                h.remove(n);
            }
        }
    }
    for n in HOP_BY_HOP {
        h.remove(*n);
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// An Airwallex-style JSON answer made by the proxy itself.
fn answer(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = json!({"code": code, "message": message}).to_string();
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Who makes a request.
enum Who {
    /// A login, with the fingerprint of its `x-api-key`.
    Login(Option<String>),
    /// A call whose token a login through a proxy returned.
    Key(String),
    /// A call with a token no proxy saw the login of (its fingerprint).
    UnknownToken(String),
    /// A call without a bearer token.
    Nobody,
}

/// The object ids a write answer names: its `id` (and `beneficiary_id` for beneficiaries), or the
/// id in the path (`/api/v1/webhooks/{id}/delete`).
fn object_ids(template: &str, path: &str, body: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
        for field in ["id", "beneficiary_id"] {
            if field == "beneficiary_id" && !template.contains("/beneficiaries/") {
                continue;
            }
            if let Some(id) = m.get(field).and_then(Value::as_str) {
                if !id.is_empty() && !ids.iter().any(|x| x == id) {
                    ids.push(id.to_string());
                }
            }
        }
    }
    if ids.is_empty() {
        let t = template.split_once(' ').map_or(template, |(_, p)| p);
        for (ts, ps) in t
            .trim_matches('/')
            .split('/')
            .zip(path.trim_matches('/').split('/'))
        {
            if ts.starts_with('{') && !ps.is_empty() {
                ids.push(ps.to_string());
            }
        }
    }
    ids
}

/// Whether a route's 2xx answer names objects the watch joins on.
fn tracks_objects(template: &str) -> bool {
    template.starts_with("POST ")
        && [
            "/api/v1/beneficiaries/",
            "/api/v1/transfers/",
            "/api/v1/webhooks/",
        ]
        .iter()
        .any(|p| template.contains(p))
        && !template.ends_with("/validate")
}

#[derive(serde::Deserialize)]
struct LoginAnswer {
    token: String,
    #[serde(default)]
    expires_at: Option<String>,
}

pub(super) async fn handle(
    p: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Recorded>, Infallible> {
    let started = Instant::now();
    let now = p.clock.now();
    let (mut parts, body) = req.into_parts();
    if parts.uri.path() == COUNTERS_PATH && peer.ip().is_loopback() {
        let mut r = answer(StatusCode::OK, "ok", "");
        *r.body_mut() = Body::full(p.counters.snapshot().to_string());
        return Ok(r.map(Recorded::done));
    }
    p.counters
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = parts.uri.path().to_string();
    let route = p.catalog.route_ref(parts.method.as_str(), &path);
    let template = route.map(|r| r.template);
    let is_login = parts.method == Method::POST && path == crate::airwallex::LOGIN_PATH;
    let who = if is_login {
        Who::Login(header_str(&parts.headers, "x-api-key").map(|k| fingerprint(k.as_bytes())))
    } else {
        match header_str(&parts.headers, "authorization").and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        }) {
            Some(token) => {
                let tfp = fingerprint(token.trim().as_bytes());
                match p.attributions.resolve(&tfp, now).await {
                    Some(k) => Who::Key(k),
                    None => Who::UnknownToken(tfp),
                }
            }
            None => Who::Nobody,
        }
    };
    let key_fp = match &who {
        Who::Login(k) => k.as_deref(),
        Who::Key(k) => Some(k.as_str()),
        _ => None,
    };
    let key_name = match key_fp {
        Some(fp) => p
            .policy
            .key(fp)
            .map_or_else(|| fp.to_string(), |k| k.name.clone()),
        None => UNKNOWN_KEY.to_string(),
    };
    let writes = policy::writes(route, p.catalog);
    let route_text = template.map_or_else(
        || {
            format!(
                "{} {}",
                parts.method,
                crate::usage::ingest::unknown_template(&path)
            )
        },
        str::to_string,
    );
    let client = peer.ip();
    let mut pending = Pending::new(
        p.clone(),
        started,
        UsageEvent {
            ts: event_time(now),
            key: key_name.clone(),
            method: parts.method.as_str().to_string(),
            path: path.clone(),
            status: 0,
            source_ip: Some(client.to_string()),
            user_agent: header_str(&parts.headers, "user-agent").map(str::to_string),
            account_id: header_str(&parts.headers, "x-on-behalf-of")
                .or_else(|| header_str(&parts.headers, "x-login-as"))
                .map(str::to_string),
            latency_ms: None,
            host: Some(p.upstream.host.clone()),
            via: Some("proxy".to_string()),
            object_ids: Vec::new(),
            request_id: Some(p.request_id()),
        },
    );

    if let Who::UnknownToken(tfp) = &who {
        p.counters
            .unknown_tokens
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if p.first_report(&format!("unknown-token/{tfp}")) {
            let f = policy::finding(
                Check::UnknownToken,
                writes,
                UNKNOWN_KEY,
                &[tfp],
                &[
                    ("method", parts.method.as_str()),
                    ("route", &route_text),
                    ("token", tfp),
                    ("client", &client.to_string()),
                ],
                now,
                json!({
                    "token_fingerprint": tfp,
                    "first_call": {"method": parts.method.as_str(), "path": path, "source_ip": client.to_string(),
                                   "user_agent": pending.event().user_agent},
                }),
            );
            tracing::warn!(rule = %f.rule, id = %f.id, "{}", f.message);
            p.recorder.finding(f);
        }
    }

    // enforcement: the client, then the scope
    if p.policy.enforced(key_fp) && !p.policy.client_allowed(client) {
        let c = client.to_string();
        return Ok(p.refuse(
            Check::ClientRefused,
            "client_not_allowed",
            &format!("awxguard proxy: client {c} is not in [proxy] allowed_clients"),
            writes,
            &key_name,
            &[&key_name, &c],
            &[
                ("method", parts.method.as_str()),
                ("route", &route_text),
                ("client", &c),
            ],
            pending.take(),
            started,
            now,
        ));
    }
    if let Some(fp) = key_fp.filter(|k| p.policy.enforced(Some(k))) {
        if let Some(scope) = p.policy.missing_scope(fp, route) {
            return Ok(p.refuse(
                Check::UndeclaredScope,
                "undeclared_scope",
                &format!(
                    "awxguard proxy: this call needs the scope {scope}, which the key {key_name} does not declare"
                ),
                writes,
                &key_name,
                &[&key_name, scope],
                &[
                    ("method", parts.method.as_str()),
                    ("route", &route_text),
                    ("scope", scope),
                    ("client", &client.to_string()),
                ],
                pending.take(),
                started,
                now,
            ));
        }
    }

    // the money guard reads a transfer-create request to know its beneficiary
    let mut body = Body::Stream(body);
    if p.policy.money_guard.is_some() && template == Some(TRANSFER_CREATE) {
        let Body::Stream(incoming) = body else {
            unreachable!()
        };
        body = match read_limited(incoming, p.read_limit).await {
            Read::Whole(bytes) => {
                let ben = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("beneficiary_id")?.as_str().map(str::to_string));
                if let Some(ben) = ben {
                    if let Some(held) = p.hold(&key_name, &ben, now).await {
                        let (changed, until) = held;
                        let (c, u) = (event_time(changed), event_time(until));
                        return Ok(p.refuse(
                            Check::TransferHeld,
                            "transfer_held",
                            &format!(
                                "awxguard proxy: transfers to beneficiary {ben} are held until {u} (created or changed at {c}); see the proxy.transfer-held finding to release it"
                            ),
                            true,
                            &key_name,
                            &[&key_name, &ben],
                            &[
                                ("method", "POST"),
                                ("route", TRANSFER_CREATE),
                                ("beneficiary", &ben),
                                ("changed_at", &c),
                                ("until", &u),
                            ],
                            pending.take(),
                            started,
                            now,
                        ));
                    }
                }
                Body::full(bytes)
            }
            Read::TooLarge(b) => {
                tracing::warn!(
                    "proxy: transfer request larger than the read limit passes unchecked"
                );
                b
            }
            Read::Failed(e) => {
                let mut event = pending.take();
                event.status = 400;
                p.record(event, started);
                return Ok(answer(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    &format!("awxguard proxy: reading the request failed: {e}"),
                )
                .map(Recorded::done));
            }
        };
    }

    // upstream
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    parts.uri = match p.upstream.uri(&pq) {
        Ok(u) => u,
        Err(e) => {
            let mut event = pending.take();
            event.status = 400;
            p.record(event, started);
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                &format!("awxguard proxy: bad request target: {e}"),
            )
            .map(Recorded::done));
        }
    };
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    let upstream_req = Request::from_parts(parts, body);
    let resp = match tokio::time::timeout(p.response_timeout, p.client.request(upstream_req)).await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            p.counters
                .upstream_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let reason = error_chain(&e);
            tracing::warn!(upstream = %p.upstream.url, "proxy: upstream failed: {reason}");
            let mut event = pending.take();
            event.status = 502;
            p.record(event, started);
            return Ok(answer(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                &format!(
                    "awxguard proxy: upstream {} failed: {reason}",
                    p.upstream.url
                ),
            )
            .map(Recorded::done));
        }
        Err(_) => {
            p.counters
                .upstream_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut event = pending.take();
            event.status = 504;
            p.record(event, started);
            return Ok(answer(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                &format!(
                    "awxguard proxy: upstream {} did not answer within {:?}",
                    p.upstream.url, p.response_timeout
                ),
            )
            .map(Recorded::done));
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    pending.event_mut().status = rparts.status.as_u16();
    let ok = rparts.status.is_success();

    if ok && is_login {
        let out = match read_limited(rbody, p.read_limit).await {
            Read::Whole(bytes) => {
                if let Some(fp) = key_fp {
                    p.learn_login(fp, &bytes, now).await;
                }
                Body::full(bytes)
            }
            Read::TooLarge(b) => b,
            Read::Failed(e) => return Ok(p.body_failed(pending.take(), started, e)),
        };
        p.record(pending.take(), started);
        return Ok(Response::from_parts(rparts, Recorded::done(out)));
    }
    if ok && template.is_some_and(tracks_objects) {
        let out = match read_limited(rbody, p.read_limit).await {
            Read::Whole(bytes) => {
                let ids = object_ids(template.unwrap_or(""), &path, &bytes);
                p.remember_objects(&ids, template.unwrap_or(""), now);
                pending.event_mut().object_ids = ids;
                Body::full(bytes)
            }
            Read::TooLarge(b) => b,
            Read::Failed(e) => return Ok(p.body_failed(pending.take(), started, e)),
        };
        p.record(pending.take(), started);
        return Ok(Response::from_parts(rparts, Recorded::done(out)));
    }
    Ok(Response::from_parts(
        rparts,
        Recorded::new(
            Body::Stream(rbody),
            p.recorder.clone(),
            pending.take(),
            started,
        ),
    ))
}

/// The event of a request in progress. Should the request end before the proxy answers (the
/// client closed its connection and hyper dropped the request), dropping this records it with
/// status 499 (nginx's "client closed request"): every request is one event.
struct Pending {
    shared: Arc<Shared>,
    started: Instant,
    event: Option<UsageEvent>,
}

impl Pending {
    fn new(shared: Arc<Shared>, started: Instant, event: UsageEvent) -> Pending {
        Pending {
            shared,
            started,
            event: Some(event),
        }
    }

    fn event(&self) -> &UsageEvent {
        self.event.as_ref().expect("event not taken yet")
    }

    fn event_mut(&mut self) -> &mut UsageEvent {
        self.event.as_mut().expect("event not taken yet")
    }

    /// The event, for the path that records it.
    fn take(&mut self) -> UsageEvent {
        self.event.take().expect("event taken once")
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut e) = self.event.take() {
            e.status = 499;
            self.shared.record(e, self.started);
        }
    }
}

/// An error with its causes (hyper's client errors say little on their own).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

impl Shared {
    fn record(&self, mut event: UsageEvent, started: Instant) {
        event.latency_ms = Some(millis(started.elapsed()));
        self.recorder.event(event);
    }

    /// Whether `what` is reported for the first time by this process (bounded memory).
    fn first_report(&self, what: &str) -> bool {
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
    fn refuse(
        &self,
        check: Check,
        code: &str,
        message: &str,
        writes: bool,
        key: &str,
        subject: &[&str],
        vars: &[(&str, &str)],
        mut event: UsageEvent,
        started: Instant,
        now: DateTime<Utc>,
    ) -> Response<Recorded> {
        self.counters
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        event.status = 403;
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
        self.record(event, started);
        answer(StatusCode::FORBIDDEN, code, message).map(Recorded::done)
    }

    fn body_failed(
        &self,
        mut event: UsageEvent,
        started: Instant,
        e: hyper::Error,
    ) -> Response<Recorded> {
        self.counters
            .upstream_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let status = event.status;
        event.status = 502;
        self.record(event, started);
        answer(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            &format!(
                "awxguard proxy: upstream {} answered {status} but its body failed: {}",
                self.upstream.url,
                error_chain(&e)
            ),
        )
        .map(Recorded::done)
    }

    /// A login answered 2xx: learn the token it returned (its fingerprint only).
    async fn learn_login(&self, key_fp: &str, body: &Bytes, now: DateTime<Utc>) {
        let Ok(a) = serde_json::from_slice::<LoginAnswer>(body) else {
            tracing::warn!(
                "proxy: a login answered 2xx without a readable token; its calls will be unknown"
            );
            return;
        };
        let expires_at = a
            .expires_at
            .as_deref()
            .and_then(crate::airwallex::parse_timestamp)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| now + chrono::Duration::minutes(30));
        let attribution = TokenAttribution {
            token_fingerprint: fingerprint(a.token.as_bytes()),
            key_fingerprint: key_fp.to_string(),
            expires_at,
            learned_at: now,
        };
        drop(a);
        if let Err(e) = self.attributions.learn(attribution.clone()).await {
            tracing::warn!("proxy: cannot store a token attribution now ({e}); the writer retries");
            self.recorder.attribution(attribution);
        }
    }

    fn remember_objects(&self, ids: &[String], template: &str, now: DateTime<Utc>) {
        if self.policy.money_guard.is_none() || !template.contains("/beneficiaries/") {
            return;
        }
        let mut m = self
            .recent_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            let window = self
                .policy
                .money_guard
                .and_then(|g| chrono::Duration::from_std(g).ok())
                .unwrap_or_default();
            m.retain(|_, t| *t + window > now);
        }
        for id in ids {
            m.insert(id.clone(), now);
        }
    }

    /// Whether the money guard holds a transfer to `ben`: (changed at, held until).
    async fn hold(
        &self,
        key: &str,
        ben: &str,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let mem = self
            .recent_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ben)
            .copied();
        let stored = match &self.lookup {
            Some(l) if mem.is_none() => {
                let (l, id) = (l.clone(), ben.to_string());
                tokio::task::spawn_blocking(move || l.object_changed_at(&id))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            }
            _ => None,
        };
        let changed = mem.or(stored)?;
        let until = self.policy.holds(changed, now)?;
        // released by acknowledging the hold's finding
        let id = crate::finding::finding_id(
            &policy::ProxyRules::builtin().rule(Check::TransferHeld).id,
            &[key, ben],
        );
        if let Some(l) = &self.lookup {
            let l = l.clone();
            let acked = tokio::task::spawn_blocking(move || l.acknowledged(&id, now))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(false);
            if acked {
                tracing::info!(
                    "proxy: transfer to beneficiary {ben} released (finding acknowledged)"
                );
                return None;
            }
        }
        Some((changed, until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_from_answers_and_paths() {
        assert_eq!(
            object_ids(
                "POST /api/v1/beneficiaries/create",
                "/api/v1/beneficiaries/create",
                br#"{"id":"b1","beneficiary_id":"b1","nickname":"x"}"#
            ),
            ["b1"]
        );
        assert_eq!(
            object_ids(
                "POST /api/v1/transfers/create",
                "/api/v1/transfers/create",
                br#"{"id":"t1","beneficiary_id":"b1"}"#
            ),
            ["t1"]
        );
        assert_eq!(
            object_ids(
                "POST /api/v1/webhooks/{id}/delete",
                "/api/v1/webhooks/wh_9/delete",
                b"{}"
            ),
            ["wh_9"]
        );
        assert!(tracks_objects("POST /api/v1/webhooks/create"));
        assert!(!tracks_objects("POST /api/v1/transfers/validate"));
        assert!(!tracks_objects("GET /api/v1/transfers/{id}"));
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-api-version", HeaderValue::from_static("2025-02-14"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-api-version"));
    }
}
