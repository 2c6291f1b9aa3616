//! Evidence aggregated from usage events, per key: what the privilege rules need to judge
//! unused scopes, write access never used, idle keys, shared keys and wrong environments.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One evidence source (a file, standard input) and the span of time it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpan {
    pub name: String,
    /// First and last event time in the source: the source covers this window and no more.
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub events: u64,
}

/// Use of one route template by one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteUsage {
    /// `GET`, `POST`...
    pub method: String,
    /// The route template (`/api/v1/transfers/{id}`), or the raw path when no catalog route
    /// matched.
    pub template: String,
    /// The narrowest scope that allows the route; `None` for a route the catalog does not know.
    pub scope: Option<String>,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Calls answered 2xx.
    pub ok: u64,
}

/// Everything the evidence says about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsage {
    /// The `key` field of its events: an inventory name or a fingerprint.
    pub key: String,
    pub events: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Start of the evidence window for this key: the earliest first event among the sources
    /// that mention it. A window is judged only if this is at or before the window's start.
    pub coverage_start: DateTime<Utc>,
    /// Keyed by `METHOD template`.
    pub routes: BTreeMap<String, RouteUsage>,
    /// Scope id -> last time a call needing it was made.
    pub scopes_used: BTreeMap<String, DateTime<Utc>>,
    pub source_ips: BTreeMap<String, u64>,
    pub user_agents: BTreeMap<String, u64>,
    /// API host called (`api.airwallex.com`, `api-demo.airwallex.com`...) -> count.
    pub hosts: BTreeMap<String, u64>,
    pub statuses: BTreeMap<u16, u64>,
}

/// Evidence from every source, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub sources: Vec<SourceSpan>,
    /// By the events' `key` field.
    pub keys: BTreeMap<String, KeyUsage>,
    /// Lines rejected (bad JSON, missing or mistyped fields), each reported with file and line.
    pub rejected: u64,
    /// Messages for the rejected lines (`file:line: what is wrong`), capped.
    pub problems: Vec<String>,
}

impl Evidence {
    /// The usage of a key, looked up by its inventory name, then its fingerprint.
    pub fn for_key(&self, name: &str, fingerprint: Option<&str>) -> Option<&KeyUsage> {
        self.keys
            .get(name)
            .or_else(|| fingerprint.and_then(|f| self.keys.get(f)))
    }
}
