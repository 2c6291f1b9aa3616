//! One request through the proxy: who makes it (the key of a login, the key behind a token),
//! what the proxy decides (pass, or an Airwallex-style 403), the call upstream with both bodies
//! streamed, and the usage event. Only three kinds of body are read whole, each bounded by
//! `read_limit`: a login's 201 (to learn its token), the 2xx answer of a beneficiary, transfer or
//! webhook write (to learn the object ids it created or changed), and with the money guard on,
//! a transfer-create request (to learn its beneficiary). Every other body streams through.

mod learn;
mod outcome;
mod wire;

use super::body::{read_limited, Body, Read, Recorded};
use super::policy::{self, Check, TRANSFER_CREATE};
use super::record::{event_time, UsageEvent};
use super::Shared;
use crate::secret::fingerprint;
use http::header;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use learn::{object_ids, tracks_objects};
use outcome::Pending;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wire::{
    answer, error_chain, header_str, strip_hop_by_hop, X_API_KEY, X_LOGIN_AS, X_ON_BEHALF_OF,
};

/// Reserved path: the proxy's counters (JSON), for loopback clients only; never forwarded.
pub const COUNTERS_PATH: &str = "/__awxguard/counters";

/// The key recorded for calls the proxy cannot attribute.
pub const UNKNOWN_KEY: &str = "unknown";

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

/// One downstream connection: its peer, what its requests repeat (the peer's address as text,
/// the fingerprint of the token it sent last) and its upstream side.
pub(crate) struct Downstream {
    peer: SocketAddr,
    peer_text: String,
    /// The last token's fingerprint, under a keyed 64-bit hash of the token (no copy of the token
    /// is kept): a client sends the same token on every call of a connection, so its SHA-256 is
    /// computed once per connection and token.
    last_token: Mutex<Option<(u64, String)>>,
    pub(super) lane: Arc<super::lane::Lane>,
}

impl Downstream {
    pub(crate) fn new(peer: SocketAddr, lane: Arc<super::lane::Lane>) -> Downstream {
        Downstream {
            peer,
            peer_text: peer.ip().to_string(),
            last_token: Mutex::new(None),
            lane,
        }
    }

    fn token_fingerprint(&self, p: &Shared, token: &str) -> String {
        let h = p.token_hasher.hash_one(token);
        let mut last = self.last_token.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((lh, fp)) if *lh == h => fp.clone(),
            _ => {
                let fp = fingerprint(token.as_bytes());
                *last = Some((h, fp.clone()));
                fp
            }
        }
    }
}

pub(super) async fn handle(
    p: Arc<Shared>,
    down: Arc<Downstream>,
    req: Request<Incoming>,
) -> Result<Response<Recorded>, Infallible> {
    let peer = down.peer;
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
        Who::Login(header_str(&parts.headers, &X_API_KEY).map(|k| fingerprint(k.as_bytes())))
    } else {
        match header_str(&parts.headers, &header::AUTHORIZATION).and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        }) {
            Some(token) => {
                let tfp = down.token_fingerprint(&p, token.trim());
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
    // only findings name the route: made when one is
    let route_text = |method: &Method| {
        template.map_or_else(
            || {
                format!(
                    "{} {}",
                    method,
                    crate::usage::ingest::unknown_template(&path)
                )
            },
            str::to_string,
        )
    };
    let client = peer.ip();
    let mut pending = Pending::new(
        p.clone(),
        started,
        UsageEvent {
            ts: p.event_ts(now),
            key: key_name.clone(),
            method: parts.method.as_str().to_string(),
            path: path.clone(),
            status: 0,
            source_ip: Some(down.peer_text.clone()),
            user_agent: header_str(&parts.headers, &header::USER_AGENT).map(str::to_string),
            account_id: header_str(&parts.headers, &X_ON_BEHALF_OF)
                .or_else(|| header_str(&parts.headers, &X_LOGIN_AS))
                .map(str::to_string),
            latency_ms: None,
            host: Some(p.upstream.host.clone()),
            via: Some("proxy".to_string()),
            object_ids: Vec::new(),
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
                    ("route", &route_text(&parts.method)),
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
                ("route", &route_text(&parts.method)),
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
                    ("route", &route_text(&parts.method)),
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
    parts.uri = match p.upstream.origin(&parts.uri) {
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
    parts
        .headers
        .insert(header::HOST, p.upstream.host_header.clone());
    let upstream_req = Request::from_parts(parts, body);
    let resp =
        match tokio::time::timeout(p.response_timeout, down.lane.send(&p.dialer, upstream_req))
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                p.counters
                    .upstream_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let reason = error_chain(&*e);
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
