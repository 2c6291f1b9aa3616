//! The audit's usage evidence from the usage store (`awxguard usage ingest`): each key's first
//! appearances (routes, scopes, addresses, agents, hosts, accounts, statuses over the whole
//! rollup retention) read as the evidence the file reader builds, so the privilege rules judge
//! ingested events as they judge a `--usage` file.
//!
//! The screen applies as it does to files (`usage::screen`): an address outside the key's
//! declared whitelist and a route needing a scope the key does not declare are kept aside with
//! their counts (the rollups know them per address and per route); the calls inside an open
//! anomaly's window are kept aside from the raw events the store still holds for that window
//! (raw events are kept for `[usage] raw_retention`: an older window's calls stay in).

use super::screen::{Reason, Suspect};
use super::{Evidence, KeyUsage, RouteUsage, Screen, SourceSpan};
use crate::airwallex::Catalog;
use crate::store::usage_series::{classify, AttrKind, AttrStats};
use crate::store::{SampleQuery, Store, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::{BTreeMap, HashSet};

/// The input id of the usage store's evidence (`Evidence::inputs`, `Finding::observed_by`).
pub const INPUT: &str = "store:usage-events";

/// The name of the store's `SourceSpan` in the evidence.
pub const SOURCE: &str = "the usage evidence store";

/// The most raw events read per open anomaly window to keep its calls out of the evidence.
const WINDOW_EVENTS: usize = 20_000;

fn to_t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0).single().unwrap_or_default()
}

fn suspect(a: &AttrStats) -> Suspect {
    let mut s = Suspect::new(to_t(a.first));
    s.calls = a.calls;
    s.ok = a.ok;
    s.writes = a.writes;
    s.last = to_t(a.last);
    s
}

/// The usage evidence the store holds, unscreened (`None` when it holds none).
pub fn stored_evidence(store: &dyn Store) -> Result<Option<Evidence>, StoreError> {
    screened_stored_evidence(store, &Screen::default(), &Catalog::builtin())
}

/// The usage evidence the store holds, with the calls `screen` says are not evidence of need
/// kept aside in `Evidence::screened` (`None` when the store holds no events).
pub fn screened_stored_evidence(
    store: &dyn Store,
    screen: &Screen,
    catalog: &Catalog,
) -> Result<Option<Evidence>, StoreError> {
    let names = store.usage_key_names()?;
    if names.is_empty() {
        return Ok(None);
    }
    let mut ev = Evidence::default();
    let mut first = i64::MAX;
    let mut last = i64::MIN;
    for name in names {
        let ks = store.usage_key_series(&name)?;
        if ks.events == 0 {
            continue;
        }
        first = first.min(ks.first);
        last = last.max(ks.last);
        ev.events += ks.events;
        let mut screened = super::Screened::default();
        let count = |kind: AttrKind| -> BTreeMap<String, u64> {
            ks.attrs_of(kind)
                .map(|(v, a)| (v.to_string(), a.calls))
                .collect()
        };
        let mut routes = BTreeMap::new();
        for (r, a) in ks.attrs_of(AttrKind::Route) {
            let (method, template) = r.split_once(' ').unwrap_or(("", r));
            routes.insert(
                r.to_string(),
                RouteUsage {
                    method: method.to_string(),
                    template: template.to_string(),
                    scope: a.scope.clone(),
                    count: a.calls,
                    first_seen: to_t(a.first),
                    last_seen: to_t(a.last),
                    ok: a.ok,
                },
            );
        }
        let mut u = KeyUsage {
            key: name.clone(),
            events: ks.events,
            first_seen: to_t(ks.first),
            last_seen: to_t(ks.last),
            coverage_start: to_t(ks.first),
            routes,
            scopes_used: ks
                .attrs_of(AttrKind::Scope)
                .filter_map(|(s, a)| a.accepted_last.map(|t| (s.to_string(), to_t(t))))
                .collect(),
            source_ips: count(AttrKind::SourceIp),
            user_agents: count(AttrKind::UserAgent),
            hosts: count(AttrKind::Host),
            statuses: ks
                .attrs_of(AttrKind::Status)
                .filter_map(|(s, a)| s.parse::<u16>().ok().map(|s| (s, a.calls)))
                .collect(),
            account_ids: count(AttrKind::Account),
        };
        // Screened calls leave the evidence: their counts by the rollups, what else they carried
        // (agent, status, route) by the raw events still kept.
        let mut out = TakenOut::default();
        let (from, to) = (ks.first, ks.last + 1);
        for (ip, a) in ks.attrs_of(AttrKind::SourceIp) {
            let r = screen.judge(&name, to_t(a.last), None, Some(ip), false);
            let Some(net) = r.outside_whitelist else {
                continue;
            };
            let mut s = suspect(a);
            s.addresses.insert(ip.to_string(), a.calls);
            let host = if ip.contains(':') { 128 } else { 32 };
            let q = SampleQuery::Network {
                cidr: format!("{ip}/{host}"),
                via_proxy: false,
            };
            for e in store.usage_samples(&name, from, to, &q, WINDOW_EVENTS)? {
                out.take(&mut u, None, &e, catalog);
            }
            u.source_ips.remove(ip);
            screened.add_aggregate(Reason::OutsideWhitelist, &net, s);
        }
        for (r, a) in ks.attrs_of(AttrKind::Route) {
            let judged = screen.judge(
                &name,
                to_t(a.last),
                Some((r, a.scope.as_deref())),
                None,
                false,
            );
            let Some(scope) = judged.undeclared_scope else {
                continue;
            };
            let mut s = suspect(a);
            s.routes.insert(r.to_string(), a.calls);
            let q = SampleQuery::Route {
                route: r.to_string(),
            };
            for e in store.usage_samples(&name, from, to, &q, WINDOW_EVENTS)? {
                out.take(&mut u, None, &e, catalog);
            }
            u.routes.remove(r);
            screened.add_aggregate(Reason::UndeclaredScope, &scope, s);
        }
        for w in screen.anomalies(&name) {
            let events = store.usage_samples(
                &name,
                w.start.timestamp(),
                w.end.timestamp(),
                &SampleQuery::Any,
                WINDOW_EVENTS,
            )?;
            let mut s = Suspect::new(w.start);
            for e in &events {
                out.take(&mut u, Some(&mut s), e, catalog);
            }
            if s.calls > 0 {
                screened.add_aggregate(Reason::InAnomaly, &w.id, s);
            }
        }
        // a scope is used only through a route still in the evidence
        let scopes_left: std::collections::BTreeSet<&str> = u
            .routes
            .values()
            .filter_map(|r| r.scope.as_deref())
            .collect();
        let scopes_used = std::mem::take(&mut u.scopes_used);
        u.scopes_used = scopes_used
            .into_iter()
            .filter(|(s, _)| scopes_left.contains(s.as_str()))
            .collect();
        if screened.calls > 0 {
            ev.screened.insert(name.clone(), screened);
        }
        ev.keys.insert(name, u);
    }
    if first <= last {
        ev.sources.push(SourceSpan {
            name: SOURCE.into(),
            first: to_t(first),
            last: to_t(last),
            events: ev.events,
        });
        // the store covers every key from its first stored event
        for u in ev.keys.values_mut() {
            u.coverage_start = to_t(first);
        }
        ev.inputs.push(INPUT.to_string());
    }
    Ok(Some(ev))
}

/// The raw events already taken out of a key's evidence (an event screened for two reasons
/// leaves once).
#[derive(Default)]
struct TakenOut(HashSet<String>);

impl TakenOut {
    /// Takes one raw event (a contract line) out of `u`'s counts (into `s` when given: its
    /// counts are not in the rollups' screened aggregate).
    fn take(
        &mut self,
        u: &mut KeyUsage,
        s: Option<&mut Suspect>,
        e: &serde_json::Value,
        catalog: &Catalog,
    ) {
        if !self.0.insert(e.to_string()) {
            return;
        }
        take_out(u, s, e, catalog);
    }
}

/// Takes one raw event (a contract line) inside an open anomaly out of `u`'s counts, into `s`.
fn take_out(u: &mut KeyUsage, s: Option<&mut Suspect>, e: &serde_json::Value, catalog: &Catalog) {
    let text = |f: &str| e.get(f).and_then(|v| v.as_str());
    let (Some(method), Some(path)) = (text("method"), text("path")) else {
        return;
    };
    let ts = text("ts")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let status = e.get("status").and_then(|v| v.as_u64()).unwrap_or(0) as u16;
    let (route, _, access) = classify(catalog, method, path);
    let ok = (200..300).contains(&status);
    let dec = |m: &mut BTreeMap<String, u64>, k: &str| {
        if let Some(n) = m.get_mut(k) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(k);
            }
        }
    };
    if let Some(r) = u.routes.get_mut(&route) {
        r.count = r.count.saturating_sub(1);
        if ok {
            r.ok = r.ok.saturating_sub(1);
        }
        if r.count == 0 {
            u.routes.remove(&route);
        }
    }
    let via_proxy = text("via") == Some("proxy");
    let ip = text("source_ip");
    if let (Some(ip), false) = (ip, via_proxy) {
        dec(&mut u.source_ips, ip);
    }
    if let Some(a) = text("user_agent") {
        dec(&mut u.user_agents, a);
    }
    if let Some(h) = text("host") {
        dec(&mut u.hosts, &h.to_ascii_lowercase());
    }
    if let Some(a) = text("account_id") {
        dec(&mut u.account_ids, a);
    }
    if let Some(n) = u.statuses.get_mut(&status) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            u.statuses.remove(&status);
        }
    }
    u.events = u.events.saturating_sub(1);
    let Some(s) = s else {
        return;
    };
    s.calls += 1;
    if ok {
        s.ok += 1;
    }
    if access.writes() {
        s.writes += 1;
    }
    if let Some(ts) = ts {
        if s.calls == 1 {
            s.first = ts;
            s.last = ts;
        }
        s.first = s.first.min(ts);
        s.last = s.last.max(ts);
    }
    if let Some(ip) = ip {
        *s.addresses.entry(ip.to_string()).or_insert(0) += 1;
    }
    *s.routes.entry(route).or_insert(0) += 1;
}
