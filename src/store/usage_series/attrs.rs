//! The values of a key (networks, user agents, routes, scopes, hosts, accounts, statuses) with
//! their first appearance, totals and early activity, for the novelty detectors.

use super::bucket::span;
use super::{Access, EARLY_HOURS, HOUR};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub(super) fn add(&mut self, ts: i64, n: u32, access: Access, status: u16) {
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
