//! A local Airwallex: it speaks the documented wire format (FACTS.md) over real HTTP on loopback,
//! for the tests and the demo. Keys are seeded from a state file that holds only each key's
//! fingerprint, never the key; every request is recorded (method, path, client ID, key
//! fingerprint, status) so tests can check exactly what awxguard sent, and where.
//!
//! Reads serve the seeded data with Airwallex's paging; writes (beneficiaries, transfers,
//! webhooks: `writes`) change it, so lists return what was created; `POST /__sim/activity` adds
//! objects "from elsewhere" (not through any client under test). Memory stays bounded under load:
//! the request log keeps the last `request_log_limit` requests (a counter keeps the total), expired
//! tokens are dropped, each collection holds at most `max_objects` items.

mod writes;

use super::claims::ADMIN_PERMISSIONS;
use super::model::{Access, Catalog};
use crate::clock::{Clock, SystemClock};
use crate::secret::fingerprint;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a seeded key answers a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// 201 with a token (403 when the caller's IP is outside `ip_whitelist`).
    #[default]
    Live,
    /// 401 `credentials_invalid`.
    Revoked,
    /// 403 on every call (a permission or whitelist refusal).
    Forbidden,
    /// 429 `too_many_requests` on every login.
    RateLimited,
    /// 500 on every login.
    Error,
}

/// A key the simulator knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimKey {
    pub client_id: String,
    /// `sha256:` + 16 hex digits of the API key: the simulator never holds the key itself.
    pub api_key_fingerprint: String,
    #[serde(default)]
    pub behaviour: Behaviour,
    /// The `permissions` claim of the tokens it issues.
    #[serde(default = "admin_permissions")]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    /// IPv4 CIDRs the key may log in from; empty means anywhere.
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
    /// Delay before answering a login, in milliseconds (a slow server).
    #[serde(default)]
    pub delay_ms: u64,
    /// Answer the first N logins with 500, then behave.
    #[serde(default)]
    pub fail_first: u32,
}

fn admin_permissions() -> Vec<String> {
    ADMIN_PERMISSIONS.iter().map(|s| s.to_string()).collect()
}

/// Everything the simulator serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimState {
    #[serde(default)]
    pub keys: Vec<SimKey>,
    /// Logins allowed per key per minute before 429 (Airwallex: about 100).
    #[serde(default = "default_login_limit")]
    pub login_limit_per_minute: u32,
    /// Seeded resources, served by the read endpoints: `transfers`, `beneficiaries`,
    /// `financial_transactions`, `balances` (current), `balance_history`, `webhooks`, `account`
    /// (one object). Items carry `id` and a time (`created_at`; `posted_at` for balance
    /// history) in Airwallex's format, `2021-10-26T06:38:13+0000`.
    #[serde(default)]
    pub data: HashMap<String, Vec<Value>>,
    /// API calls allowed per key per minute before 429; 0: no limit.
    #[serde(default)]
    pub api_limit_per_minute: u32,
    /// How many requests the request log keeps (the oldest are dropped; the total is counted).
    #[serde(default = "default_request_log_limit")]
    pub request_log_limit: usize,
    /// Most items a collection holds; a write beyond it answers 400 `resource_limit_exceeded`.
    #[serde(default = "default_max_objects")]
    pub max_objects: usize,
}

fn default_login_limit() -> u32 {
    100
}

fn default_request_log_limit() -> usize {
    10_000
}

fn default_max_objects() -> usize {
    10_000
}

impl Default for SimState {
    fn default() -> Self {
        SimState {
            keys: Vec::new(),
            login_limit_per_minute: default_login_limit(),
            data: HashMap::new(),
            api_limit_per_minute: 0,
            request_log_limit: default_request_log_limit(),
            max_objects: default_max_objects(),
        }
    }
}

impl SimState {
    /// Reads a state file (JSON).
    pub fn load(path: &std::path::Path) -> Result<SimState, String> {
        let text = crate::files::read_text_capped(path, crate::files::cap::STATE, "state files")
            .map_err(|e| format!("simulator state: {e}"))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: simulator state: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })
    }

    /// Adds a key that answers as `behaviour`, given the key in clear (only its fingerprint is
    /// kept).
    pub fn with_key(mut self, client_id: &str, api_key: &str, behaviour: Behaviour) -> SimState {
        self.keys.push(SimKey {
            client_id: client_id.to_string(),
            api_key_fingerprint: fingerprint(api_key.as_bytes()),
            behaviour,
            permissions: admin_permissions(),
            account_id: None,
            ip_whitelist: Vec::new(),
            delay_ms: 0,
            fail_first: 0,
        });
        self
    }
}

/// One request as the simulator saw it. Holds the key's fingerprint, never the key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub key_fingerprint: Option<String>,
    pub status: u16,
    pub source_ip: String,
    /// For API calls: the fingerprint of the key whose token was used (logins carry it in
    /// `key_fingerprint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_of: Option<String>,
    /// When the request arrived (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The `Host` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl RequestRecord {
    /// The request as a line of the usage-event contract (`key` is the key's fingerprint), or
    /// `None` when no key can be named (a call without a valid token).
    pub fn usage_event(&self) -> Option<Value> {
        let key = self.key_fingerprint.as_ref().or(self.token_of.as_ref())?;
        let mut v = json!({
            "ts": self.at.clone()?,
            "key": key,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "source_ip": self.source_ip,
        });
        if let Some(h) = &self.host {
            v["host"] = json!(h);
        }
        Some(v)
    }
}

struct Issued {
    key: usize,
    expires: i64,
}

#[derive(Default)]
struct Inner {
    state: SimState,
    /// The last `state.request_log_limit` requests.
    requests: VecDeque<RequestRecord>,
    /// Every request ever logged.
    requests_total: u64,
    tokens: HashMap<String, Issued>,
    /// Per key: login times (unix seconds) within the last minute, and failures served.
    logins: HashMap<usize, Vec<i64>>,
    failures: HashMap<usize, u32>,
    /// Per key: API call times within the last minute.
    api_calls: HashMap<usize, Vec<i64>>,
}

impl Inner {
    /// Logs a request, dropping the oldest beyond the limit. What is kept of a request is
    /// bounded: each text field at most `MAX_KEPT_FIELD` bytes.
    fn log(&mut self, mut r: RequestRecord) {
        self.requests_total += 1;
        for f in [&mut r.method, &mut r.path, &mut r.source_ip] {
            cut_kept(f);
        }
        for f in [&mut r.client_id, &mut r.host, &mut r.at]
            .into_iter()
            .flatten()
        {
            cut_kept(f);
        }
        if self.state.request_log_limit == 0 {
            return;
        }
        while self.requests.len() >= self.state.request_log_limit {
            self.requests.pop_front();
        }
        self.requests.push_back(r);
    }
}

/// The most the simulator keeps of one text field of a request (a path, a header).
pub const MAX_KEPT_FIELD: usize = 512;

fn cut_kept(s: &mut String) {
    if s.len() > MAX_KEPT_FIELD {
        let mut cut = MAX_KEPT_FIELD;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

/// A running simulator's shared state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Mutex<Inner>>,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
}

impl Simulator {
    pub fn new(state: SimState) -> Simulator {
        Simulator::with_clock(state, Arc::new(SystemClock))
    }

    /// A simulator whose times (token issue and expiry, `created_at` of new objects) come from
    /// `clock`, so a test can expire tokens or age objects without sleeping.
    pub fn with_clock(state: SimState, clock: Arc<dyn Clock>) -> Simulator {
        Simulator {
            inner: Arc::new(Mutex::new(Inner {
                state,
                ..Inner::default()
            })),
            catalog: Arc::new(Catalog::builtin()),
            clock,
        }
    }

    /// The requests the log still holds (the last `request_log_limit`), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.iter().cloned().collect()
    }

    /// How many requests the simulator has answered (logins and API calls), dropped from the log
    /// or not.
    pub fn requests_total(&self) -> u64 {
        self.lock().requests_total
    }

    /// The items of a collection (`beneficiaries`, `transfers`, `webhooks`, ...), as stored.
    pub fn items(&self, collection: &str) -> Vec<Value> {
        self.lock()
            .state
            .data
            .get(collection)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds objects "from elsewhere" (as if made in the web app or by a key not under test):
    /// `id` and `created_at` are filled in when missing. Returns the stored items.
    pub fn add_activity(&self, collection: &str, items: Vec<Value>) -> Result<Vec<Value>, String> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let limit = inner.state.max_objects;
        writes::add_items(&mut inner.state.data, collection, items, now, limit)
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    fn now_rfc3339(&self) -> Option<String> {
        Some(
            self.clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulator state poisoned")
    }

    /// The router: Airwallex's endpoints plus the control endpoints: `/__sim/requests` (the
    /// request log), `/__sim/usage` (the same log as usage events, JSON Lines, keys named by
    /// fingerprint) and `POST /__sim/activity` (objects added from elsewhere:
    /// `{"beneficiaries": [{...}], "transfers": [...], "webhooks": [...]}`; answers the stored
    /// items by collection).
    pub fn router(&self) -> Router {
        Router::new()
            .route(super::LOGIN_PATH, post(login))
            .route("/__sim/requests", get(request_log))
            .route("/__sim/usage", get(usage_log))
            .route("/__sim/activity", post(writes::activity))
            .fallback(api)
            .with_state(self.clone())
    }

    /// Serves on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }
}

fn random_id() -> String {
    let mut rng = rand::thread_rng();
    let b: [u8; 16] = rng.gen();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn ip_allowed(whitelist: &[String], ip: IpAddr) -> bool {
    whitelist.is_empty()
        || whitelist.iter().any(|c| {
            c.parse::<ipnet::IpNet>()
                .map(|n| n.contains(&ip))
                .or_else(|_| c.parse::<IpAddr>().map(|a| a == ip))
                .unwrap_or(false)
        })
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

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

async fn login(
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
                        .map(|t| super::format_timestamp(&t))
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
            path: super::LOGIN_PATH.into(),
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

async fn request_log(State(sim): State<Simulator>) -> Json<Vec<RequestRecord>> {
    Json(sim.requests())
}

async fn usage_log(State(sim): State<Simulator>) -> Response {
    let mut out = String::new();
    for r in sim.requests() {
        if let Some(v) = r.usage_event() {
            out.push_str(&v.to_string());
            out.push('\n');
        }
    }
    ([("content-type", "application/x-ndjson")], out).into_response()
}

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

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> (StatusCode, Value) {
    (
        status,
        json!({"code": code, "message": message.into(), "trace_id": random_id()}),
    )
}

fn bad_request(message: impl Into<String>) -> (StatusCode, Value) {
    error(StatusCode::BAD_REQUEST, "invalid_argument", message)
}

/// The seeded list behind a route template, and the time field its date filters apply to.
fn collection(template: &str) -> Option<(&'static str, &'static str)> {
    Some(match template {
        "GET /api/v1/transfers" | "GET /api/v1/transfers/{id}" => ("transfers", "created_at"),
        "GET /api/v1/beneficiaries" | "GET /api/v1/beneficiaries/{beneficiary_id}" => {
            ("beneficiaries", "created_at")
        }
        "GET /api/v1/financial_transactions" | "GET /api/v1/financial_transactions/{id}" => {
            ("financial_transactions", "created_at")
        }
        "GET /api/v1/balances/current" => ("balances", "created_at"),
        "GET /api/v1/balances/history" => ("balance_history", "posted_at"),
        "GET /api/v1/webhooks" | "GET /api/v1/webhooks/{id}" => ("webhooks", "created_at"),
        "GET /api/v1/account" => ("account", "created_at"),
        _ => return None,
    })
}

fn query_time(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>, (StatusCode, Value)> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => super::parse_timestamp(v)
            .or_else(|| {
                // a bare date (beneficiaries' from_date / to_date)
                chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc().fixed_offset())
            })
            .map(Some)
            .ok_or_else(|| {
                bad_request(format!(
                    "{name} must be a time like 2021-10-26T06:38:13+0000"
                ))
            }),
    }
}

fn query_num(
    q: &HashMap<String, String>,
    name: &str,
    default: usize,
) -> Result<usize, (StatusCode, Value)> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| bad_request(format!("{name} must be a non-negative integer"))),
    }
}

/// Items whose `field` time lies in `[from, to]`, newest first.
fn filtered(
    items: &[Value],
    field: &str,
    from: Option<chrono::DateTime<chrono::FixedOffset>>,
    to: Option<chrono::DateTime<chrono::FixedOffset>>,
) -> Vec<Value> {
    let time = |v: &Value| {
        v.get(field)
            .and_then(|t| t.as_str())
            .and_then(super::parse_timestamp)
    };
    let mut out: Vec<Value> = items
        .iter()
        .filter(|v| {
            let t = time(v);
            from.is_none_or(|f| t.is_some_and(|t| t >= f))
                && to.is_none_or(|e| t.is_some_and(|t| t <= e))
        })
        .cloned()
        .collect();
    out.sort_by_key(|v| std::cmp::Reverse(time(v)));
    out
}

fn cursor(offset: usize) -> String {
    b64(format!("offset:{offset}").as_bytes())
}

fn parse_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// A read endpoint over the seeded data, with Airwallex's paging and filters.
fn serve_read(
    template: &str,
    path: &str,
    q: &HashMap<String, String>,
    data: &HashMap<String, Vec<Value>>,
) -> (StatusCode, Value) {
    let Some((data_key, time_field)) = collection(template) else {
        return error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            format!("{template} is not simulated"),
        );
    };
    let items = data.get(data_key).map(Vec::as_slice).unwrap_or(&[]);
    if data_key == "account" {
        return (
            StatusCode::OK,
            items.first().cloned().unwrap_or_else(|| json!({})),
        );
    }
    if template.ends_with("/{id}") || template.ends_with("/{beneficiary_id}") {
        let id = path.rsplit('/').next().unwrap_or("");
        return match items
            .iter()
            .find(|v| v.get("id").and_then(|x| x.as_str()) == Some(id))
        {
            Some(v) => (StatusCode::OK, v.clone()),
            None => error(
                StatusCode::NOT_FOUND,
                "resource_not_found",
                format!("no {data_key} item {id}"),
            ),
        };
    }
    let (from_name, to_name) = match data_key {
        "beneficiaries" => ("from_date", "to_date"),
        "balance_history" => ("from_post_at", "to_post_at"),
        _ => ("from_created_at", "to_created_at"),
    };
    let (from, to) = match (query_time(q, from_name), query_time(q, to_name)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if data_key == "balance_history" {
        // at most 7 days a query (FACTS.md)
        let span = match (from, to) {
            (Some(f), Some(t)) => t - f,
            (Some(f), None) => chrono::Utc::now().fixed_offset() - f,
            _ => chrono::Duration::zero(),
        };
        if span > chrono::Duration::days(7) {
            return bad_request(
                "the time range between from_post_at and to_post_at must not exceed 7 days",
            );
        }
    }
    let all = filtered(items, time_field, from, to);
    if data_key == "transfers" {
        // cursor paging: `page` is the cursor of page_after / page_before
        let size = match query_num(q, "page_size", 20) {
            Ok(n) if (1..=200).contains(&n) => n,
            Ok(_) => return bad_request("page_size must be between 1 and 200"),
            Err(e) => return e,
        };
        let offset = match q.get("page") {
            None => 0,
            Some(c) => match parse_cursor(c) {
                Some(o) => o,
                None => return bad_request("page is not a cursor this API returned"),
            },
        };
        let page: Vec<Value> = all.iter().skip(offset).take(size).cloned().collect();
        let has_more = offset + size < all.len();
        let mut body = json!({"items": page, "has_more": has_more});
        if has_more {
            body["page_after"] = json!(cursor(offset + size));
        }
        if offset > 0 {
            body["page_before"] = json!(cursor(offset.saturating_sub(size)));
        }
        return (StatusCode::OK, body);
    }
    // page_num / page_size paging (beneficiaries: page_size at least 10)
    let min = if data_key == "beneficiaries" { 10 } else { 1 };
    let size = match query_num(q, "page_size", 20) {
        Ok(n) if n >= min && n <= 200 => n,
        Ok(_) => return bad_request(format!("page_size must be between {min} and 200")),
        Err(e) => return e,
    };
    let num = match query_num(q, "page_num", 0) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let page: Vec<Value> = all.iter().skip(num * size).take(size).cloned().collect();
    let has_more = (num + 1) * size < all.len();
    (StatusCode::OK, json!({"items": page, "has_more": has_more}))
}

/// Every other route: bearer token, rate limit, permission check by token claims (scope from
/// the catalog), then the read endpoints over the data and the write endpoints that change it
/// (`writes`). Other writes the key may make answer 404 `not simulated`; routes the catalog does
/// not know answer 404.
async fn api(
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
