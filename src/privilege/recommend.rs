//! Recommendations that can be acted on: the replacement key computed from the evidence (its
//! minimal scope set, name, IP whitelist and environment, as IAM Access Analyzer generates a
//! policy from activity), where the integration keeps its key, and the message and step
//! templates of the rules filled in.

use super::{Access, Catalog};
use crate::inventory::{KeyFacts, SecretSource};
use crate::usage::KeyUsage;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Resources whose write scopes do not include their reads (catalog header): a replacement key
/// that writes them needs the `:read` scope too.
const WRITE_WITHOUT_READ: &[&str] = &["issuing", "funds_split", "spend"];

/// The key to create instead of one that can do too much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replacement {
    pub name: String,
    /// The minimal scope set; empty when there is no evidence to compute it from.
    pub scopes: Vec<String>,
    pub ip_whitelist: Vec<String>,
    pub environment: String,
    /// Where the scopes and addresses come from.
    pub basis: String,
    /// Routes used that the catalog does not know: their scopes are not in `scopes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_routes: Vec<String>,
}

/// The minimal scope set for what `usage` shows: each used route's narrowest scope, dropping a
/// read scope whose routes a used write scope of the same resource already allows, plus the
/// `:read` scopes that issuing, funds_split and spend write scopes need.
pub fn minimal_scopes(usage: &KeyUsage, catalog: &Catalog) -> Vec<String> {
    let mut set: BTreeSet<String> = usage
        .routes
        .values()
        .filter(|r| r.ok > 0 || r.count > 0)
        .filter_map(|r| r.scope.clone())
        .filter(|s| usage.scopes_used.contains_key(s))
        .collect();
    // a read scope is redundant when every route it was used for is listed by a write scope in
    // the set
    let writes: Vec<&super::Scope> = set
        .iter()
        .filter_map(|s| catalog.scope(s))
        .filter(|s| s.access == Access::Write)
        .collect();
    let mut redundant = Vec::new();
    for s in set.iter() {
        let Some(sc) = catalog.scope(s) else { continue };
        if sc.access != Access::Read {
            continue;
        }
        let routes: Vec<String> = usage
            .routes
            .values()
            .filter(|r| r.scope.as_deref() == Some(s.as_str()))
            .map(|r| format!("{} {}", r.method, r.template))
            .collect();
        let covered = routes.iter().all(|route| {
            writes.iter().any(|w| {
                w.resource() == sc.resource()
                    && w.endpoints
                        .iter()
                        .chain(&w.endpoints_unverified)
                        .any(|e| e == route)
            })
        });
        if covered && !routes.is_empty() {
            redundant.push(s.clone());
        }
    }
    for s in redundant {
        set.remove(&s);
    }
    let extra: Vec<String> = set
        .iter()
        .filter_map(|s| catalog.scope(s))
        .filter(|s| s.access == Access::Write)
        .filter(|s| {
            WRITE_WITHOUT_READ
                .iter()
                .any(|p| s.id.split(['.', ':']).next() == Some(*p))
        })
        .filter_map(|s| {
            let read = format!("{}:read", s.resource());
            catalog.scope(&read).map(|_| read)
        })
        .collect();
    set.extend(extra);
    set.into_iter().collect()
}

/// Observed IPv4 source addresses as /32, else the declared whitelist.
pub fn whitelist(facts: &KeyFacts, usage: Option<&KeyUsage>) -> (Vec<String>, &'static str) {
    let observed: Vec<String> = usage
        .map(|u| {
            u.source_ips
                .keys()
                .filter_map(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
                .map(|ip| format!("{ip}/32"))
                .collect()
        })
        .unwrap_or_default();
    if !observed.is_empty() {
        (observed, "observed source addresses")
    } else if !facts.ip_whitelist.is_empty() {
        (facts.ip_whitelist.clone(), "declared whitelist")
    } else {
        (Vec::new(), "none known")
    }
}

/// The replacement key for `facts`: scopes from the evidence when there is some, else none
/// (the steps then say to collect evidence first).
pub fn replacement(facts: &KeyFacts, usage: Option<&KeyUsage>, catalog: &Catalog) -> Replacement {
    let (ips, ip_basis) = whitelist(facts, usage);
    let (scopes, basis, unknown) = match usage {
        Some(u) => (
            minimal_scopes(u, catalog),
            format!(
                "usage evidence: {} call(s) from {} to {}; IP whitelist: {ip_basis}",
                u.events,
                u.first_seen.format("%Y-%m-%d"),
                u.last_seen.format("%Y-%m-%d")
            ),
            u.routes
                .iter()
                .filter(|(_, r)| r.scope.is_none() && !r.template.ends_with("/login"))
                .map(|(k, _)| k.clone())
                .collect(),
        ),
        None => (
            Vec::new(),
            format!("no usage evidence: scopes unknown; IP whitelist: {ip_basis}"),
            Vec::new(),
        ),
    };
    Replacement {
        name: format!("{}-scoped", facts.name),
        scopes,
        ip_whitelist: ips,
        environment: facts.environment.as_str().to_string(),
        basis,
        unknown_routes: unknown,
    }
}

/// Where the integration keeps its Airwallex key: Payvy's settings page when the declared
/// integration or purpose says Payvy (a key's name is no proof of what uses it), else a
/// description naming the integration.
pub fn integration_place(facts: &KeyFacts) -> String {
    let says = |s: &Option<String>| {
        s.as_deref()
            .is_some_and(|s| s.to_ascii_lowercase().contains("payvy"))
    };
    if facts.declared && (says(&facts.integration) || says(&facts.purpose)) {
        return "Payvy settings > API Integration".to_string();
    }
    let place = match (&facts.integration, facts.consumers.as_slice()) {
        (Some(i), _) => format!("the place where {i} reads its Airwallex key"),
        (None, [one]) => format!("the place where {one} reads its Airwallex key"),
        _ => format!(
            "the place where the integration using {} reads its Airwallex key",
            facts.name
        ),
    };
    // what awxguard itself read names a place that exists (a literal is its own finding; an
    // unset variable or missing file names nothing)
    match (
        &facts.storage.source,
        facts.declared && facts.fingerprint.is_some(),
    ) {
        (SecretSource::Env { var }, true) => format!("{place} (awxguard reads it from env:{var})"),
        (SecretSource::File { path }, true) => {
            format!("{place} (awxguard reads it from file:{})", path.display())
        }
        _ => place,
    }
}

/// Fills `{name}` placeholders from `vars`; a placeholder without a value reads `(unknown)`.
pub fn render(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j)
                if after[..j]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                let name = &after[..j];
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str("(unknown)"),
                }
                rest = &after[j + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A list for a sentence: `a, b, c`, or `none`.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_and_marks_unknown() {
        let mut v = BTreeMap::new();
        v.insert("key", "erp".to_string());
        assert_eq!(
            render("{key} has {x} {not a placeholder}", &v),
            "erp has (unknown) {not a placeholder}"
        );
    }
}
