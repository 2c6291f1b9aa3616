//! Anomaly rules as data: `rules/anomaly/*.toml` (embedded), user files, disabling by id and
//! parameter overrides from config, exactly as for privilege rules. The logic of each rule is a
//! built-in detector named by `detector`; ids, severities, parameters, message and step
//! templates, examples and negative examples are data.

use crate::rules::detector::{DetectorRule, Family};
use crate::rules::{read_rule_files, unique_ids, RuleError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The built-in anomaly rule files, embedded at build time.
pub const BUILTIN_ANOMALY_RULES: &[(&str, &str)] = &[
    (
        "rules/anomaly/rate.toml",
        include_str!("../../../rules/anomaly/rate.toml"),
    ),
    (
        "rules/anomaly/novelty.toml",
        include_str!("../../../rules/anomaly/novelty.toml"),
    ),
    (
        "rules/anomaly/usage.toml",
        include_str!("../../../rules/anomaly/usage.toml"),
    ),
];

pub use crate::rules::detector::ParamType;

const RATE_SPIKE_PARAMS: &[(&str, ParamType)] = &[
    ("alpha", ParamType::Float),
    ("alpha_weak", ParamType::Float),
    ("min_ratio", ParamType::Float),
    ("weak_ratio", ParamType::Float),
    ("min_excess", ParamType::Integer),
    ("burst_min_excess", ParamType::Integer),
    ("writes_min_excess", ParamType::Integer),
    ("persist_hours", ParamType::Integer),
    ("seasonal_weeks", ParamType::Integer),
    ("lookback_weeks", ParamType::Integer),
    ("dispersion", ParamType::Float),
    ("learning_ratio", ParamType::Float),
    ("new_key_floor", ParamType::Integer),
    ("severity_writes", ParamType::Severity),
];

const RATE_PARAMS: &[(&str, ParamType)] = &[
    ("alpha", ParamType::Float),
    ("alpha_weak", ParamType::Float),
    ("min_ratio", ParamType::Float),
    ("weak_ratio", ParamType::Float),
    ("min_excess", ParamType::Integer),
    ("persist_hours", ParamType::Integer),
    ("seasonal_weeks", ParamType::Integer),
    ("lookback_weeks", ParamType::Integer),
    ("dispersion", ParamType::Float),
    ("learning_ratio", ParamType::Float),
    ("new_key_floor", ParamType::Integer),
];

/// The built-in detectors a rule can name, with the parameters each reads.
pub const DETECTORS: &[(&str, &[(&str, ParamType)])] = &[
    ("rate-spike", RATE_SPIKE_PARAMS),
    ("error-burst", RATE_PARAMS),
    (
        "new-network",
        &[
            ("learning_days", ParamType::Integer),
            ("ipv4_prefix", ParamType::Integer),
            ("ipv6_prefix", ParamType::Integer),
            ("churn_days", ParamType::Integer),
            ("churn_limit", ParamType::Integer),
            ("severity_write", ParamType::Severity),
        ],
    ),
    (
        "new-user-agent",
        &[
            ("learning_days", ParamType::Integer),
            ("ignore_versions", ParamType::Bool),
            ("churn_days", ParamType::Integer),
            ("churn_limit", ParamType::Integer),
            ("severity_write", ParamType::Severity),
        ],
    ),
    (
        "new-route",
        &[
            ("learning_days", ParamType::Integer),
            ("reads", ParamType::Bool),
            ("severity_write", ParamType::Severity),
            ("severity_sensitive", ParamType::Severity),
        ],
    ),
    (
        "off-hours",
        &[
            ("learning_days", ParamType::Integer),
            ("tolerance_hours", ParamType::Integer),
            ("max_active_share", ParamType::Float),
            ("stable_days", ParamType::Integer),
            ("max_new_slots", ParamType::Integer),
            ("min_calls", ParamType::Integer),
            ("severity_write", ParamType::Severity),
        ],
    ),
    (
        "dormant-key-active",
        &[
            ("days", ParamType::Integer),
            ("coverage_share", ParamType::Float),
            ("severity_write", ParamType::Severity),
        ],
    ),
    (
        "outside-whitelist",
        &[
            ("ipv4_prefix", ParamType::Integer),
            ("severity_write", ParamType::Severity),
        ],
    ),
    (
        "undeclared-scope",
        &[("severity_write", ParamType::Severity)],
    ),
    ("unknown-key", &[]),
];

/// Placeholders a message or step may use; anything else is a load error.
pub const PLACEHOLDERS: &[&str] = &[
    "key",
    "window",
    "start",
    "end",
    "duration",
    "metric",
    "observed",
    "expected",
    "band_low",
    "band_high",
    "baseline",
    "learning_until",
    "peak",
    "network",
    "networks",
    "address",
    "user_agent",
    "route",
    "access",
    "scope",
    "calls",
    "writes",
    "ok",
    "refused",
    "throttled",
    "statuses",
    "days",
    "slot",
    "whitelist",
    "declared_scopes",
    "first_seen",
    "last_seen",
];

/// What anomaly rules may say: ids `anomaly.*` and `usage.*`, the built-in detectors and
/// placeholders.
pub const FAMILY: Family = Family {
    kind: "anomaly",
    prefixes: &["anomaly.", "usage."],
    detectors: DETECTORS,
    placeholders: PLACEHOLDERS,
    overrides_from: "config",
};

/// A small stream a rule must fire on (`examples`) or stay silent on (`negative_examples`):
/// regular background traffic, bursts, literal usage-event lines and key declarations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyExample {
    #[serde(default)]
    pub background: Vec<Background>,
    #[serde(default)]
    pub bursts: Vec<Burst>,
    /// Usage events, one contract line each.
    #[serde(default)]
    pub usage: Vec<String>,
    /// Declared keys (for the whitelist and scope checks).
    #[serde(default)]
    pub keys: Vec<ExampleKey>,
    /// Only signals starting at or after this time count (e.g. to show that a batch seen in
    /// earlier weeks is no anomaly once learnt).
    #[serde(default)]
    pub judge_from: Option<DateTime<Utc>>,
}

fn get() -> String {
    "GET".into()
}
fn transfers() -> String {
    "/api/v1/transfers".into()
}
fn ok() -> u16 {
    200
}
fn ten() -> u32 {
    10
}

/// Regular traffic: `per_hour` calls in every active hour between `from` and `to`, spread evenly.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Background {
    pub key: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub per_hour: u32,
    /// Active hours of the day, UTC, `"08-18"` (08:00 to 17:59); default every hour.
    #[serde(default)]
    pub hours: Option<String>,
    /// Active days: `"mon-fri"`, `"mon"`, `"sat-sun"`...; default every day.
    #[serde(default)]
    pub days: Option<String>,
    #[serde(default = "get")]
    pub method: String,
    #[serde(default = "transfers")]
    pub path: String,
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub via: Option<String>,
}

/// `count` calls spread over `minutes` from `at`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    pub key: String,
    pub at: DateTime<Utc>,
    pub count: u32,
    #[serde(default = "ten")]
    pub minutes: u32,
    #[serde(default = "get")]
    pub method: String,
    #[serde(default = "transfers")]
    pub path: String,
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub via: Option<String>,
}

/// A declared key, as written in rule examples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleKey {
    pub name: String,
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
    /// The scopes it declares; absent: every scope (an admin key).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// One anomaly rule in force.
pub type AnomalyRule = DetectorRule<AnomalyExample>;

/// The anomaly rules in force.
#[derive(Debug, Clone, Default)]
pub struct AnomalyRules {
    pub rules: Vec<AnomalyRule>,
}

impl AnomalyRules {
    /// Built-in rules plus `extra` (files or directories; files without anomaly rules, whose
    /// rules have no `detector`, are skipped), less `disabled`, with parameter overrides by rule
    /// id (`{"anomaly.rate-spike": {"min_excess": 50}}`; `severity` may be overridden too).
    pub fn load(
        extra: &[PathBuf],
        disabled: &[String],
        overrides: &BTreeMap<String, toml::Table>,
    ) -> Result<AnomalyRules, RuleError> {
        let mut rules = Vec::new();
        for (name, text) in BUILTIN_ANOMALY_RULES {
            rules.extend(parse_file(Path::new(name), text)?);
        }
        for (path, text) in read_rule_files(extra)? {
            if FAMILY.claims(&text) {
                rules.extend(parse_file(&path, &text)?);
            }
        }
        let seen = unique_ids(rules.iter().map(|r| (r.id.as_str(), r.source.as_path())))?;
        let usage_ids: Vec<String> = rules
            .iter()
            .filter(|r| r.id.starts_with("usage."))
            .map(|r| r.id.clone())
            .collect();
        let ours = |id: &str| id.starts_with("anomaly.") || usage_ids.iter().any(|u| u == id);
        let known = || {
            let mut k: Vec<&str> = seen
                .keys()
                .map(|s| s.as_str())
                .filter(|s| s.starts_with("anomaly.") || s.starts_with("usage."))
                .collect();
            k.sort();
            k.join(", ")
        };
        for id in disabled {
            // a disabled id may name a leak or privilege rule: only complain about ours
            if !seen.contains_key(id) && id.starts_with("anomaly.") {
                return Err(RuleError::UnknownDisabled {
                    id: id.clone(),
                    known: known(),
                });
            }
        }
        for (id, table) in overrides {
            if !ours(id) {
                if id.starts_with("anomaly.") {
                    return Err(RuleError::Invalid {
                        path: PathBuf::from("config"),
                        id: id.clone(),
                        message: format!(
                            "override for a rule that does not exist (known: {})",
                            known()
                        ),
                    });
                }
                continue;
            }
            let rule = rules
                .iter_mut()
                .find(|r| &r.id == id)
                .expect("checked above");
            rule.apply_override(&FAMILY, table)?;
        }
        rules.retain(|r| !disabled.contains(&r.id));
        Ok(AnomalyRules { rules })
    }

    /// Only the built-in rules.
    pub fn builtin() -> AnomalyRules {
        AnomalyRules::load(&[], &[], &BTreeMap::new())
            .expect("built-in anomaly rules are valid (tested)")
    }

    pub fn get(&self, id: &str) -> Option<&AnomalyRule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The rules using `detector`.
    pub fn with_detector<'a>(&'a self, detector: &'a str) -> impl Iterator<Item = &'a AnomalyRule> {
        self.rules.iter().filter(move |r| r.detector == detector)
    }
}

fn parse_file(path: &Path, text: &str) -> Result<Vec<AnomalyRule>, RuleError> {
    crate::rules::detector::parse_file(&FAMILY, path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::airwallex::Catalog;

    #[test]
    fn builtin_rules_load_with_unique_ids_and_every_detector_used() {
        let r = AnomalyRules::builtin();
        let mut ids: Vec<&str> = r.rules.iter().map(|r| r.id.as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "rule ids must be unique");
        for (d, _) in DETECTORS {
            assert!(r.with_detector(d).next().is_some(), "detector {d} unused");
        }
        for id in [
            "anomaly.rate-spike",
            "anomaly.error-burst",
            "anomaly.new-network",
            "anomaly.new-user-agent",
            "anomaly.off-hours",
            "anomaly.new-route",
            "anomaly.dormant-key-active",
            "usage.outside-whitelist",
            "usage.undeclared-scope",
        ] {
            assert!(r.get(id).is_some(), "{id}");
        }
    }

    #[test]
    fn builtin_examples_pass() {
        let (failures, ran) = AnomalyRules::builtin().check_examples(&Catalog::builtin());
        assert!(ran >= 20, "{ran}");
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn overrides_are_checked_and_disabling_works() {
        let mut o = BTreeMap::new();
        o.insert(
            "anomaly.rate-spike".to_string(),
            toml::toml! { min_excess = 50
            alpha = 1e-7 },
        );
        let r = AnomalyRules::load(&[], &["anomaly.off-hours".into()], &o).unwrap();
        let spike = r.get("anomaly.rate-spike").unwrap();
        assert_eq!(spike.int("min_excess"), 50);
        assert_eq!(spike.float("alpha"), 1e-7);
        assert!(r.get("anomaly.off-hours").is_none());
        for (bad, words) in [
            (
                toml::toml! { min_exces = 50 },
                vec!["min_exces", "min_excess"],
            ),
            (toml::toml! { min_excess = "50" }, vec!["expected integer"]),
            (toml::toml! { alpha = 0.9 }, vec!["tail probability"]),
            (toml::toml! { min_excess = -1 }, vec!["positive"]),
            (toml::toml! { severity_writes = "urgent" }, vec!["severity"]),
        ] {
            let mut o = BTreeMap::new();
            o.insert("anomaly.rate-spike".to_string(), bad);
            let e = AnomalyRules::load(&[], &[], &o).unwrap_err().to_string();
            for w in words {
                assert!(e.contains(w), "{e}");
            }
        }
        let e = AnomalyRules::load(&[], &["anomaly.nope".into()], &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("anomaly.nope") && e.contains("anomaly.rate-spike"),
            "{e}"
        );
        // privilege and leak ids are someone else's: no complaint here
        AnomalyRules::load(&[], &["privilege.admin-key".into()], &BTreeMap::new()).unwrap();
    }

    #[test]
    fn bad_rule_files_say_file_line_and_what() {
        let text = r#"
[[rule]]
id = "anomaly.local.mine"
name = "x"
detector = "new-route"
severity = "low"
action = "investigate"
description = "d"
message = "{key} {nope}"
params = { learning_days = 7, reads = true, severity_write = "high", severity_sensitive = "high" }
[[rule.examples]]
[[rule.negative_examples]]
"#;
        let e = parse_file(Path::new("mine.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mine.toml:3: ") && e.contains("{nope}"),
            "{e}"
        );
        let e = parse_file(Path::new("mine.toml"), &text.replace("new-route", "magic"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("magic") && e.contains("rate-spike"), "{e}");
        let e = parse_file(
            Path::new("mine.toml"),
            &text
                .replace("learning_days = 7, ", "")
                .replace(" {nope}", ""),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs parameter learning_days"), "{e}");
    }

    #[test]
    fn user_files_add_rules_and_skip_other_rule_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("leak.toml"),
            "[[rule]]\nid = \"leak.local.x\"\nname = \"x\"\nkeywords = [\"abc\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            r#"
[[rule]]
id = "anomaly.local.any-new-write"
name = "Any new write route, even in learning"
detector = "new-route"
severity = "medium"
action = "investigate"
description = "d"
message = "{key}: {route}"
params = { learning_days = 1, reads = false, severity_write = "high", severity_sensitive = "critical" }
[[rule.examples]]
background = [{ key = "erp", from = "2026-10-05T00:00:00Z", to = "2026-10-09T00:00:00Z", per_hour = 5 }]
usage = ['{"ts":"2026-10-08T10:15:00Z","key":"erp","method":"POST","path":"/api/v1/webhooks/create","status":201}']
[[rule.negative_examples]]
background = [{ key = "erp", from = "2026-10-05T00:00:00Z", to = "2026-10-09T00:00:00Z", per_hour = 5 }]
usage = ['{"ts":"2026-10-08T10:15:00Z","key":"erp","method":"GET","path":"/api/v1/webhooks","status":200}']
"#,
        )
        .unwrap();
        let r = AnomalyRules::load(&[dir.path().to_path_buf()], &[], &BTreeMap::new()).unwrap();
        assert!(r.get("anomaly.local.any-new-write").is_some());
        let (failures, _) = r.check_examples(&Catalog::builtin());
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
