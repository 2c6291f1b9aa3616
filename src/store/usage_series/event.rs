//! A call as the series sees it (`Event`, `EventRef`), its route classified by the scope catalog,
//! and the names the novelty detectors group values by (networks, user-agent families).

use super::Access;
use crate::airwallex::{Access as ScopeAccess, Catalog};
use std::net::IpAddr;

/// A route template, its scope and what it does, for `method` and `path`. Routes the catalog
/// does not know get their IDs grouped (`/api/v1/things/{id}`); a non-GET unknown route counts
/// as a write.
pub fn classify(catalog: &Catalog, method: &str, path: &str) -> (String, Option<String>, Access) {
    let path = path.split(['?', '#']).next().unwrap_or("");
    match catalog.route_ref(method, path) {
        Some(r) => {
            let access = match r.scope.and_then(|s| catalog.scope(s)) {
                Some(s) if s.access == ScopeAccess::Write && s.risk == "high" => Access::Sensitive,
                Some(s) if s.access == ScopeAccess::Write => Access::Write,
                Some(_) => Access::Read,
                None => Access::Read, // the login call
            };
            (r.template.to_string(), r.scope.map(str::to_string), access)
        }
        None => {
            let access = if matches!(method, "GET" | "HEAD" | "OPTIONS") {
                Access::Read
            } else {
                Access::Write
            };
            (format!("{method} {}", unknown_template(path)), None, access)
        }
    }
}

/// Groups IDs of a path the catalog does not know: a segment with a digit and at least six
/// characters, or a UUID, becomes `{id}`.
pub fn unknown_template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        let id_like = seg.len() >= 6 && seg.bytes().any(|b| b.is_ascii_digit());
        if id_like {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// One usage event as the detectors see it: time in Unix seconds, route already templated.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub ts: i64,
    pub key: &'a str,
    /// `METHOD /template`.
    pub route: &'a str,
    pub scope: Option<&'a str>,
    pub access: Access,
    pub status: u16,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    /// Recorded by awxguard's proxy: `source_ip` is the client as the proxy saw it.
    pub via_proxy: bool,
    /// API host called.
    pub host: Option<&'a str>,
    /// `x-on-behalf-of` / `x-login-as` account.
    pub account: Option<&'a str>,
}

/// The owned form of [`EventRef`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub ts: i64,
    pub key: String,
    pub route: String,
    pub scope: Option<String>,
    pub access: Access,
    pub status: u16,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub via_proxy: bool,
    pub host: Option<String>,
    pub account: Option<String>,
}

impl Event {
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            ts: self.ts,
            key: &self.key,
            route: &self.route,
            scope: self.scope.as_deref(),
            access: self.access,
            status: self.status,
            source_ip: self.source_ip,
            user_agent: self.user_agent.as_deref(),
            via_proxy: self.via_proxy,
            host: self.host.as_deref(),
            account: self.account.as_deref(),
        }
    }
}

/// The network an address belongs to for the novelty detectors: `/v4_prefix` for IPv4 (24 by
/// default), `/v6_prefix` for IPv6 (48), written as a CIDR.
pub fn network_of(ip: &str, v4_prefix: u8, v6_prefix: u8) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let p = v4_prefix.min(32);
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            let n = std::net::Ipv4Addr::from(u32::from(a) & mask);
            format!("{n}/{p}")
        }
        Ok(IpAddr::V6(a)) => {
            let p = v6_prefix.min(128);
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            let n = std::net::Ipv6Addr::from(u128::from(a) & mask);
            format!("{n}/{p}")
        }
        Err(_) => ip.to_string(),
    }
}

/// A user agent without its version numbers (`python-requests/2.31.0` -> `python-requests`), so
/// an upgrade is not a new client.
pub fn user_agent_family(ua: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for tok in ua.split_whitespace() {
        let name = tok.split('/').next().unwrap_or(tok);
        let versionish = name
            .trim_matches(|c| c == '(' || c == ')' || c == ';' || c == ',')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_' || c == '-' || c == 'v');
        if name.is_empty() || versionish {
            continue;
        }
        out.push(name);
    }
    if out.is_empty() {
        ua.trim().to_string()
    } else {
        out.join(" ")
    }
}
