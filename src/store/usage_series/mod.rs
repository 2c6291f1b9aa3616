//! The usage evidence model the store keeps and the detectors read: per key, hourly buckets (calls, writes, refusals, with 5-minute
//! sub-buckets so short bursts stay visible) and the first appearances of every network, user
//! agent, route and scope. Every field is a sum, a minimum or a maximum over events, so the
//! series is the same whatever order the events arrive in, and the store can keep exactly these
//! aggregates as its long-lived rollups.

use crate::airwallex::{Access as ScopeAccess, Catalog};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Seconds in an hour bucket.
pub const HOUR: i64 = 3600;
/// Seconds in a sub-bucket.
pub const FINE: i64 = 300;
/// Sub-buckets in an hour.
pub const SUBS: usize = (HOUR / FINE) as usize;
/// Hours after a value's first appearance whose activity is kept (the novelty detectors judge a
/// value on its first day).
pub const EARLY_HOURS: i64 = 24;
/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// What a call does, from the scope catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    Read,
    Write,
    /// A write the catalog marks high risk: moves money, adds a payee, changes a webhook or a
    /// card.
    Sensitive,
}

impl Access {
    pub fn writes(self) -> bool {
        self != Access::Read
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Sensitive => "sensitive write",
        }
    }
}

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

/// Calls of one key in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBucket {
    pub calls: u32,
    /// Calls per 5-minute sub-bucket.
    pub sub: [u32; SUBS],
    /// Calls to write routes (sensitive ones included).
    pub writes: u32,
    /// Calls to sensitive write routes.
    pub sensitive: u32,
    /// Answers 401 and 403.
    pub denied: u32,
    /// Answers 429.
    pub throttled: u32,
    /// Second of the hour of the first and last call (0..3599).
    pub first: u16,
    pub last: u16,
    /// Of the first and last refused or throttled call.
    pub err_first: u16,
    pub err_last: u16,
    /// Of the first and last write.
    pub write_first: u16,
    pub write_last: u16,
}

impl HourBucket {
    /// Adds `n` calls at second `sec` of the hour.
    pub fn add(&mut self, sec: u16, n: u32, access: Access, status: u16) {
        let first_call = self.calls == 0;
        self.calls += n;
        self.sub[(sec as i64 / FINE) as usize] += n;
        span(&mut self.first, &mut self.last, first_call, sec);
        if access.writes() {
            span(
                &mut self.write_first,
                &mut self.write_last,
                self.writes == 0,
                sec,
            );
            self.writes += n;
            if access == Access::Sensitive {
                self.sensitive += n;
            }
        }
        if matches!(status, 401 | 403 | 429) {
            let empty = self.errors() == 0;
            span(&mut self.err_first, &mut self.err_last, empty, sec);
            if status == 429 {
                self.throttled += n;
            } else {
                self.denied += n;
            }
        }
    }

    /// Refused (401, 403) and throttled (429) calls.
    pub fn errors(&self) -> u32 {
        self.denied + self.throttled
    }

    /// The largest count of a sub-bucket.
    pub fn peak(&self) -> u32 {
        self.sub.iter().copied().max().unwrap_or(0)
    }

    /// Adds another bucket of the same hour.
    pub fn merge(&mut self, o: &HourBucket) {
        if o.calls == 0 {
            return;
        }
        let was_empty = self.calls == 0;
        if was_empty {
            *self = *o;
            return;
        }
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        if o.writes > 0 {
            if self.writes == 0 {
                self.write_first = o.write_first;
                self.write_last = o.write_last;
            } else {
                self.write_first = self.write_first.min(o.write_first);
                self.write_last = self.write_last.max(o.write_last);
            }
        }
        if o.errors() > 0 {
            if self.errors() == 0 {
                self.err_first = o.err_first;
                self.err_last = o.err_last;
            } else {
                self.err_first = self.err_first.min(o.err_first);
                self.err_last = self.err_last.max(o.err_last);
            }
        }
        self.calls += o.calls;
        for (a, b) in self.sub.iter_mut().zip(o.sub) {
            *a += b;
        }
        self.writes += o.writes;
        self.sensitive += o.sensitive;
        self.denied += o.denied;
        self.throttled += o.throttled;
    }
}

fn span(first: &mut u16, last: &mut u16, empty: bool, sec: u16) {
    if empty {
        *first = sec;
        *last = sec;
    } else {
        *first = (*first).min(sec);
        *last = (*last).max(sec);
    }
}

/// A status code as its three digits (the reader only accepts 100 to 599).
fn status_digits(s: u16) -> [u8; 3] {
    let s = s.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

/// An address written without allocating.
struct IpText {
    buf: [u8; 48],
}

impl Default for IpText {
    fn default() -> Self {
        IpText { buf: [0; 48] }
    }
}

impl IpText {
    fn format(&mut self, ip: IpAddr) -> &str {
        use std::io::Write;
        let mut cur = std::io::Cursor::new(&mut self.buf[..]);
        write!(cur, "{ip}").expect("an address fits in 48 bytes");
        let n = cur.position() as usize;
        std::str::from_utf8(&self.buf[..n]).expect("ASCII")
    }
}

/// Kinds of values whose first appearance the novelty detectors judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttrKind {
    /// A source address as Airwallex saw it (events without `via: "proxy"`).
    SourceIp,
    /// A client address as awxguard's proxy saw it.
    ProxyIp,
    /// The `user_agent` as sent.
    UserAgent,
    /// `METHOD /template`.
    Route,
    /// The scope a call needed.
    Scope,
    /// The API host called (lower case).
    Host,
    /// The account acted for (`x-on-behalf-of` / `x-login-as`).
    Account,
    /// The HTTP status answered.
    Status,
}

/// Activity of one value in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrHour {
    pub calls: u32,
    pub writes: u32,
    pub sensitive: u32,
    /// Answered 2xx.
    pub ok: u32,
    /// First and last second of the hour.
    pub first: u16,
    pub last: u16,
}

impl AttrHour {
    fn add(&mut self, sec: u16, n: u32, access: Access, ok: bool) {
        span(&mut self.first, &mut self.last, self.calls == 0, sec);
        self.calls += n;
        if access.writes() {
            self.writes += n;
        }
        if access == Access::Sensitive {
            self.sensitive += n;
        }
        if ok {
            self.ok += n;
        }
    }

    fn merge(&mut self, o: &AttrHour) {
        if o.calls == 0 {
            return;
        }
        span(&mut self.first, &mut self.last, self.calls == 0, o.first);
        span(&mut self.first, &mut self.last, false, o.last);
        self.calls += o.calls;
        self.writes += o.writes;
        self.sensitive += o.sensitive;
        self.ok += o.ok;
    }
}

/// Everything about one value (a network, a user agent...) of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrStats {
    /// First and last call, Unix seconds.
    pub first: i64,
    pub last: i64,
    pub calls: u64,
    pub writes: u64,
    pub sensitive: u64,
    pub ok: u64,
    /// Most severe route class seen with this value.
    pub access: Option<Access>,
    /// For a route: the scope it needs (`None` for routes the catalog does not know).
    #[serde(default)]
    pub scope: Option<String>,
    /// The last call not refused (401, 403): a refused call does not show the key needs a scope.
    #[serde(default)]
    pub accepted_last: Option<i64>,
    /// Activity by hour during the first [`EARLY_HOURS`] hours after `first`.
    pub early: BTreeMap<i64, AttrHour>,
}

impl AttrStats {
    fn add(&mut self, ts: i64, n: u32, access: Access, status: u16) {
        let ok = (200..300).contains(&status);
        if status != 401 && status != 403 {
            self.accepted_last = Some(self.accepted_last.map_or(ts, |t| t.max(ts)));
        }
        let hour = ts.div_euclid(HOUR);
        let sec = ts.rem_euclid(HOUR) as u16;
        if self.calls == 0 {
            self.first = ts;
            self.last = ts;
        } else if ts < self.first {
            self.first = ts;
            let keep_until = hour + EARLY_HOURS;
            self.early.retain(|h, _| *h < keep_until);
        }
        self.last = self.last.max(ts);
        self.calls += n as u64;
        if access.writes() {
            self.writes += n as u64;
        }
        if access == Access::Sensitive {
            self.sensitive += n as u64;
        }
        if ok {
            self.ok += n as u64;
        }
        self.access = self.access.max(Some(access));
        if hour < self.first.div_euclid(HOUR) + EARLY_HOURS {
            self.early.entry(hour).or_default().add(sec, n, access, ok);
        }
    }

    /// Adds the same value's stats from elsewhere (another source, a value grouped with it).
    pub fn merge(&mut self, o: &AttrStats) {
        if o.calls == 0 {
            return;
        }
        if self.calls == 0 {
            *self = o.clone();
            return;
        }
        let first = self.first.min(o.first);
        self.first = first;
        self.last = self.last.max(o.last);
        self.calls += o.calls;
        self.writes += o.writes;
        self.sensitive += o.sensitive;
        self.ok += o.ok;
        self.access = self.access.max(o.access);
        if self.scope.is_none() {
            self.scope.clone_from(&o.scope);
        }
        self.accepted_last = match (self.accepted_last, o.accepted_last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let keep_until = first.div_euclid(HOUR) + EARLY_HOURS;
        for (h, a) in &o.early {
            self.early.entry(*h).or_default().merge(a);
        }
        self.early.retain(|h, _| *h < keep_until);
    }
}

/// One key's series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySeries {
    /// The events' `key`: an inventory name or a fingerprint.
    pub key: String,
    pub events: u64,
    /// First and last call, Unix seconds.
    pub first: i64,
    pub last: i64,
    /// By hour index (Unix seconds / 3600); hours without calls are absent.
    pub hours: BTreeMap<i64, HourBucket>,
    /// By kind, then value.
    pub attrs: BTreeMap<AttrKind, BTreeMap<String, AttrStats>>,
}

impl KeySeries {
    pub fn new(key: &str) -> KeySeries {
        KeySeries {
            key: key.to_string(),
            ..KeySeries::default()
        }
    }

    /// Adds `n` identical calls.
    pub fn add(&mut self, e: &EventRef<'_>, n: u32) {
        if n == 0 {
            return;
        }
        if self.events == 0 {
            self.first = e.ts;
            self.last = e.ts;
        }
        self.first = self.first.min(e.ts);
        self.last = self.last.max(e.ts);
        self.events += n as u64;
        let hour = e.ts.div_euclid(HOUR);
        let sec = e.ts.rem_euclid(HOUR) as u16;
        self.hours
            .entry(hour)
            .or_default()
            .add(sec, n, e.access, e.status);
        let mut attr = |kind: AttrKind, value: &str| {
            let m = self.attrs.entry(kind).or_default();
            match m.get_mut(value) {
                Some(a) => a.add(e.ts, n, e.access, e.status),
                None => {
                    let mut a = AttrStats::default();
                    a.add(e.ts, n, e.access, e.status);
                    m.insert(value.to_string(), a);
                }
            }
        };
        if let Some(h) = e.host {
            if h.bytes().any(|b| b.is_ascii_uppercase()) {
                attr(AttrKind::Host, &h.to_ascii_lowercase());
            } else {
                attr(AttrKind::Host, h);
            }
        }
        if let Some(a) = e.account {
            attr(AttrKind::Account, a);
        }
        let status = status_digits(e.status);
        attr(
            AttrKind::Status,
            std::str::from_utf8(&status).unwrap_or("000"),
        );
        if let Some(ip) = e.source_ip {
            let kind = if e.via_proxy {
                AttrKind::ProxyIp
            } else {
                AttrKind::SourceIp
            };
            let mut buf = IpText::default();
            attr(kind, buf.format(ip));
        }
        if let Some(ua) = e.user_agent {
            attr(AttrKind::UserAgent, ua);
        }
        attr(AttrKind::Route, e.route);
        if let Some(s) = e.scope {
            attr(AttrKind::Scope, s);
            if let Some(a) = self
                .attrs
                .get_mut(&AttrKind::Route)
                .and_then(|m| m.get_mut(e.route))
            {
                if a.scope.is_none() {
                    a.scope = Some(s.to_string());
                }
            }
        }
    }

    /// Adds another series of the same key (another source, or the key filed under its
    /// fingerprint).
    pub fn merge(&mut self, o: &KeySeries) {
        if o.events == 0 {
            return;
        }
        if self.events == 0 {
            self.first = o.first;
            self.last = o.last;
        }
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.events += o.events;
        for (h, b) in &o.hours {
            self.hours.entry(*h).or_default().merge(b);
        }
        for (kind, m) in &o.attrs {
            let mine = self.attrs.entry(*kind).or_default();
            for (v, a) in m {
                match mine.get_mut(v) {
                    Some(x) => x.merge(a),
                    None => {
                        mine.insert(v.clone(), a.clone());
                    }
                }
            }
        }
    }

    /// The key's values of one kind.
    pub fn attrs_of(&self, kind: AttrKind) -> impl Iterator<Item = (&str, &AttrStats)> {
        self.attrs
            .get(&kind)
            .into_iter()
            .flat_map(|m| m.iter().map(|(v, a)| (v.as_str(), a)))
    }
}

/// Every key's series, and the days the evidence covers at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    pub keys: BTreeMap<String, KeySeries>,
    /// Days (Unix seconds / 86400) with at least one event of any key: a day without any is a
    /// gap in the evidence, not silence.
    pub active_days: BTreeSet<i64>,
}

impl Series {
    /// Adds `n` identical calls.
    pub fn add(&mut self, e: &EventRef<'_>, n: u32) {
        if n == 0 {
            return;
        }
        self.active_days.insert(e.ts.div_euclid(DAY));
        match self.keys.get_mut(e.key) {
            Some(k) => k.add(e, n),
            None => {
                let mut k = KeySeries::new(e.key);
                k.add(e, n);
                self.keys.insert(e.key.to_string(), k);
            }
        }
    }

    /// Adds another series (another source).
    pub fn merge(&mut self, o: &Series) {
        self.active_days.extend(o.active_days.iter().copied());
        for (k, s) in &o.keys {
            self.keys
                .entry(k.clone())
                .or_insert_with(|| KeySeries::new(k))
                .merge(s);
        }
    }

    /// The newest event of any key (Unix seconds).
    pub fn newest(&self) -> Option<i64> {
        self.keys
            .values()
            .filter(|k| k.events > 0)
            .map(|k| k.last)
            .max()
    }

    /// Files the series of `alias` (a fingerprint) under `name` (its inventory name).
    pub fn alias(&mut self, alias: &str, name: &str) {
        if alias == name {
            return;
        }
        if let Some(s) = self.keys.remove(alias) {
            let into = self
                .keys
                .entry(name.to_string())
                .or_insert_with(|| KeySeries::new(name));
            into.merge(&s);
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

mod codec;
#[cfg(test)]
mod tests;
