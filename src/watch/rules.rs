//! Watch rules as data: `rules/anomaly/watch.toml` (embedded), user files, disabling by id and
//! parameter overrides from `[watch]`, in the same shape as the anomaly and privilege rules. The
//! logic of each rule is a built-in detector named by `detector`; ids (`watch.*`), severities,
//! parameters, message and step templates, examples and negative examples are data.
//!
//! The anomaly rule loader of `usage::detect` (issue 9) has the same file shape; once it is on
//! main the two share one reader (only the detector table and example shape differ).

use crate::finding::{Action, Severity};
use crate::rules::{line_of, read_rule_files, toml_error, unique_ids, RuleError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The built-in watch rule files, embedded at build time.
pub const BUILTIN_WATCH_RULES: &[(&str, &str)] = &[(
    "rules/anomaly/watch.toml",
    include_str!("../../rules/anomaly/watch.toml"),
)];

/// Type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Integer,
    Float,
    Bool,
    Severity,
    /// A list of strings.
    Strings,
}

impl ParamType {
    fn toml_name(self) -> &'static str {
        match self {
            ParamType::Integer => "integer",
            ParamType::Float => "float",
            ParamType::Bool => "boolean",
            ParamType::Severity => "string",
            ParamType::Strings => "array of strings",
        }
    }
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    name: String,
    detector: String,
    severity: Severity,
    action: Action,
    #[serde(default)]
    params: toml::Table,
    description: String,
    message: String,
    #[serde(default)]
    steps: Vec<String>,
    #[serde(default)]
    examples: Vec<WatchExample>,
    #[serde(default)]
    negative_examples: Vec<WatchExample>,
}

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
#[derive(Debug, Clone)]
pub struct WatchRule {
    pub id: String,
    pub name: String,
    pub detector: String,
    pub severity: Severity,
    pub action: Action,
    pub params: toml::Table,
    pub description: String,
    pub message: String,
    pub steps: Vec<String>,
    pub examples: Vec<WatchExample>,
    pub negative_examples: Vec<WatchExample>,
    pub source: PathBuf,
}

impl WatchRule {
    /// A float parameter (checked at load time to exist with that type).
    pub fn float(&self, name: &str) -> f64 {
        self.params
            .get(name)
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
            .unwrap_or(0.0)
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> i64 {
        self.params
            .get(name)
            .and_then(|v| v.as_integer())
            .unwrap_or(0)
    }

    /// A boolean parameter.
    pub fn flag(&self, name: &str) -> bool {
        self.params
            .get(name)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// A severity parameter, or the rule's severity.
    pub fn severity_param(&self, name: &str) -> Severity {
        self.params
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.severity)
    }

    /// A list-of-strings parameter.
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.params
            .get(name)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

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
            if is_watch_file(&text) {
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
            apply_override(rule, table)?;
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

/// Whether a user rule file holds watch rules (ids `watch.*`), so directories shared with other
/// rule kinds can be given to every loader.
fn is_watch_file(text: &str) -> bool {
    let Ok(t) = text.parse::<toml::Table>() else {
        return false; // the file's own loader reports its syntax error
    };
    t.get("rule")
        .and_then(|r| r.as_array())
        .is_some_and(|rules| {
            rules.iter().any(|r| {
                r.get("id")
                    .and_then(|i| i.as_str())
                    .is_some_and(|i| i.starts_with("watch."))
            })
        })
}

fn param_spec(detector: &str) -> &'static [(&'static str, ParamType)] {
    DETECTORS
        .iter()
        .find(|(d, _)| *d == detector)
        .map(|(_, p)| *p)
        .unwrap_or(&[])
}

fn check_param(name: &str, ty: ParamType, v: &toml::Value) -> Result<(), String> {
    let ok = match ty {
        ParamType::Integer => v.as_integer().is_some(),
        ParamType::Float => v.as_float().is_some() || v.as_integer().is_some(),
        ParamType::Bool => v.as_bool().is_some(),
        ParamType::Severity => v.as_str().is_some_and(|s| s.parse::<Severity>().is_ok()),
        ParamType::Strings => v
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s.as_str().is_some())),
    };
    if !ok {
        return Err(format!(
            "parameter {name}: expected {}, got {}",
            if ty == ParamType::Severity {
                "a severity (info, low, medium, high, critical)"
            } else {
                ty.toml_name()
            },
            v.type_str()
        ));
    }
    let positive = match ty {
        ParamType::Integer => v.as_integer().is_none_or(|n| n > 0),
        ParamType::Float => v
            .as_float()
            .or_else(|| v.as_integer().map(|i| i as f64))
            .is_none_or(|f| f > 0.0 && f.is_finite()),
        _ => true,
    };
    if !positive {
        return Err(format!("parameter {name}: must be a positive number"));
    }
    if name.ends_with("_share") && v.as_float().is_some_and(|f| f > 1.0) {
        return Err(format!("parameter {name}: a share, expected at most 1.0"));
    }
    Ok(())
}

fn apply_override(rule: &mut WatchRule, table: &toml::Table) -> Result<(), RuleError> {
    let invalid = |message: String| RuleError::Invalid {
        path: PathBuf::from("config [watch.params]"),
        id: rule.id.clone(),
        message,
    };
    let spec = param_spec(&rule.detector);
    for (k, v) in table {
        if k == "severity" {
            let s = v
                .as_str()
                .ok_or_else(|| invalid("severity: expected a string".into()))?;
            rule.severity = s.parse().map_err(|e: String| invalid(e))?;
            continue;
        }
        let Some((_, ty)) = spec.iter().find(|(n, _)| n == k) else {
            let mut known: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            known.push("severity");
            return Err(invalid(format!(
                "override parameter {k:?} does not exist (known: {})",
                known.join(", ")
            )));
        };
        check_param(k, *ty, v).map_err(|m| invalid(format!("override {m}")))?;
        rule.params.insert(k.clone(), v.clone());
    }
    Ok(())
}

fn parse_file(path: &Path, text: &str) -> Result<Vec<WatchRule>, RuleError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    let mut out = Vec::new();
    for r in raw.rule {
        let line = text
            .find(&format!("\"{}\"", r.id))
            .map(|o| line_of(text, o))
            .unwrap_or(1);
        let parse_err = |message: String| RuleError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        };
        if !valid_id(&r.id) {
            return Err(parse_err(format!(
                "rule id {:?} must be dotted lowercase words beginning watch.",
                r.id
            )));
        }
        let Some((_, spec)) = DETECTORS.iter().find(|(d, _)| *d == r.detector) else {
            let names: Vec<&str> = DETECTORS.iter().map(|(d, _)| *d).collect();
            return Err(parse_err(format!(
                "rule {}: detector {:?} is not a built-in watch detector (known: {})",
                r.id,
                r.detector,
                names.join(", ")
            )));
        };
        for (name, ty) in *spec {
            match r.params.get(*name) {
                None => {
                    return Err(parse_err(format!(
                        "rule {}: detector {} needs parameter {name} ({})",
                        r.id,
                        r.detector,
                        ty.toml_name()
                    )))
                }
                Some(v) => check_param(name, *ty, v)
                    .map_err(|m| parse_err(format!("rule {}: {m}", r.id)))?,
            }
        }
        for k in r.params.keys() {
            if !spec.iter().any(|(n, _)| n == k) {
                return Err(parse_err(format!(
                    "rule {}: detector {} has no parameter {k:?}",
                    r.id, r.detector
                )));
            }
        }
        for t in std::iter::once(&r.message).chain(&r.steps) {
            for p in crate::rules::placeholders(t) {
                if !PLACEHOLDERS.contains(&p) {
                    return Err(parse_err(format!(
                        "rule {}: unknown placeholder {{{p}}} (known: {})",
                        r.id,
                        PLACEHOLDERS.join(", ")
                    )));
                }
            }
        }
        if r.examples.is_empty() || r.negative_examples.is_empty() {
            return Err(parse_err(format!(
                "rule {}: give at least one example and one negative example",
                r.id
            )));
        }
        out.push(WatchRule {
            id: r.id,
            name: r.name,
            detector: r.detector,
            severity: r.severity,
            action: r.action,
            params: r.params,
            description: r.description,
            message: r.message,
            steps: r.steps,
            examples: r.examples,
            negative_examples: r.negative_examples,
            source: path.to_path_buf(),
        });
    }
    Ok(out)
}

fn valid_id(id: &str) -> bool {
    id.starts_with("watch.") && crate::rules::id_words_valid(id)
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
