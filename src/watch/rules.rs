//! Watch rules as data: `rules/anomaly/watch.toml` (embedded), user files, disabling by id and
//! parameter overrides from `[watch]`, in the same shape as the anomaly and privilege rules. The
//! logic of each rule is a built-in detector named by `detector`; ids (`watch.*`), severities,
//! parameters, message and step templates, examples and negative examples are data.
//! The file shape and its reader are `crate::rules::detector`'s, shared with the anomaly rules;
//! this module gives the detectors, placeholders and example shape.

use crate::finding::Severity;
use crate::rules::detector::{DetectorRule, Family};
use crate::rules::{read_rule_files, unique_ids, RuleError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The built-in watch rule files, embedded at build time.
pub const BUILTIN_WATCH_RULES: &[(&str, &str)] = &[(
    "rules/anomaly/watch.toml",
    include_str!("../../rules/anomaly/watch.toml"),
)];

pub use crate::rules::detector::ParamType;

use ParamType::{Bool, Float, Integer, Strings};

/// The built-in detectors a rule can name, with the parameters each reads.
pub const DETECTORS: &[(&str, &[(&str, ParamType)])] = &[
    (
        "new-payee-paid",
        &[("minutes", Integer), ("unknown_payee", Bool)],
    ),
    (
        "amount-outlier",
        &[
            ("min_history", Integer),
            ("z", Float),
            ("min_ratio", Float),
            ("spread_floor", Float),
            ("history_days", Integer),
        ],
    ),
    (
        "new-destination",
        &[
            ("min_history", Integer),
            ("history_days", Integer),
            ("countries", Bool),
            ("currencies", Bool),
        ],
    ),
    (
        "payout-burst",
        &[
            ("window_minutes", Integer),
            ("min_count", Integer),
            ("ratio", Float),
            ("sum_ratio", Float),
            ("min_history", Integer),
            ("history_days", Integer),
        ],
    ),
    (
        "webhook-changed",
        &[
            ("trusted_hosts", Strings),
            ("severity_trusted", ParamType::Severity),
        ],
    ),
    (
        "balance-drop",
        &[
            ("window_hours", Integer),
            ("z", Float),
            ("min_share", Float),
            ("cold_share", Float),
            ("min_windows", Integer),
            ("history_days", Integer),
        ],
    ),
];

/// Placeholders a message or step may use; anything else is a load error.
pub const PLACEHOLDERS: &[&str] = &[
    "watcher",
    "transfer",
    "transfers",
    "beneficiary",
    "payee",
    "amount",
    "currency",
    "country",
    "what",
    "age",
    "minutes",
    "transfer_at",
    "changed_at",
    "made_by",
    "concern",
    "median",
    "ratio",
    "band_high",
    "baseline",
    "history",
    "count",
    "window",
    "start",
    "end",
    "sums",
    "expected",
    "webhook",
    "url",
    "previous_url",
    "host",
    "drop",
    "share",
    "peak",
    "balance",
    "outflows",
];

/// What watch rules may say: ids `watch.*`, the built-in detectors and placeholders.
pub const FAMILY: Family = Family {
    kind: "watch",
    prefixes: &["watch."],
    detectors: DETECTORS,
    placeholders: PLACEHOLDERS,
    overrides_from: "config [watch.params]",
};

fn yes() -> bool {
    true
}

/// A small account a rule must fire on (`examples`) or stay silent on (`negative_examples`):
/// objects known from earlier polls and objects new in this one (`new = true`), the calls the
/// proxy recorded, and the open findings in the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchExample {
    /// The poll's time (default: the latest object time).
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    #[serde(default)]
    pub beneficiaries: Vec<ExampleBeneficiary>,
    #[serde(default)]
    pub transfers: Vec<ExampleTransfer>,
    #[serde(default)]
    pub webhooks: Vec<ExampleWebhook>,
    #[serde(default)]
    pub balances: Vec<ExampleBalance>,
    /// Calls the proxy recorded with the objects they created or changed.
    #[serde(default)]
    pub proxied: Vec<ExampleCall>,
    /// Findings open in the store (a leak, an anomaly) on a key.
    #[serde(default)]
    pub open_findings: Vec<ExampleOpen>,
    /// Payees Airwallex says no longer exist.
    #[serde(default)]
    pub deleted_beneficiaries: Vec<String>,
    /// On a first run, webhooks created before this are the account's baseline.
    #[serde(default)]
    pub first_run_since: Option<DateTime<Utc>>,
    /// The finding must name this key (`""`: no key, a change from outside the proxy).
    #[serde(default)]
    pub expect_key: Option<String>,
    /// The finding must have this severity.
    #[serde(default)]
    pub expect_severity: Option<Severity>,
}

/// Copies of an object `every_minutes` apart (ids suffixed `-0`, `-1`, ...).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    pub times: u32,
    #[serde(default)]
    pub every_minutes: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleBeneficiary {
    pub id: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub bank_changed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub new: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleTransfer {
    pub id: String,
    #[serde(default)]
    pub beneficiary_id: Option<String>,
    pub amount: f64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub new: bool,
    #[serde(default)]
    pub repeat: Option<Repeat>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleWebhook {
    pub id: String,
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// The URL before this poll saw it change.
    #[serde(default)]
    pub previous_url: Option<String>,
    #[serde(default)]
    pub new: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleBalance {
    #[serde(default)]
    pub id: Option<String>,
    pub currency: String,
    pub balance: f64,
    /// Added to the balance at each repetition.
    #[serde(default)]
    pub step: f64,
    pub posted_at: DateTime<Utc>,
    #[serde(default)]
    pub new: bool,
    #[serde(default)]
    pub repeat: Option<Repeat>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleCall {
    /// The object id the call created or changed.
    pub object: String,
    pub key: String,
    #[serde(default = "post")]
    pub method: String,
    pub path: String,
}

fn post() -> String {
    "POST".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleOpen {
    pub rule: String,
    pub key: String,
    #[serde(default = "yes")]
    pub open: bool,
}

/// One watch rule in force.
pub type WatchRule = DetectorRule<WatchExample>;

/// The watch rules in force.
#[derive(Debug, Clone, Default)]
pub struct WatchRules {
    pub rules: Vec<WatchRule>,
}

impl WatchRules {
    /// Built-in rules plus `extra` (files or directories; files whose rules are not `watch.*`
    /// are skipped), less `disabled`, with parameter overrides by rule id
    /// (`{"watch.new-payee-paid": {"minutes": 120}}`; `severity` may be overridden too).
    pub fn load(
        extra: &[PathBuf],
        disabled: &[String],
        overrides: &BTreeMap<String, toml::Table>,
    ) -> Result<WatchRules, RuleError> {
        let mut rules = Vec::new();
        for (name, text) in BUILTIN_WATCH_RULES {
            rules.extend(parse_file(Path::new(name), text)?);
        }
        for (path, text) in read_rule_files(extra)? {
            if FAMILY.claims(&text) {
                rules.extend(parse_file(&path, &text)?);
            }
        }
        let seen = unique_ids(rules.iter().map(|r| (r.id.as_str(), r.source.as_path())))?;
        let known = || {
            let mut k: Vec<&str> = seen.keys().map(|s| s.as_str()).collect();
            k.sort();
            k.join(", ")
        };
        for id in disabled {
            if !seen.contains_key(id) {
                return Err(RuleError::UnknownDisabled {
                    id: id.clone(),
                    known: known(),
                });
            }
        }
        for (id, table) in overrides {
            let Some(rule) = rules.iter_mut().find(|r| &r.id == id) else {
                return Err(RuleError::Invalid {
                    path: PathBuf::from("config [watch.params]"),
                    id: id.clone(),
                    message: format!(
                        "override for a rule that does not exist (known: {})",
                        known()
                    ),
                });
            };
            rule.apply_override(&FAMILY, table)?;
        }
        rules.retain(|r| !disabled.contains(&r.id));
        Ok(WatchRules { rules })
    }

    /// Only the built-in rules.
    pub fn builtin() -> WatchRules {
        WatchRules::load(&[], &[], &BTreeMap::new())
            .expect("built-in watch rules are valid (tested)")
    }

    /// The rules using `detector`.
    pub fn with_detector<'a>(&'a self, detector: &'a str) -> impl Iterator<Item = &'a WatchRule> {
        self.rules.iter().filter(move |r| r.detector == detector)
    }
}

fn parse_file(path: &Path, text: &str) -> Result<Vec<WatchRule>, RuleError> {
    crate::rules::detector::parse_file(&FAMILY, path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load_with_unique_ids() {
        let r = WatchRules::builtin();
        let ids: Vec<&str> = r.rules.iter().map(|r| r.id.as_str()).collect();
        for want in [
            "watch.new-payee-paid",
            "watch.amount-outlier",
            "watch.new-destination",
            "watch.payout-burst",
            "watch.webhook-changed",
            "watch.balance-drop",
        ] {
            assert!(ids.contains(&want), "{want} missing");
        }
    }

    #[test]
    fn disable_and_override_like_the_privilege_rules() {
        let mut o = BTreeMap::new();
        o.insert(
            "watch.new-payee-paid".to_string(),
            toml::toml! { minutes = 240 severity = "critical" },
        );
        let r = WatchRules::load(&[], &["watch.balance-drop".into()], &o).unwrap();
        assert!(r.rules.iter().all(|r| r.id != "watch.balance-drop"));
        let p = r.with_detector("new-payee-paid").next().unwrap();
        assert_eq!((p.int("minutes"), p.severity), (240, Severity::Critical));
        let err = WatchRules::load(&[], &["watch.nope".into()], &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("watch.nope"), "{err}");
        let mut o = BTreeMap::new();
        o.insert(
            "watch.new-payee-paid".to_string(),
            toml::toml! { hours = 2 },
        );
        let err = WatchRules::load(&[], &[], &o).unwrap_err().to_string();
        assert!(err.contains("\"hours\" does not exist"), "{err}");
    }

    #[test]
    fn bad_rule_files_say_where() {
        let text = "[[rule]]\nid = \"watch.x\"\nname = \"x\"\ndetector = \"new-payee-paid\"\n\
                    severity = \"high\"\naction = \"investigate\"\ndescription = \"d\"\n\
                    message = \"{nope}\"\nparams = { minutes = 5, unknown_payee = true }\n";
        let err = parse_file(Path::new("u.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("u.toml:2: rule watch.x: unknown placeholder {nope}"),
            "{err}"
        );
        let text = text
            .replace("{nope}", "m")
            .replace("minutes = 5", "minutes = -5");
        let err = parse_file(Path::new("u.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("minutes: must be a positive number"), "{err}");
    }
}
