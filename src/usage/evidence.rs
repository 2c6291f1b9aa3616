//! Evidence aggregated from usage events, per key: what the privilege rules need to judge
//! unused scopes, write access never used, idle keys, shared keys and wrong environments.

use super::screen::Screened;
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
    /// `account_id` of the events (`x-on-behalf-of` / `x-login-as`) -> count.
    #[serde(default)]
    pub account_ids: BTreeMap<String, u64>,
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
    /// Distinct events aggregated.
    #[serde(default)]
    pub events: u64,
    /// Lines dropped because the same event was already read (from any source).
    #[serde(default)]
    pub duplicates: u64,
    /// Calls that are not evidence of need (outside the key's IP whitelist, needing a scope it
    /// does not declare, inside an open anomaly), by the events' `key` field: kept out of
    /// `keys`, reported by the audit, never learnt from (`usage::screen`).
    #[serde(default)]
    pub screened: BTreeMap<String, Screened>,
    /// The inputs read, as input ids (`usage:/var/log/awx`): what a finding resting on this
    /// evidence is observed by.
    #[serde(default)]
    pub inputs: Vec<String>,
}

impl Evidence {
    /// What was screened out of a key's evidence, under its name and fingerprint merged.
    pub fn screened_of(&self, name: &str, fingerprint: Option<&str>) -> Option<Screened> {
        let by_name = self.screened.get(name);
        let by_fp = fingerprint
            .filter(|f| *f != name)
            .and_then(|f| self.screened.get(f));
        match (by_name, by_fp) {
            (None, None) => None,
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (Some(a), Some(b)) => {
                let mut m = a.clone();
                m.absorb(b);
                Some(m)
            }
        }
    }

    /// The usage of a key, looked up by its inventory name, then its fingerprint.
    pub fn for_key(&self, name: &str, fingerprint: Option<&str>) -> Option<&KeyUsage> {
        self.keys
            .get(name)
            .or_else(|| fingerprint.and_then(|f| self.keys.get(f)))
    }

    /// The usage of a key, with the events filed under its name and those filed under its
    /// fingerprint merged when both appear.
    pub fn usage_of(&self, name: &str, fingerprint: Option<&str>) -> Option<KeyUsage> {
        let by_name = self.keys.get(name);
        let by_fp = fingerprint
            .filter(|f| *f != name)
            .and_then(|f| self.keys.get(f));
        match (by_name, by_fp) {
            (None, None) => None,
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (Some(a), Some(b)) => Some(a.merged(b)),
        }
    }
}

impl KeyUsage {
    /// The union of two usages of the same key (filed under two names).
    pub fn merged(&self, other: &KeyUsage) -> KeyUsage {
        let mut u = self.clone();
        u.events += other.events;
        u.first_seen = u.first_seen.min(other.first_seen);
        u.last_seen = u.last_seen.max(other.last_seen);
        u.coverage_start = u.coverage_start.min(other.coverage_start);
        for (k, r) in &other.routes {
            match u.routes.get_mut(k) {
                Some(e) => {
                    e.count += r.count;
                    e.ok += r.ok;
                    e.first_seen = e.first_seen.min(r.first_seen);
                    e.last_seen = e.last_seen.max(r.last_seen);
                }
                None => {
                    u.routes.insert(k.clone(), r.clone());
                }
            }
        }
        for (s, t) in &other.scopes_used {
            let e = u.scopes_used.entry(s.clone()).or_insert(*t);
            *e = (*e).max(*t);
        }
        for (into, from) in [
            (&mut u.source_ips, &other.source_ips),
            (&mut u.user_agents, &other.user_agents),
            (&mut u.hosts, &other.hosts),
            (&mut u.account_ids, &other.account_ids),
        ] {
            for (k, n) in from {
                *into.entry(k.clone()).or_insert(0) += n;
            }
        }
        for (s, n) in &other.statuses {
            *u.statuses.entry(*s).or_insert(0) += n;
        }
        u
    }
}
