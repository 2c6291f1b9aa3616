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

mod api;
mod login;
mod reads;
mod state;
mod writes;

pub use state::{Behaviour, RequestRecord, SimKey, SimState};

use super::model::Catalog;
use crate::clock::{Clock, SystemClock};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

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
            .route(super::LOGIN_PATH, post(login::login))
            .route("/__sim/requests", get(login::request_log))
            .route("/__sim/usage", get(login::usage_log))
            .route("/__sim/activity", post(writes::activity))
            .fallback(api::api)
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
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> (StatusCode, Value) {
    (
        status,
        json!({"code": code, "message": message.into(), "trace_id": random_id()}),
    )
}

fn bad_request(message: impl Into<String>) -> (StatusCode, Value) {
    error(StatusCode::BAD_REQUEST, "invalid_argument", message)
}
