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
use crate::airwallex::model::RouteRef;
use crate::secret::fingerprint;
use chrono::{DateTime, Utc};
use http::header;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use learn::{object_ids, tracks_objects};
use outcome::Pending;
use serde_json::{json, Value};
use std::convert::Infallible;
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
    Key(Arc<str>),
    /// A call with a token no proxy saw the login of (its fingerprint).
    UnknownToken(String),
    /// A call without a bearer token.
    Nobody,
}

/// One downstream connection: its peer, what its requests repeat (the peer's address as text,
/// what the last request's token and route resolved to) and its upstream side.
pub(crate) struct Downstream {
    /// What every connection shares (one reference per connection: the requests of a
    /// connection do not touch its count, which the serving loops would contend for).
    shared: Arc<Shared>,
    peer: SocketAddr,
    peer_text: String,
    memo: Mutex<Memo>,
    pub(super) lane: Arc<super::lane::Lane>,
}

/// What a connection's last request resolved. A client sends the same token and mostly the same
/// calls on every request of a connection: the token's SHA-256, the store's and the policy's
/// answers for it, and the catalog's match of the route are worked out once per connection and
/// token (or path), not per request.
#[derive(Default)]
struct Memo {
    /// The last token: a keyed 64-bit hash of it (no copy of the token is kept) and its
    /// fingerprint.
    token: Option<(u64, String)>,
    /// The key behind that token (fingerprint, name) and when the token expires.
    key: Option<(Arc<str>, String, DateTime<Utc>)>,
    /// The last call: method, path, the catalog's route and whether it writes.
    route: Option<(Method, String, Option<RouteRef<'static>>, bool)>,
}

impl Memo {
    /// `token` (whose keyed hash is `h`): its key while the token has not expired, else its
    /// fingerprint to resolve.
    fn remembered(&mut self, h: u64, token: &[u8], now: DateTime<Utc>) -> Remembered {
        if let Some((lh, tfp)) = &self.token {
            if *lh == h {
                return match &self.key {
                    Some((fp, name, until)) if *until > now => Remembered::Key {
                        fingerprint: fp.clone(),
                        name: name.clone(),
                    },
                    _ => Remembered::Resolve(tfp.clone()),
                };
            }
        }
        let tfp = fingerprint(token);
        self.token = Some((h, tfp.clone()));
        self.key = None;
        Remembered::Resolve(tfp)
    }

    /// Remembers the key (fingerprint, name) the token `tfp` resolved to, until `until`: only
    /// while `tfp` is still the connection's last token.
    fn remember_key(&mut self, tfp: &str, key: (&Arc<str>, &str), until: DateTime<Utc>) {
        if self.token.as_ref().is_some_and(|(_, t)| t == tfp) {
            self.key = Some((key.0.clone(), key.1.to_string(), until));
        }
    }
}

/// A token's key as the connection remembers it, or the token's fingerprint to resolve.
#[derive(Debug, PartialEq)]
enum Remembered {
    Key { fingerprint: Arc<str>, name: String },
    Resolve(String),
}

impl Downstream {
    pub(crate) fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        lane: Arc<super::lane::Lane>,
    ) -> Downstream {
        Downstream {
            shared,
            peer,
            peer_text: peer.ip().to_string(),
            memo: Mutex::new(Memo::default()),
            lane,
        }
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of the connection's last token while it has not expired, else the fingerprint of
    /// `token` to resolve.
    fn remembered(&self, p: &Shared, token: &[u8], now: DateTime<Utc>) -> Remembered {
        self.memo()
            .remembered(p.token_hasher.hash_one(token), token, now)
    }

    /// Remembers the key `tfp` resolved to, until `until`.
    fn remember_key(&self, tfp: &str, key: (&Arc<str>, &str), until: DateTime<Utc>) {
        self.memo().remember_key(tfp, key, until);
    }

    /// The catalog's route for `method` `path` and whether it writes.
    fn route(&self, p: &Shared, method: &Method, path: &str) -> (Option<RouteRef<'static>>, bool) {
        let mut m = self.memo();
        if let Some((lm, lp, route, writes)) = &m.route {
            if lm == method && lp == path {
                return (*route, *writes);
            }
        }
        let route = p.catalog.route_ref(method.as_str(), path);
        let writes = policy::writes(route, p.catalog);
        m.route = Some((method.clone(), path.to_string(), route, writes));
        (route, writes)
    }
}

impl Shared {
    /// The name the events give a key: its name in the config, else its fingerprint.
    fn key_name(&self, fp: &str) -> String {
        self.policy
            .key(fp)
            .map_or_else(|| fp.to_string(), |k| k.name.clone())
    }
}

pub(super) async fn handle(
    down: Arc<Downstream>,
    req: Request<Incoming>,
) -> Result<Response<Recorded>, Infallible> {
    let p = &*down.shared;
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
    let (route, writes) = down.route(p, &parts.method, &path);
    let template = route.map(|r| r.template);
    let is_login = parts.method == Method::POST && path == crate::airwallex::LOGIN_PATH;
    let (who, key_name) = if is_login {
        let k = header_str(&parts.headers, &X_API_KEY).map(|k| fingerprint(k.as_bytes()));
        let name = k
            .as_deref()
            .map_or_else(|| UNKNOWN_KEY.to_string(), |fp| p.key_name(fp));
        (Who::Login(k), name)
    } else {
        // the token as bytes: neither checked as text nor copied, only hashed (and
        // fingerprinted when the connection has not seen it)
        match parts.headers.get(header::AUTHORIZATION).and_then(|v| {
            let v = v.as_bytes();
            v.strip_prefix(b"Bearer ")
                .or_else(|| v.strip_prefix(b"bearer "))
        }) {
            Some(token) => match down.remembered(p, token.trim_ascii(), now) {
                Remembered::Key { fingerprint, name } => (Who::Key(fingerprint), name),
                // once per connection and token: boxed, so the common path's future stays small
                Remembered::Resolve(tfp) => match Box::pin(p.attributions.resolve(&tfp, now)).await
                {
                    Some((k, until)) => {
                        let name = p.key_name(&k);
                        let k: Arc<str> = k.into();
                        down.remember_key(&tfp, (&k, &name), until);
                        (Who::Key(k), name)
                    }
                    None => (Who::UnknownToken(tfp), UNKNOWN_KEY.to_string()),
                },
            },
            None => (Who::Nobody, UNKNOWN_KEY.to_string()),
        }
    };
    let key_fp = match &who {
        Who::Login(k) => k.as_deref(),
        Who::Key(k) => Some(&**k),
        _ => None,
    };
    // only findings name the route: made when one is
    let route_text = |method: &Method, path: &str| {
        template.map_or_else(
            || {
                format!(
                    "{} {}",
                    method,
                    crate::usage::ingest::unknown_template(path)
                )
            },
            str::to_string,
        )
    };
    let client = peer.ip();
    let mut pending = Pending::new(
        down.clone(),
        started,
        UsageEvent {
            ts: p.event_ts(now),
            // the key's name and the path move into the event; the rarer paths below read them
            // back from it
            key: key_name,
            method: parts.method.as_str().to_string(),
            path,
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
                    ("route", &route_text(&parts.method, &pending.event().path)),
                    ("token", tfp),
                    ("client", &client.to_string()),
                ],
                now,
                json!({
                    "token_fingerprint": tfp,
                    "first_call": {"method": parts.method.as_str(), "path": pending.event().path, "source_ip": client.to_string(),
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
        let key_name = pending.event().key.clone();
        let route = route_text(&parts.method, &pending.event().path);
        return Ok(p.refuse(
            Check::ClientRefused,
            "client_not_allowed",
            &format!("awxguard proxy: client {c} is not in [proxy] allowed_clients"),
            writes,
            &key_name,
            &[&key_name, &c],
            &[
                ("method", parts.method.as_str()),
                ("route", &route),
                ("client", &c),
            ],
            pending.take(),
            started,
            now,
        ));
    }
    if let Some(fp) = key_fp.filter(|k| p.policy.enforced(Some(k))) {
        if let Some(scope) = p.policy.missing_scope(fp, route) {
            let key_name = pending.event().key.clone();
            let route = route_text(&parts.method, &pending.event().path);
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
                    ("route", &route),
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
        body = match Box::pin(read_limited(incoming, p.read_limit)).await {
            Read::Whole(bytes) => {
                let ben = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("beneficiary_id")?.as_str().map(str::to_string));
                if let Some(ben) = ben {
                    let key_name = pending.event().key.clone();
                    if let Some(held) = Box::pin(p.hold(&key_name, &ben, now)).await {
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
                return Ok(p.fail(
                    pending.take(),
                    started,
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    &format!("awxguard proxy: reading the request failed: {e}"),
                ));
            }
        };
    }

    // upstream
    parts.uri = match p.upstream.origin(&parts.uri) {
        Ok(u) => u,
        Err(e) => {
            return Ok(p.fail(
                pending.take(),
                started,
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                &format!("awxguard proxy: bad request target: {e}"),
            ));
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
                return Ok(p.fail(
                    pending.take(),
                    started,
                    StatusCode::BAD_GATEWAY,
                    "bad_gateway",
                    &format!(
                        "awxguard proxy: upstream {} failed: {reason}",
                        p.upstream.url
                    ),
                ));
            }
            Err(_) => {
                p.counters
                    .upstream_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(p.fail(
                    pending.take(),
                    started,
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    &format!(
                        "awxguard proxy: upstream {} did not answer within {:?}",
                        p.upstream.url, p.response_timeout
                    ),
                ));
            }
        };
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    pending.event_mut().status = rparts.status.as_u16();
    let ok = rparts.status.is_success();

    if ok && is_login {
        let out = match Box::pin(read_limited(rbody, p.read_limit)).await {
            Read::Whole(bytes) => {
                if let Some(fp) = key_fp {
                    Box::pin(p.learn_login(fp, &bytes, now)).await;
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
        let out = match Box::pin(read_limited(rbody, p.read_limit)).await {
            Read::Whole(bytes) => {
                let ids = object_ids(template.unwrap_or(""), &pending.event().path, &bytes);
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
        pending.into_body(Body::Stream(rbody)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// A connection reuses its token's key only while the token lives, and never for another
    /// token.
    #[test]
    fn a_remembered_key_is_used_for_the_same_token_until_it_expires() {
        let mut m = Memo::default();
        let now = at("2026-12-05T10:00:00Z");
        let until = at("2026-12-05T10:30:00Z");
        let key1: Arc<str> = "sha256:key1".into();
        let first = m.remembered(1, b"token-one", now);
        let Remembered::Resolve(tfp) = first else {
            panic!("a new token is resolved: {first:?}")
        };
        assert_eq!(tfp, fingerprint(b"token-one"));
        // nothing remembered yet: resolve again
        assert_eq!(
            m.remembered(1, b"token-one", now),
            Remembered::Resolve(tfp.clone())
        );
        m.remember_key(&tfp, (&key1, "payouts"), until);
        let key = |name: &str| Remembered::Key {
            fingerprint: key1.clone(),
            name: name.into(),
        };
        assert_eq!(m.remembered(1, b"token-one", now), key("payouts"));
        assert_eq!(
            m.remembered(1, b"token-one", at("2026-12-05T10:29:59Z")),
            key("payouts")
        );
        // expired: back to the store and the policy
        assert_eq!(
            m.remembered(1, b"token-one", until),
            Remembered::Resolve(tfp.clone())
        );
        // another token: its own fingerprint, and the old key is forgotten
        m.remember_key(&tfp, (&key1, "payouts"), until);
        assert_eq!(
            m.remembered(2, b"token-two", now),
            Remembered::Resolve(fingerprint(b"token-two"))
        );
        assert_eq!(
            m.remembered(2, b"token-two", now),
            Remembered::Resolve(fingerprint(b"token-two"))
        );
        // a late answer for the old token does not attach to the new one
        m.remember_key(&tfp, (&key1, "payouts"), until);
        assert_eq!(
            m.remembered(2, b"token-two", now),
            Remembered::Resolve(fingerprint(b"token-two"))
        );
    }
}
