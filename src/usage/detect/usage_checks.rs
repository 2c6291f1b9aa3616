//! Rule-like usage checks against a key's declaration, with no learning: a call from an address
//! outside the key's declared IP whitelist (`usage.outside-whitelist`) and a call needing a scope
//! the key does not declare (`usage.undeclared-scope`). Their ids are rule + key + subject (the
//! network, the scope), so every capability that sees the same condition (the proxy, the watch)
//! reports the same finding: use [`finding_subject`].

use super::rules::AnomalyRule;
use super::series::{network_of, AttrKind, AttrStats, KeySeries, HOUR};
use super::{human_count, signal, KeyDecl, SampleFilter, Signal};
use crate::airwallex::Catalog;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The subject part of a rule-like finding's id: the network of an address outside the whitelist
/// (`/24` for IPv4 by default, `/48` for IPv6), or the scope.
pub fn finding_subject(rule: &str, value: &str, ipv4_prefix: u8) -> String {
    match rule {
        "usage.outside-whitelist" => network_of(value, ipv4_prefix, 48),
        _ => value.to_string(),
    }
}

/// The route templates (`METHOD /path`) the scopes allow, from the catalog's endpoints.
pub fn allowed_routes(catalog: &Catalog, scopes: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for id in scopes {
        if let Some(s) = catalog.scope(id) {
            out.extend(s.endpoints.iter().cloned());
            out.extend(s.endpoints_unverified.iter().cloned());
        }
    }
    out
}

/// `usage.outside-whitelist`: Airwallex saw the key called from an address outside its declared
/// whitelist (proxy events carry internal addresses and are not compared).
pub fn outside_whitelist(
    ks: &KeySeries,
    decl: &KeyDecl,
    rule: &AnomalyRule,
    watermark: i64,
) -> Vec<Signal> {
    if decl.ip_whitelist.is_empty() {
        return Vec::new();
    }
    let prefix = rule.int("ipv4_prefix").clamp(1, 32) as u8;
    let mut by_net: BTreeMap<String, (AttrStats, Vec<String>)> = BTreeMap::new();
    for (ip, a) in ks.attrs_of(AttrKind::SourceIp) {
        if a.first > watermark {
            continue;
        }
        let Ok(addr) = ip.parse::<IpAddr>() else {
            continue;
        };
        if decl.ip_whitelist.iter().any(|n| n.contains(&addr)) {
            continue;
        }
        let e = by_net
            .entry(network_of(ip, prefix, 48))
            .or_insert_with(|| (AttrStats::default(), Vec::new()));
        e.0.merge(a);
        e.1.push(ip.to_string());
    }
    let whitelist: Vec<String> = decl.ip_whitelist.iter().map(|n| n.to_string()).collect();
    let mut out = Vec::new();
    for (net, (a, ips)) in by_net {
        let mut v = BTreeMap::new();
        v.insert("network", net.clone());
        v.insert("address", ips.join(", "));
        v.insert("whitelist", whitelist.join(", "));
        v.insert("calls", human_count(a.calls as f64));
        v.insert("writes", human_count(a.writes as f64));
        v.insert("ok", human_count(a.ok as f64));
        let evidence = serde_json::json!({
            "network": net,
            "addresses": ips,
            "whitelist": whitelist,
            "observed": a.calls,
            "expected": 0,
            "writes": a.writes,
            "ok": a.ok,
            "baseline": {"kind": "declared ip_whitelist"},
        });
        let severity = if a.writes > 0 {
            rule.severity_param("severity_write")
        } else {
            rule.severity
        };
        let mut s = signal(
            rule,
            &ks.key,
            severity,
            a.first,
            a.last + 1,
            a.first.div_euclid(HOUR) * HOUR,
            v,
            evidence,
            SampleFilter::Network {
                cidr: net.clone(),
                via_proxy: false,
            },
        );
        s.subject = Some(net);
        out.push(s);
    }
    out
}

/// `usage.undeclared-scope`: the key made calls that need a scope it does not declare.
pub fn undeclared_scope(
    ks: &KeySeries,
    decl: &KeyDecl,
    rule: &AnomalyRule,
    watermark: i64,
) -> Vec<Signal> {
    let Some(declared) = &decl.scopes else {
        return Vec::new();
    };
    let mut by_scope: BTreeMap<String, (AttrStats, Vec<String>)> = BTreeMap::new();
    for (route, a) in ks.attrs_of(AttrKind::Route) {
        let Some(scope) = &a.scope else {
            continue;
        };
        if a.first > watermark || declared.contains(scope) {
            continue;
        }
        let template = route.to_string();
        if decl.allowed_routes.contains(&template) {
            continue;
        }
        let e = by_scope
            .entry(scope.clone())
            .or_insert_with(|| (AttrStats::default(), Vec::new()));
        e.0.merge(a);
        e.1.push(template);
    }
    let declared_text = declared.iter().cloned().collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    for (scope, (a, routes)) in by_scope {
        let mut v = BTreeMap::new();
        v.insert("scope", scope.clone());
        v.insert("route", routes.join(", "));
        v.insert("declared_scopes", declared_text.clone());
        v.insert("calls", human_count(a.calls as f64));
        v.insert("writes", human_count(a.writes as f64));
        v.insert("ok", human_count(a.ok as f64));
        let evidence = serde_json::json!({
            "scope": scope,
            "routes": routes,
            "declared_scopes": declared,
            "observed": a.calls,
            "expected": 0,
            "writes": a.writes,
            "ok": a.ok,
            "baseline": {"kind": "declared scopes"},
        });
        let severity = if a.writes > 0 {
            rule.severity_param("severity_write")
        } else {
            rule.severity
        };
        let mut s = signal(
            rule,
            &ks.key,
            severity,
            a.first,
            a.last + 1,
            a.first.div_euclid(HOUR) * HOUR,
            v,
            evidence,
            SampleFilter::Scope {
                scope: scope.clone(),
            },
        );
        s.subject = Some(scope);
        out.push(s);
    }
    out
}

/// `usage.unknown-key`: events of a key that is neither a declared name nor a known fingerprint
/// (judged only when keys are declared). Its id is rule + key.
pub fn unknown_key(ks: &KeySeries, rule: &AnomalyRule) -> Vec<Signal> {
    let names = |kind: AttrKind| -> String {
        let v: Vec<&str> = ks.attrs_of(kind).map(|(v, _)| v).take(5).collect();
        if v.is_empty() {
            "none recorded".into()
        } else {
            v.join(", ")
        }
    };
    let mut v = BTreeMap::new();
    v.insert("calls", human_count(ks.events as f64));
    v.insert("address", names(AttrKind::SourceIp));
    v.insert("user_agent", names(AttrKind::UserAgent));
    v.insert("first_seen", super::rfc3339(ks.first));
    v.insert("last_seen", super::rfc3339(ks.last));
    let evidence = serde_json::json!({
        "observed": ks.events,
        "expected": "every key in use declared in the inventory (by name or fingerprint)",
        "routes": ks.attrs_of(AttrKind::Route).map(|(r, _)| r).take(10).collect::<Vec<_>>(),
        "baseline": {"kind": "declared keys"},
    });
    let mut s = signal(
        rule,
        &ks.key,
        rule.severity,
        ks.first,
        ks.last + 1,
        ks.first.div_euclid(HOUR) * HOUR,
        v,
        evidence,
        SampleFilter::Any,
    );
    s.subject = Some(String::new());
    vec![s]
}
