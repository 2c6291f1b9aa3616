//! Who made a change: the key whose proxied call recorded the object's id (an exact join on the
//! `object_ids` of usage events with `via: "proxy"`), or nobody awxguard saw: "no proxied key",
//! a call from outside the proxy (a leaked key, or someone in the web app). Never a guess by
//! time: a creation is matched to the proxied call that created the object, a change to a
//! proxied call that updated it.
//!
//! And what else is known of a key: an open leak (`leak.*`, `privilege.key-leaked`) or an open
//! anomaly (`anomaly.*`) in the store, which makes a watch finding on it high or critical.

use crate::finding::Status;
use crate::store::StoredFinding;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// A call the proxy recorded that created or changed an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxiedCall {
    /// The key that made it: its inventory name, or its fingerprint.
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    pub method: String,
    pub path: String,
}

impl ProxiedCall {
    /// Whether the call created its object (`POST .../create`), as opposed to changing it.
    pub fn creates(&self) -> bool {
        let p = self.path.trim_end_matches('/');
        self.method.eq_ignore_ascii_case("POST")
            && (p.ends_with("/create")
                || p.ends_with("/api/v1/transfers")
                || p.ends_with("/api/v1/beneficiaries")
                || p.ends_with("/api/v1/webhooks"))
    }

    /// Whether the call changed an existing object (an update).
    pub fn updates(&self) -> bool {
        !self.creates() && !self.method.eq_ignore_ascii_case("GET")
    }
}

/// The proxy's record of calls by object id. Implemented over the store (the usage evidence the
/// proxy writes) and in memory (rule examples, usage-event files).
pub trait ProxiedCalls: Send + Sync {
    /// The proxied calls whose `object_ids` hold `object_id`, oldest first.
    fn calls(&self, object_id: &str) -> Result<Vec<ProxiedCall>, String>;

    /// Whether there is no proxy record at all (then "no proxied key" says little: maybe no
    /// proxy runs).
    fn is_empty(&self) -> bool {
        false
    }
}

/// Nothing recorded: every change is "no proxied key".
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProxy;

impl ProxiedCalls for NoProxy {
    fn calls(&self, _: &str) -> Result<Vec<ProxiedCall>, String> {
        Ok(Vec::new())
    }

    fn is_empty(&self) -> bool {
        true
    }
}

/// The proxy's record in the store: the objects proxied calls created or changed (the store's
/// proxy area, written beside each usage event with `via: "proxy"` and its `object_ids`).
pub struct StoreCalls(pub std::sync::Arc<dyn crate::store::Store>);

impl ProxiedCalls for StoreCalls {
    fn calls(&self, object_id: &str) -> Result<Vec<ProxiedCall>, String> {
        let rows = self
            .0
            .object_sightings(object_id)
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|r| ProxiedCall {
                key: r.key,
                at: DateTime::parse_from_rfc3339(&r.ts).ok().map(|t| t.to_utc()),
                method: r.method.to_ascii_uppercase(),
                path: r.path,
            })
            .collect())
    }

    fn is_empty(&self) -> bool {
        !self.0.has_object_sightings().unwrap_or(true)
    }
}

/// The proxy's record in the store.
pub fn from_store(
    store: &std::sync::Arc<dyn crate::store::Store>,
) -> std::sync::Arc<dyn ProxiedCalls> {
    std::sync::Arc::new(StoreCalls(store.clone()))
}

/// Calls in memory, by object id.
#[derive(Debug, Default, Clone)]
pub struct CallIndex {
    by_object: HashMap<String, Vec<ProxiedCall>>,
}

impl CallIndex {
    pub fn add(&mut self, object_id: &str, call: ProxiedCall) {
        self.by_object
            .entry(object_id.to_string())
            .or_default()
            .push(call);
    }

    /// Indexes usage events (contract lines as JSON): only `via: "proxy"` events with
    /// `object_ids` count.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a serde_json::Value>) -> CallIndex {
        let mut idx = CallIndex::default();
        for e in events {
            if e.get("via").and_then(|v| v.as_str()) != Some("proxy") {
                continue;
            }
            let Some(ids) = e.get("object_ids").and_then(|v| v.as_array()) else {
                continue;
            };
            let s = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let call = ProxiedCall {
                key: s("key"),
                at: e
                    .get("ts")
                    .and_then(|v| v.as_str())
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.to_utc()),
                method: s("method").to_ascii_uppercase(),
                path: s("path"),
            };
            for id in ids.iter().filter_map(|i| i.as_str()) {
                idx.add(id, call.clone());
            }
        }
        idx
    }
}

impl ProxiedCalls for CallIndex {
    fn calls(&self, object_id: &str) -> Result<Vec<ProxiedCall>, String> {
        let mut v = self.by_object.get(object_id).cloned().unwrap_or_default();
        v.sort_by_key(|c| c.at);
        Ok(v)
    }

    fn is_empty(&self) -> bool {
        self.by_object.is_empty()
    }
}

/// What made one change of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MadeBy {
    pub object: String,
    /// `transfer`, `beneficiary`, `webhook`.
    pub kind: &'static str,
    /// `created`, `changed`.
    pub change: &'static str,
    /// The key of the proxied call, or `None`: no proxied key.
    pub key: Option<String>,
    /// The matching call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<ProxiedCall>,
}

impl MadeBy {
    /// `payouts (proxied POST /api/v1/transfers/create)` or `no proxied key`.
    pub fn label(&self) -> String {
        match (&self.key, &self.call) {
            (Some(k), Some(c)) => format!("{k} (proxied {} {})", c.method, c.path),
            (Some(k), None) => k.clone(),
            _ => "no proxied key (a call from outside the proxy: a leaked key or the web app)"
                .to_string(),
        }
    }
}

/// Joins one change of an object to the proxied call that made it: a creation to a creating
/// call, a change to the last updating call.
pub fn made_by(
    calls: &dyn ProxiedCalls,
    kind: &'static str,
    object: &str,
    change: &'static str,
) -> Result<MadeBy, String> {
    let all = calls.calls(object)?;
    let call = if change == "created" {
        all.iter().find(|c| c.creates()).cloned()
    } else {
        all.iter().rev().find(|c| c.updates()).cloned()
    };
    Ok(MadeBy {
        object: object.to_string(),
        kind,
        change,
        key: call.as_ref().map(|c| c.key.clone()),
        call,
    })
}

/// An open finding that bears on a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concern {
    /// The key as the finding names it (inventory name or fingerprint).
    pub key: String,
    /// The key's fingerprint, when the finding carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub rule: String,
    pub finding: String,
    /// A leak (else an anomaly).
    pub leak: bool,
}

impl Concern {
    pub fn describe(&self) -> String {
        format!(
            "{} has an open {} finding ({} {})",
            self.key,
            if self.leak { "leak" } else { "anomaly" },
            self.rule,
            self.finding
        )
    }
}

/// Whether a rule id is a leak.
pub fn is_leak_rule(rule: &str) -> bool {
    rule.starts_with("leak.") || rule == "privilege.key-leaked"
}

/// The open leaks and anomalies in the store.
#[derive(Debug, Clone, Default)]
pub struct Concerns {
    pub list: Vec<Concern>,
}

impl Concerns {
    /// From the stored findings: `new` or `open` leaks and anomalies that name a key.
    pub fn from_findings(stored: &[StoredFinding]) -> Concerns {
        let list = stored
            .iter()
            .map(|s| &s.finding)
            .filter(|f| matches!(f.status, Some(Status::New) | Some(Status::Open)))
            .filter(|f| is_leak_rule(&f.rule) || f.rule.starts_with("anomaly."))
            .filter_map(|f| {
                let fp = f.secret.as_ref().map(|s| s.fingerprint.clone());
                let key = f.key.clone().or_else(|| fp.clone())?;
                Some(Concern {
                    key,
                    fingerprint: fp,
                    rule: f.rule.clone(),
                    finding: f.id.clone(),
                    leak: is_leak_rule(&f.rule),
                })
            })
            .collect();
        Concerns { list }
    }

    /// The concerns on `key` (a name or a fingerprint).
    pub fn on(&self, key: &str) -> Vec<&Concern> {
        self.list
            .iter()
            .filter(|c| c.key == key || c.fingerprint.as_deref() == Some(key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_join_is_exact_on_object_ids_and_tells_creations_from_changes() {
        let events = [
            json!({"ts": "2026-11-20T10:00:00Z", "key": "ap", "method": "POST",
                   "path": "/api/v1/beneficiaries/create", "status": 201, "via": "proxy",
                   "object_ids": ["ben_1"]}),
            json!({"ts": "2026-11-20T10:01:00Z", "key": "ap", "method": "POST",
                   "path": "/api/v1/transfers/create", "status": 201,
                   "object_ids": ["tr_1"]}),
        ];
        let idx = CallIndex::from_events(&events);
        let b = made_by(&idx, "beneficiary", "ben_1", "created").unwrap();
        assert_eq!(b.key.as_deref(), Some("ap"));
        assert!(b.label().starts_with("ap (proxied POST"));
        // Not recorded by a proxy: no proxied key.
        let t = made_by(&idx, "transfer", "tr_1", "created").unwrap();
        assert_eq!(t.key, None);
        assert!(t.label().starts_with("no proxied key"));
        // Created through the proxy, changed from outside: the change has no proxied key.
        let c = made_by(&idx, "beneficiary", "ben_1", "changed").unwrap();
        assert_eq!(c.key, None);
    }

    #[test]
    fn open_leaks_and_anomalies_are_concerns_resolved_ones_are_not() {
        use crate::finding::{Finding, SecretRef, Severity, Status};
        let stored = |rule: &str, key: Option<&str>, status: Status| {
            let mut f = Finding::new(rule, Severity::High, "m", &[rule]);
            f.key = key.map(str::to_string);
            f.status = Some(status);
            if key.is_none() {
                f.secret = Some(SecretRef {
                    preview: "3f9a…c21e".into(),
                    fingerprint: "sha256:00112233aabbccdd".into(),
                    client_id: None,
                });
            }
            StoredFinding {
                finding: f,
                scope: "x".into(),
                first_seen: String::new(),
                last_seen: String::new(),
                resolved_at: None,
                times_seen: 1,
                acknowledgement: None,
            }
        };
        let c = Concerns::from_findings(&[
            stored("privilege.key-leaked", Some("erp"), Status::Open),
            stored("leak.airwallex.api-key", None, Status::New),
            stored("anomaly.rate-spike", Some("payouts"), Status::New),
            stored("anomaly.new-network", Some("erp"), Status::Resolved),
            stored("privilege.admin-key", Some("erp"), Status::Open),
        ]);
        assert_eq!(c.list.len(), 3);
        assert_eq!(c.on("erp").len(), 1);
        assert!(c.on("erp")[0].leak);
        assert_eq!(c.on("sha256:00112233aabbccdd").len(), 1);
        assert!(!c.on("payouts")[0].leak);
    }
}
