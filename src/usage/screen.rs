//! Which calls are evidence of need. The audit computes a replacement key (its scopes, its IP
//! whitelist) from what a key's calls show; a call from outside the key's declared IP
//! whitelist, a call needing a scope the key does not declare, and a call inside an open
//! anomaly are not need but abuse, or at least unexplained: they are screened out of the
//! evidence while it is read and kept aside (`Evidence::screened`), so the privilege rules
//! report them (`usage.outside-whitelist`, `usage.undeclared-scope`; the anomaly is already a
//! finding) and the replacement key learns nothing from them. A key used to add beneficiaries it
//! should not have is investigated, never granted `beneficiary:write`.

use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// An open anomaly finding of a key: calls of the key inside its window are not evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyWindow {
    /// The finding's id.
    pub id: String,
    pub rule: String,
    /// The finding's `key`: an inventory name or a fingerprint.
    pub key: String,
    pub start: DateTime<Utc>,
    /// Exclusive.
    pub end: DateTime<Utc>,
}

/// What the screen knows of one key.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// The declared IP whitelist; empty: none declared (no call is outside it).
    pub whitelist: Vec<Ipv4Net>,
    /// The declared scopes; `None`: every scope (admin and read_write keys).
    pub scopes: Option<HashSet<String>>,
    /// The routes (`METHOD /template`) the declared scopes allow: a write scope often allows
    /// its resource's reads.
    pub allowed_routes: HashSet<String>,
    /// Its open anomalies.
    pub anomalies: Vec<AnomalyWindow>,
}

/// The keys' declarations, by every name their events may carry (inventory name, fingerprint).
#[derive(Debug, Clone, Default)]
pub struct Screen {
    by_key: HashMap<String, Arc<Declared>>,
}

/// Why a call was screened out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasons {
    /// The /24 network of an address outside the whitelist.
    pub outside_whitelist: Option<String>,
    /// A scope the key does not declare.
    pub undeclared_scope: Option<String>,
    /// The ids of the open anomalies whose window holds the call.
    pub anomalies: Vec<String>,
}

impl Reasons {
    pub fn any(&self) -> bool {
        self.outside_whitelist.is_some()
            || self.undeclared_scope.is_some()
            || !self.anomalies.is_empty()
    }
}

/// The network a whitelist finding is about: the address's /24, the subject the usage
/// detectors give `usage.outside-whitelist` (their default `ipv4_prefix`), so the audit and
/// `awxguard usage` report the same finding.
pub fn network_of(ip: Ipv4Addr) -> String {
    super::detect::usage_checks::finding_subject("usage.outside-whitelist", &ip.to_string(), 24)
}

impl Screen {
    /// Adds a key under `names` (its inventory name, its fingerprint).
    pub fn add(&mut self, names: &[&str], declared: Declared) {
        let d = Arc::new(declared);
        for n in names {
            self.by_key.insert((*n).to_string(), d.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Why a call is not evidence of need, if it is not. `route` is the catalog's answer
    /// (`METHOD /template` and its narrowest scope); `via_proxy`: recorded by awxguard's proxy,
    /// whose `source_ip` is an internal address, not the one Airwallex whitelists.
    pub fn judge(
        &self,
        key: &str,
        ts: DateTime<Utc>,
        route: Option<(&str, Option<&str>)>,
        source_ip: Option<&str>,
        via_proxy: bool,
    ) -> Reasons {
        let mut r = Reasons::default();
        let Some(d) = self.by_key.get(key) else {
            return r;
        };
        if !d.whitelist.is_empty() && !via_proxy {
            if let Some(IpAddr::V4(ip)) = source_ip.and_then(|s| s.trim().parse::<IpAddr>().ok()) {
                if !d.whitelist.iter().any(|n| n.contains(&ip)) {
                    r.outside_whitelist = Some(network_of(ip));
                }
            }
        }
        if let (Some(declared), Some((template, Some(scope)))) = (&d.scopes, route) {
            if !declared.contains(scope) && !d.allowed_routes.contains(template) {
                r.undeclared_scope = Some(scope.to_string());
            }
        }
        for a in &d.anomalies {
            if a.start <= ts && ts < a.end {
                r.anomalies.push(a.id.clone());
            }
        }
        r
    }
}

/// Screened calls of one kind (one network, one scope, one anomaly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspect {
    pub calls: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// Not GET, HEAD or OPTIONS.
    pub writes: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// Source address -> calls.
    pub addresses: BTreeMap<String, u64>,
    /// `METHOD /template` -> calls.
    pub routes: BTreeMap<String, u64>,
}

impl Suspect {
    fn new(ts: DateTime<Utc>) -> Suspect {
        Suspect {
            calls: 0,
            ok: 0,
            writes: 0,
            first: ts,
            last: ts,
            addresses: BTreeMap::new(),
            routes: BTreeMap::new(),
        }
    }

    fn add(&mut self, call: &Call<'_>) {
        self.calls += 1;
        if call.ok {
            self.ok += 1;
        }
        if call.write {
            self.writes += 1;
        }
        self.first = self.first.min(call.ts);
        self.last = self.last.max(call.ts);
        if let Some(ip) = call.source_ip {
            *self.addresses.entry(ip.to_string()).or_insert(0) += 1;
        }
        *self.routes.entry(call.route.to_string()).or_insert(0) += 1;
    }

    fn absorb(&mut self, o: &Suspect) {
        self.calls += o.calls;
        self.ok += o.ok;
        self.writes += o.writes;
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        for (k, v) in &o.addresses {
            *self.addresses.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &o.routes {
            *self.routes.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// One screened call, as the reader hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub ts: DateTime<Utc>,
    /// `METHOD /template`, or `METHOD /path/{id}` for a route the catalog does not know.
    pub route: &'a str,
    pub source_ip: Option<&'a str>,
    pub ok: bool,
    pub write: bool,
}

/// The calls of one key kept out of its evidence, by reason (a call may have several).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screened {
    /// Calls kept out (each once, whatever its reasons).
    pub calls: u64,
    /// By /24 network.
    pub outside_whitelist: BTreeMap<String, Suspect>,
    /// By scope.
    pub undeclared_scope: BTreeMap<String, Suspect>,
    /// By anomaly finding id.
    pub in_anomaly: BTreeMap<String, Suspect>,
}

impl Screened {
    /// The last screened call.
    pub fn last(&self) -> Option<DateTime<Utc>> {
        [
            &self.outside_whitelist,
            &self.undeclared_scope,
            &self.in_anomaly,
        ]
        .into_iter()
        .flat_map(|m| m.values().map(|s| s.last))
        .max()
    }

    /// Adds one call screened out for `reasons`.
    pub fn add(&mut self, reasons: &Reasons, call: &Call<'_>) {
        self.calls += 1;
        let put = |m: &mut BTreeMap<String, Suspect>, k: &str| {
            m.entry(k.to_string())
                .or_insert_with(|| Suspect::new(call.ts))
                .add(call)
        };
        if let Some(n) = &reasons.outside_whitelist {
            put(&mut self.outside_whitelist, n);
        }
        if let Some(s) = &reasons.undeclared_scope {
            put(&mut self.undeclared_scope, s);
        }
        for a in &reasons.anomalies {
            put(&mut self.in_anomaly, a);
        }
    }

    /// Adds what another part of the evidence screened out for the same key.
    pub fn absorb(&mut self, o: &Screened) {
        self.calls += o.calls;
        for (into, from) in [
            (&mut self.outside_whitelist, &o.outside_whitelist),
            (&mut self.undeclared_scope, &o.undeclared_scope),
            (&mut self.in_anomaly, &o.in_anomaly),
        ] {
            for (k, s) in from {
                match into.get_mut(k) {
                    Some(mine) => mine.absorb(s),
                    None => {
                        into.insert(k.clone(), s.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn outside_whitelist_undeclared_scope_and_anomaly_windows() {
        let mut s = Screen::default();
        s.add(
            &["erp", "sha256:00112233aabbccdd"],
            Declared {
                whitelist: vec!["198.51.100.0/24".parse().unwrap()],
                scopes: Some(["transfer:read".to_string()].into_iter().collect()),
                allowed_routes: ["GET /api/v1/transfers".to_string()].into_iter().collect(),
                anomalies: vec![AnomalyWindow {
                    id: "a1".into(),
                    rule: "anomaly.rate-spike".into(),
                    key: "erp".into(),
                    start: t("2026-11-20T10:00:00Z"),
                    end: t("2026-11-20T11:00:00Z"),
                }],
            },
        );
        let read = Some(("GET /api/v1/transfers", Some("transfer:read")));
        let write = Some((
            "POST /api/v1/beneficiaries/create",
            Some("beneficiary:write"),
        ));
        let at = t("2026-11-20T09:00:00Z");
        assert!(!s.judge("erp", at, read, Some("198.51.100.7"), false).any());
        let r = s.judge("erp", at, write, Some("203.0.113.66"), false);
        assert_eq!(r.outside_whitelist.as_deref(), Some("203.0.113.0/24"));
        assert_eq!(r.undeclared_scope.as_deref(), Some("beneficiary:write"));
        // the proxy's addresses are not Airwallex's: not compared
        assert!(!s.judge("erp", at, read, Some("10.0.0.5"), true).any());
        // by fingerprint too; inside the anomaly's window
        let r = s.judge(
            "sha256:00112233aabbccdd",
            t("2026-11-20T10:30:00Z"),
            read,
            Some("198.51.100.7"),
            false,
        );
        assert_eq!(r.anomalies, ["a1"]);
        // a key the screen does not know is never screened
        assert!(!s
            .judge("other", at, write, Some("203.0.113.66"), false)
            .any());
    }
}
