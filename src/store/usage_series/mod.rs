//! The usage evidence model the store keeps and the detectors read: per key, hourly buckets (calls, writes, refusals, with 5-minute
//! sub-buckets so short bursts stay visible) and the first appearances of every network, user
//! agent, route and scope. Every field is a sum, a minimum or a maximum over events, so the
//! series is the same whatever order the events arrive in, and the store can keep exactly these
//! aggregates as its long-lived rollups.

mod attrs;
mod bucket;
mod codec;
mod event;
#[cfg(test)]
mod tests;

pub use attrs::{AttrHour, AttrKind, AttrStats};
pub use bucket::HourBucket;
pub use event::{classify, network_of, unknown_template, user_agent_family, Event, EventRef};

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
