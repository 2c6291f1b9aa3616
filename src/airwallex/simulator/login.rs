//! The login endpoint (tokens, per-key behaviours, login rate limit, IP whitelist) and the
//! control endpoints that read the request log.

use super::{
    b64, header, ip_allowed, random_id, Behaviour, Issued, RequestRecord, SimKey, Simulator,
};
use crate::secret::fingerprint;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// An HS256-shaped JWT with Airwallex's claims (the signature is random: only the simulator
/// checks its own tokens, by lookup).
fn make_token(key: &SimKey, now: i64) -> String {
    let claims = json!({
        "type": "client",
        "dc": "HK",
        "data_center_region": "HK",
        "issdc": "US",
        "jti": random_id(),
        "sub": random_id(),
        "iat": now,
        "exp": now + 1800,
        "account_id": key.account_id.clone().unwrap_or_else(random_id),
        "api_version": "2025-02-14",
        "permissions": key.permissions,
    });
    let sig: [u8; 32] = rand::thread_rng().gen();
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"HS256"}"#),
        b64(claims.to_string().as_bytes()),
        b64(&sig)
    )
}

pub(super) async fn login(
    State(sim): State<Simulator>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let client_id = header(&headers, "x-client-id").map(str::to_string);
    let key_fp = header(&headers, "x-api-key").map(|k| fingerprint(k.as_bytes()));
    let now = sim.now();
    let at = sim.now_rfc3339();
    let (response, delay) = {
        let mut inner = sim.lock();
        inner.tokens.retain(|_, t| t.expires > now);
        let found = inner.state.keys.iter().position(|k| {
            Some(&k.client_id) == client_id.as_ref()
                && Some(&k.api_key_fingerprint) == key_fp.as_ref()
        });
        let limit = inner.state.login_limit_per_minute;
        let (status, body, delay): (StatusCode, Value, u64) = match found {
            None => (
                StatusCode::UNAUTHORIZED,
                json!({"code": "credentials_invalid", "message": "Invalid client id or api key"}),
                0,
            ),
            Some(i) => {
                let key = inner.state.keys[i].clone();
                let recent = inner.logins.entry(i).or_default();
                recent.retain(|t| now - t < 60);
                recent.push(now);
                let over_limit = recent.len() as u32 > limit;
                let failures = inner.failures.entry(i).or_insert(0);
                if over_limit || key.behaviour == Behaviour::RateLimited {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        json!({"code": "too_many_requests", "message": "Too many requests"}),
                        key.delay_ms,
                    )
                } else if key.behaviour == Behaviour::Error || *failures < key.fail_first {
                    *failures += 1;
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"code": "internal_error", "message": "Internal server error"}),
                        key.delay_ms,
                    )
                } else if key.behaviour == Behaviour::Revoked {
                    (
                        StatusCode::UNAUTHORIZED,
                        json!({"code": "credentials_invalid", "message": "Invalid client id or api key"}),
                        key.delay_ms,
                    )
                } else if key.behaviour == Behaviour::Forbidden
                    || !ip_allowed(&key.ip_whitelist, peer.ip())
                {
                    (
                        StatusCode::FORBIDDEN,
                        json!({"code": "forbidden", "message": "Access denied: request IP is not in the whitelist of this API key"}),
                        key.delay_ms,
                    )
                } else {
                    let token = make_token(&key, now);
                    let expires = now + 1800;
                    inner
                        .tokens
                        .insert(token.clone(), Issued { key: i, expires });
                    let expires_at = chrono::DateTime::from_timestamp(expires, 0)
                        .map(|t| super::super::format_timestamp(&t))
                        .unwrap_or_default();
                    (
                        StatusCode::CREATED,
                        json!({"token": token, "expires_at": expires_at}),
                        key.delay_ms,
                    )
                }
            }
        };
        let mut body = body;
        if status != StatusCode::CREATED {
            body["trace_id"] = json!(random_id());
        }
        inner.log(RequestRecord {
            method: "POST".into(),
            path: super::super::LOGIN_PATH.into(),
            client_id: client_id.clone(),
            key_fingerprint: key_fp.clone(),
            status: status.as_u16(),
            source_ip: peer.ip().to_string(),
            token_of: None,
            at,
            host: header(&headers, "host").map(str::to_string),
        });
        ((status, Json(body)).into_response(), delay)
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    response
}

pub(super) async fn request_log(State(sim): State<Simulator>) -> Json<Vec<RequestRecord>> {
    Json(sim.requests())
}

pub(super) async fn usage_log(State(sim): State<Simulator>) -> Response {
    let mut out = String::new();
    for r in sim.requests() {
        if let Some(v) = r.usage_event() {
            out.push_str(&v.to_string());
            out.push('\n');
        }
    }
    ([("content-type", "application/x-ndjson")], out).into_response()
}
