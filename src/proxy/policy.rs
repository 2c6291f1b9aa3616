//! What the proxy decides on a request, and the findings it records for it. The decisions are
//! built in (a token nobody logged in for, a scope the key does not declare, a client outside
//! `allowed_clients`, a transfer to a beneficiary created moments ago); their text and weight are
//! data (`rules/proxy/proxy.toml`) with examples that `awxguard rules check` decides.

use crate::airwallex::model::RouteRef;
use crate::airwallex::{Access, Catalog};
use crate::finding::{Action, Finding, Recommendation, Severity};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

/// The built-in proxy rules.
pub const BUILTIN_PROXY_RULES: &str = include_str!("../../rules/proxy/proxy.toml");

/// A decision the proxy takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    UnknownToken,
    UndeclaredScope,
    ClientRefused,
    TransferHeld,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleRequest {
    pub key: String,
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub beneficiary_age_minutes: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleKey {
    pub name: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    pub keys: Vec<ExampleKey>,
    pub enforce: bool,
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    #[serde(default)]
    pub money_guard_minutes: Option<u64>,
}

/// One proxy rule: text and weight of a decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRule {
    pub id: String,
    pub name: String,
    pub check: Check,
    pub severity: Severity,
    pub severity_write: Severity,
    pub action: Action,
    pub description: String,
    pub message: String,
    pub steps: Vec<String>,
    #[serde(default)]
    pub examples: Vec<ExampleRequest>,
    #[serde(default)]
    pub negative_examples: Vec<ExampleRequest>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRules {
    pub setup: Setup,
    #[serde(rename = "rule")]
    pub rules: Vec<ProxyRule>,
}

impl ProxyRules {
    /// The built-in rules, parsed once (a unit test checks they parse).
    pub fn builtin() -> &'static ProxyRules {
        static RULES: std::sync::OnceLock<ProxyRules> = std::sync::OnceLock::new();
        RULES.get_or_init(|| {
            toml::from_str(BUILTIN_PROXY_RULES).expect("rules/proxy/proxy.toml is valid (tested)")
        })
    }

    pub fn rule(&self, check: Check) -> &ProxyRule {
        self.rules
            .iter()
            .find(|r| r.check == check)
            .expect("every check has a rule (tested)")
    }

    /// Runs every rule's examples through the proxy's decisions; returns the failures as
    /// `rule example N (must fire): detail` lines and how many examples ran.
    pub fn check_examples(&self, catalog: &Catalog) -> (Vec<String>, usize) {
        let keys = self
            .setup
            .keys
            .iter()
            .map(|k| KeyPolicy {
                name: k.name.clone(),
                fingerprint: k.name.clone(),
                allowed: Some(allowed_templates(&k.scopes, catalog)),
                enforce: true,
                ip_whitelist: Vec::new(),
            })
            .collect();
        let policy = Policy::new(
            keys,
            self.setup.enforce,
            &self.setup.allowed_clients,
            self.setup
                .money_guard_minutes
                .map(|m| Duration::from_secs(m * 60)),
        )
        .expect("setup clients are valid");
        let mut failures = Vec::new();
        let mut ran = 0;
        for r in &self.rules {
            for (must, list) in [(true, &r.examples), (false, &r.negative_examples)] {
                for (i, ex) in list.iter().enumerate() {
                    ran += 1;
                    let fired = policy.example_fires(r.check, ex, catalog);
                    if fired != must {
                        failures.push(format!(
                            "{} {} {} ({}): {} {} as {}",
                            r.id,
                            if must { "example" } else { "negative example" },
                            i + 1,
                            if must { "must fire" } else { "must not fire" },
                            ex.method,
                            ex.path,
                            ex.key
                        ));
                    }
                }
            }
        }
        (failures, ran)
    }
}

/// The templates (`GET /api/v1/transfers/{id}`) a set of catalog scopes allows.
pub fn allowed_templates(scopes: &[String], catalog: &Catalog) -> HashSet<String> {
    let mut out = HashSet::new();
    for id in scopes {
        if let Some(s) = catalog.scope(id) {
            for e in s.endpoints.iter().chain(&s.endpoints_unverified) {
                if let Some((m, p)) = e.split_once(' ') {
                    let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
                    out.insert(format!("{} /{}", m.to_ascii_uppercase(), segs.join("/")));
                }
            }
        }
    }
    out
}

/// What the proxy knows of one declared key.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub name: String,
    pub fingerprint: String,
    /// Route templates its declared scopes allow; `None` when its scopes are not known.
    pub allowed: Option<HashSet<String>>,
    /// `--enforce` names this key.
    pub enforce: bool,
    pub ip_whitelist: Vec<String>,
}

/// The proxy's rules for this run.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    by_fingerprint: HashMap<String, KeyPolicy>,
    enforce_all: bool,
    allowed_clients: Vec<ipnet::IpNet>,
    /// Hold transfers to beneficiaries created or changed less than this long ago.
    pub money_guard: Option<Duration>,
}

impl Policy {
    /// `allowed_clients`: addresses or CIDRs; empty allows every client.
    pub fn new(
        keys: Vec<KeyPolicy>,
        enforce_all: bool,
        allowed_clients: &[String],
        money_guard: Option<Duration>,
    ) -> Result<Policy, String> {
        let mut nets = Vec::new();
        for c in allowed_clients {
            let net = c
                .parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("allowed client {c:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)")
                })?;
            nets.push(net);
        }
        Ok(Policy {
            by_fingerprint: keys
                .into_iter()
                .map(|k| (k.fingerprint.clone(), k))
                .collect(),
            enforce_all,
            allowed_clients: nets,
            money_guard,
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = &KeyPolicy> {
        self.by_fingerprint.values()
    }

    pub fn key(&self, fingerprint: &str) -> Option<&KeyPolicy> {
        self.by_fingerprint.get(fingerprint)
    }

    /// Whether the proxy refuses calls of this key (a fingerprint, or `None` for an unknown
    /// one) that break a rule.
    pub fn enforced(&self, key_fp: Option<&str>) -> bool {
        self.enforce_all || key_fp.and_then(|k| self.key(k)).is_some_and(|k| k.enforce)
    }

    pub fn enforces_anything(&self) -> bool {
        self.enforce_all || self.by_fingerprint.values().any(|k| k.enforce)
    }

    /// Whether a client address may use the proxy.
    pub fn client_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed_clients.is_empty() || self.allowed_clients.iter().any(|n| n.contains(&ip))
    }

    /// The scope a call needs and the key does not declare, if any. Unknown routes, the login,
    /// unknown keys and keys whose scopes are unknown pass.
    pub fn missing_scope<'c>(&self, key_fp: &str, route: Option<RouteRef<'c>>) -> Option<&'c str> {
        let route = route?;
        let scope = route.scope?;
        let allowed = self.key(key_fp)?.allowed.as_ref()?;
        (!allowed.contains(route.template)).then_some(scope)
    }

    fn example_fires(&self, check: Check, ex: &ExampleRequest, catalog: &Catalog) -> bool {
        let route = catalog.route_ref(&ex.method, &ex.path);
        let key = (ex.key != "unknown-token").then_some(ex.key.as_str());
        match check {
            Check::UnknownToken => key.is_none(),
            Check::UndeclaredScope => {
                self.enforced(key) && key.is_some_and(|k| self.missing_scope(k, route).is_some())
            }
            Check::ClientRefused => {
                let ip: IpAddr = ex
                    .client
                    .as_deref()
                    .unwrap_or("127.0.0.1")
                    .parse()
                    .unwrap_or(IpAddr::from([127, 0, 0, 1]));
                self.enforced(key) && !self.client_allowed(ip)
            }
            Check::TransferHeld => {
                let now = Utc::now();
                let changed = ex
                    .beneficiary_age_minutes
                    .map(|m| now - chrono::Duration::minutes(m));
                route.is_some_and(|r| r.template == TRANSFER_CREATE)
                    && changed.is_some_and(|c| self.holds(c, now).is_some())
            }
        }
    }

    /// When the money guard holds a transfer to a beneficiary changed at `changed`: until when.
    pub fn holds(&self, changed: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let window = chrono::Duration::from_std(self.money_guard?).ok()?;
        let until = changed + window;
        (until > now).then_some(until)
    }
}

/// The route the money guard looks at.
pub const TRANSFER_CREATE: &str = "POST /api/v1/transfers/create";

/// Whether a matched route writes.
pub fn writes(route: Option<RouteRef<'_>>, catalog: &Catalog) -> bool {
    route
        .and_then(|r| r.scope)
        .and_then(|s| catalog.scope(s))
        .is_some_and(|s| s.access == Access::Write)
}

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// A finding of `check`: text from the rule, `vars` filled in (`finding` is added: the id).
pub fn finding(
    check: Check,
    writes: bool,
    key: &str,
    subject: &[&str],
    vars: &[(&str, &str)],
    at: DateTime<Utc>,
    evidence: serde_json::Value,
) -> Finding {
    let rule = ProxyRules::builtin().rule(check);
    let severity = if writes {
        rule.severity_write
    } else {
        rule.severity
    };
    let id = crate::finding::finding_id(&rule.id, subject);
    let mut all: Vec<(&str, &str)> = vars.to_vec();
    all.push(("key", key));
    all.push(("finding", &id));
    let mut f = Finding::new(&rule.id, severity, fill(&rule.message, &all), subject);
    f.key = Some(key.to_string());
    let t = super::record::event_time(at);
    f.start = Some(t.clone());
    f.end = Some(t);
    f.evidence = Some(evidence);
    f.recommendation = Some(Recommendation {
        action: rule.action,
        steps: rule.steps.iter().map(|s| fill(s, &all)).collect(),
        replacement: None,
    });
    f
}

/// Whether `ip` is in a key's whitelist (IPv4 CIDRs; empty means none is set).
pub fn in_whitelist(whitelist: &[String], ip: IpAddr) -> bool {
    whitelist.iter().any(|c| {
        c.parse::<ipnet::IpNet>()
            .map(|n| n.contains(&ip))
            .or_else(|_| c.parse::<IpAddr>().map(|a| a == ip))
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_rules_parse_cover_every_check_and_pass_their_examples() {
        let rules = ProxyRules::builtin();
        for c in [
            Check::UnknownToken,
            Check::UndeclaredScope,
            Check::ClientRefused,
            Check::TransferHeld,
        ] {
            rules.rule(c);
        }
        let mut ids: Vec<&str> = rules.rules.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), rules.rules.len());
        let (failures, ran) = rules.check_examples(Catalog::builtin_ref());
        assert!(failures.is_empty(), "{failures:#?}");
        assert!(ran >= 9);
    }

    #[test]
    fn findings_fill_their_templates() {
        let f = finding(
            Check::TransferHeld,
            true,
            "payvy-payouts",
            &["payvy-payouts", "ben_1"],
            &[
                ("beneficiary", "ben_1"),
                ("changed_at", "t0"),
                ("until", "t1"),
                ("method", "POST"),
                ("route", TRANSFER_CREATE),
            ],
            Utc::now(),
            serde_json::json!({}),
        );
        assert_eq!(f.rule, "proxy.transfer-held");
        assert_eq!(f.severity, Severity::Critical);
        assert!(!f.message.contains('{'), "{}", f.message);
        let steps = f.recommendation.unwrap().steps.join("\n");
        assert!(
            steps.contains(&format!("awxguard findings ack {}", f.id)),
            "{steps}"
        );
        assert!(!steps.contains('{'), "{steps}");
    }
}
