//! A local Airwallex: it speaks the documented wire format (FACTS.md) over real HTTP on loopback,
//! for the tests and the demo. Keys are seeded from a state file that holds only each key's
//! fingerprint, never the key; every request is recorded (method, path, client ID, key
//! fingerprint, status) so tests can check exactly what awxguard sent, and where.

use super::claims::ADMIN_PERMISSIONS;
use crate::secret::fingerprint;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
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
    /// `financial_transactions`, `webhooks`, `balances`, ...
    #[serde(default)]
    pub data: HashMap<String, Vec<Value>>,
}

fn default_login_limit() -> u32 {
    100
}

impl Default for SimState {
    fn default() -> Self {
        SimState {
            keys: Vec::new(),
            login_limit_per_minute: default_login_limit(),
            data: HashMap::new(),
        }
    }
}

impl SimState {
    /// Reads a state file (JSON).
    pub fn load(path: &std::path::Path) -> Result<SimState, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read simulator state: {e}", path.display()))?;
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
}

struct Issued {
    key: usize,
    expires: i64,
}

#[derive(Default)]
struct Inner {
    state: SimState,
    requests: Vec<RequestRecord>,
    tokens: HashMap<String, Issued>,
    /// Per key: login times (unix seconds) within the last minute, and failures served.
    logins: HashMap<usize, Vec<i64>>,
    failures: HashMap<usize, u32>,
}

/// A running simulator's shared state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Mutex<Inner>>,
}

impl Simulator {
    pub fn new(state: SimState) -> Simulator {
        Simulator {
            inner: Arc::new(Mutex::new(Inner {
                state,
                ..Inner::default()
            })),
        }
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulator state poisoned")
    }

    /// The router: Airwallex's endpoints plus `/__sim/requests` (the request log).
    pub fn router(&self) -> Router {
        Router::new()
            .route(super::LOGIN_PATH, post(login))
            .route("/__sim/requests", get(request_log))
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

    /// Starts on a loopback port in a background thread with its own runtime; for tests and the
    /// demo.
    pub fn spawn(state: SimState) -> std::io::Result<SimHandle> {
        let sim = Simulator::new(state);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let served = sim.clone();
        std::thread::Builder::new()
            .name("airwallex-simulator".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("simulator runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(std_listener)
                        .expect("simulator listener");
                    let _ = served.serve(listener).await;
                });
            })?;
        Ok(SimHandle { addr, sim })
    }
}

/// A simulator running in the background.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Simulator,
}

impl SimHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.sim.requests()
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
    let now = chrono::Utc::now().timestamp();
    let (response, delay) = {
        let mut inner = sim.lock();
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
        inner.requests.push(RequestRecord {
            method: "POST".into(),
            path: super::LOGIN_PATH.into(),
            client_id: client_id.clone(),
            key_fingerprint: key_fp.clone(),
            status: status.as_u16(),
            source_ip: peer.ip().to_string(),
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

/// The permission a route needs, in the simulator's permission language: admin strings
/// (`r:awx:*:*`, `w:awx:*:*`) or scope ids from the catalog (`transfer:read`).
fn required_scope(method: &Method, path: &str) -> Option<(&'static str, &'static str)> {
    let resources: &[(&str, &str)] = &[
        ("/api/v1/transfers", "transfer"),
        ("/api/v1/beneficiaries", "beneficiary"),
        ("/api/v1/financial_transactions", "financial_transaction"),
        ("/api/v1/balances", "balance"),
        ("/api/v1/webhooks", "webhook"),
        ("/api/v1/account", "account_details"),
    ];
    let (prefix, resource) = resources.iter().find(|(p, _)| path.starts_with(p))?;
    let data_key = match *resource {
        "transfer" => "transfers",
        "beneficiary" => "beneficiaries",
        "financial_transaction" => "financial_transactions",
        "balance" => "balances",
        "webhook" => "webhooks",
        _ => "account",
    };
    let _ = prefix;
    let access = if method == Method::GET {
        "read"
    } else {
        "write"
    };
    Some((
        data_key,
        match (*resource, access) {
            ("transfer", "read") => "transfer:read",
            ("transfer", _) => "transfer:write",
            ("beneficiary", "read") => "beneficiary:read",
            ("beneficiary", _) => "beneficiary:write",
            ("financial_transaction", _) => "financial_transaction:read",
            ("balance", _) => "balance:read",
            ("webhook", "read") => "webhook:read",
            ("webhook", _) => "webhook:write",
            _ => "account_details:read",
        },
    ))
}

fn permits(permissions: &[String], method: &Method, scope: &str) -> bool {
    let admin = if method == Method::GET {
        "r:awx:*:*"
    } else {
        "w:awx:*:*"
    };
    permissions.iter().any(|p| {
        p == admin
            || p == scope
            // a write scope also grants its resource's reads, as most Airwallex write scopes do
            || (scope.ends_with(":read")
                && p.strip_suffix(":write") == scope.strip_suffix(":read"))
    })
}

/// Every other route: bearer token check, permission check, then the seeded data.
async fn api(
    State(sim): State<Simulator>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_string();
    let token = header(&headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let now = chrono::Utc::now().timestamp();
    let mut inner = sim.lock();
    let issued = token
        .as_ref()
        .and_then(|t| inner.tokens.get(t))
        .filter(|i| i.expires > now)
        .map(|i| i.key);
    let (status, body) = match issued {
        None => (
            StatusCode::UNAUTHORIZED,
            json!({"code": "unauthorized", "message": "Access denied, authentication failed"}),
        ),
        Some(k) => {
            let key = inner.state.keys[k].clone();
            match required_scope(&method, &path) {
                None => (
                    StatusCode::NOT_FOUND,
                    json!({"code": "not_found", "message": format!("No route {method} {path}")}),
                ),
                Some((_, scope)) if !permits(&key.permissions, &method, scope) => (
                    StatusCode::FORBIDDEN,
                    json!({"code": "forbidden", "message": format!("This API key has no permission for {scope}")}),
                ),
                Some((data_key, _)) => {
                    let items = inner.state.data.get(data_key).cloned().unwrap_or_default();
                    if data_key == "account" {
                        (
                            StatusCode::OK,
                            items.into_iter().next().unwrap_or_else(|| json!({})),
                        )
                    } else {
                        (StatusCode::OK, json!({"items": items, "has_more": false}))
                    }
                }
            }
        }
    };
    inner.requests.push(RequestRecord {
        method: method.to_string(),
        path,
        client_id: None,
        key_fingerprint: None,
        status: status.as_u16(),
        source_ip: peer.ip().to_string(),
    });
    (status, Json(body)).into_response()
}
