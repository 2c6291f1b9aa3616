//! Every route but login and the control endpoints: bearer token, API rate limit, IP
//! whitelist, permission check by the token's claims, then a read (`reads`) or a write
//! (`writes`).

use super::super::model::Access;
use super::reads::serve_read;
use super::{error, header, ip_allowed, writes, Behaviour, RequestRecord, Simulator};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Whether a token's permissions allow a call needing `scope` (of `access`). The simulator's
/// permission language is a GUESS: Airwallex documents only the admin strings (`r:awx:*:*`,
/// `w:awx:*:*`, FACTS.md); for scoped keys the simulator accepts catalog scope ids
/// (`transfer:read`), and a write scope also grants its resource's reads, as most Airwallex
/// write scopes list them. Real tokens of scoped keys may carry other strings.
fn permits(permissions: &[String], access: Access, scope: &str) -> bool {
    let admin = match access {
        Access::Read => "r:awx:*:*",
        Access::Write => "w:awx:*:*",
    };
    permissions.iter().any(|p| {
        p == admin
            || p == scope
            || (scope.ends_with(":read") && p.strip_suffix(":write") == scope.strip_suffix(":read"))
    })
}

/// Every other route: bearer token, rate limit, permission check by token claims (scope from
/// the catalog), then the read endpoints over the data and the write endpoints that change it
/// (`writes`). Other writes the key may make answer 404 `not simulated`; routes the catalog does
/// not know answer 404.
pub(super) async fn api(
    State(sim): State<Simulator>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_string();
    let token = header(&headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let now = sim.now();
    let at = sim.now_rfc3339();
    let mut inner = sim.lock();
    let issued = token
        .as_ref()
        .and_then(|t| inner.tokens.get(t))
        .filter(|i| i.expires > now)
        .map(|i| i.key);
    let mut token_key = None;
    let (status, body) = match issued {
        None => (
            StatusCode::UNAUTHORIZED,
            json!({"code": "unauthorized", "message": "Access denied, authentication failed"}),
        ),
        Some(k) => {
            let key = inner.state.keys[k].clone();
            token_key = Some(key.api_key_fingerprint.clone());
            let limit = inner.state.api_limit_per_minute;
            let over = limit > 0 && {
                let recent = inner.api_calls.entry(k).or_default();
                recent.retain(|t| now - t < 60);
                recent.push(now);
                recent.len() as u32 > limit
            };
            let matched = sim.catalog.route(method.as_str(), &path);
            if over {
                error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "Too many requests",
                )
            } else if key.behaviour == Behaviour::Forbidden
                || !ip_allowed(&key.ip_whitelist, peer.ip())
            {
                error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "Access denied: request IP is not in the whitelist of this API key",
                )
            } else {
                match matched {
                    None => error(
                        StatusCode::NOT_FOUND,
                        "resource_not_found",
                        format!("No route {method} {path}"),
                    ),
                    Some(r) => {
                        let scope = r.scope.clone().unwrap_or_default();
                        let access = sim
                            .catalog
                            .scope(&scope)
                            .map(|s| s.access)
                            .unwrap_or(Access::Write);
                        if !permits(&key.permissions, access, &scope) {
                            error(
                                StatusCode::FORBIDDEN,
                                "forbidden",
                                format!("This API key has no permission for {scope}"),
                            )
                        } else if method == Method::GET {
                            serve_read(&r.template, &path, &q, &inner.state.data)
                        } else {
                            let limit = inner.state.max_objects;
                            writes::serve_write(
                                &r.template,
                                &path,
                                &body,
                                &mut inner.state.data,
                                sim.clock.now(),
                                limit,
                            )
                        }
                    }
                }
            }
        }
    };
    inner.log(RequestRecord {
        method: method.to_string(),
        path,
        client_id: None,
        key_fingerprint: None,
        status: status.as_u16(),
        source_ip: peer.ip().to_string(),
        token_of: token_key,
        at,
        host: header(&headers, "host").map(str::to_string),
    });
    (status, Json(body)).into_response()
}
