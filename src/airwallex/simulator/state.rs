//! What the simulator is seeded with (its keys, how each answers, its data and limits: the state
//! file) and what it records of each request.

use super::super::claims::ADMIN_PERMISSIONS;
use crate::secret::fingerprint;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

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
