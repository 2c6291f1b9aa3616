//! Privilege rules as data: `rules/privilege/*.toml` (embedded), user directories, disabling by
//! id and parameter overrides from config. The logic of each rule is a built-in evaluator named
//! by its `check`; ids, severities, parameters, messages and remediation templates are data.

use super::check::Check;
use super::Catalog;
use crate::airwallex::tier_scopes;
use crate::airwallex::{Environment, KeyKind};
use crate::finding::{Action, Severity, Verification};
use crate::inventory::{KeyDescription, KeyFacts, LeakFact, LoginFacts, SecretSource, Storage};
use crate::rules::{
    line_of, read_rule_files, toml_error, unique_ids, RuleError, BUILTIN_PRIVILEGE_RULES,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Placeholders a message or step may use; anything else is a load error.
pub const PLACEHOLDERS: &[&str] = &[
    "key",
    "environment",
    "kind",
    "owner",
    "integration",
    "integration_place",
    "scopes",
    "days",
    "permissions",
    "evidence_summary",
    "write_scopes",
    "unused_scopes",
    "unused_count",
    "replacement_name",
    "replacement_scopes",
    "replacement_ips",
    "coverage_start",
    "first_seen",
    "last_seen",
    "age_days",
    "consumers",
    "consumer_count",
    "wrong_environment",
    "wrong_hosts",
    "wrong_count",
    "declared_at",
    "secret_path",
    "readable_by",
    "file_mode",
    "work_tree",
    "missing",
    "login_detail",
    "leak_count",
    "leak_places",
    "found_at",
    "secret_problem",
    "evidence_key",
    "events",
    "source_ips",
    "user_agents",
    "unknown_count",
    "unknown_routes",
    "reason",
    "not_judged_rules",
    "login_state",
    "plaintext_count",
    "plaintext_places",
    "plaintext_files",
    "config_problems",
    "mismatch",
    "replacement_role",
    "network",
    "address",
    "whitelist",
    "calls",
    "ok",
    "writes",
    "window",
    "scope",
    "route",
    "declared_scopes",
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
    check: String,
    severity: Severity,
    #[serde(default)]
    severity_production: Option<Severity>,
    #[serde(default)]
    severity_sandbox: Option<Severity>,
    action: Action,
    #[serde(default)]
    params: toml::Table,
    description: String,
    message: String,
    #[serde(default)]
    steps: Vec<String>,
    /// Checks whose findings on the same key this rule's finding carries (`also`) instead of
    /// their being reported on their own (folding: one incident, one finding).
    #[serde(default)]
    folds: Vec<String>,
    /// Steps this rule's finding adds to the one that carries it when folded.
    #[serde(default)]
    folded_steps: Vec<String>,
    /// Steps it adds only to a carrier without a replacement key of its own (a leak, a revoked
    /// key): what the new key should be.
    #[serde(default)]
    folded_replacement_steps: Vec<String>,
    #[serde(default)]
    examples: Vec<Example>,
    #[serde(default)]
    negative_examples: Vec<Example>,
}

/// A small fact set a rule must fire on (`examples`) or stay silent on (`negative_examples`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub keys: Vec<ExampleKey>,
    /// Usage events, one contract line each.
    #[serde(default)]
    pub usage: Vec<String>,
    /// The time of the evaluation; default 2026-11-24T12:00:00Z.
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
}

impl Example {
    /// The time the example is evaluated at.
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(|| {
            DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
                .expect("valid")
                .with_timezone(&Utc)
        })
    }
}

fn yes() -> bool {
    true
}
fn production() -> Environment {
    Environment::Production
}
fn custom() -> KeyKind {
    KeyKind::Custom
}
fn env_source() -> String {
    "env".into()
}

/// A `KeyFacts` with defaults, as written in rule examples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleKey {
    pub name: String,
    #[serde(default = "yes")]
    pub declared: bool,
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default = "production")]
    pub environment: Environment,
    #[serde(default = "custom")]
    pub kind: KeyKind,
    /// Scopes of a custom key (other kinds expand from the catalog).
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub integration: Option<String>,
    #[serde(default)]
    pub created: Option<NaiveDate>,
    #[serde(default)]
    pub rotated: Option<NaiveDate>,
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
    #[serde(default)]
    pub consumers: Vec<String>,
    /// `env`, `file` or `literal`.
    #[serde(default = "env_source")]
    pub secret: String,
    /// A literal secret the config accepts (`allow_literal = true`).
    #[serde(default)]
    pub allow_literal: bool,
    #[serde(default)]
    pub file_mode: Option<u32>,
    #[serde(default)]
    pub world_readable: bool,
    #[serde(default)]
    pub group_readable: bool,
    #[serde(default)]
    pub git_work_tree: Option<PathBuf>,
    #[serde(default)]
    pub plaintext: Vec<String>,
    #[serde(default)]
    pub secret_problem: Option<String>,
    /// `live`, `revoked`, `forbidden` or `unknown`.
    #[serde(default)]
    pub login: Option<Verification>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// `path:line` places where the scanner found the key.
    #[serde(default)]
    pub leaks: Vec<String>,
    /// Problems with values of the declaration (`file:line: field: what is wrong`).
    #[serde(default)]
    pub config_problems: Vec<String>,
}

impl ExampleKey {
    /// The full facts, with tiers expanded from `catalog`.
    pub fn to_facts(&self, catalog: &Catalog) -> KeyFacts {
        let source = match self.secret.as_str() {
            "literal" => SecretSource::Literal {
                accepted: self.allow_literal,
            },
            "file" => SecretSource::File {
                path: PathBuf::from(format!("/etc/awxguard/{}.key", self.name)),
            },
            _ => SecretSource::Env {
                var: format!("{}_AIRWALLEX_API_KEY", self.name.to_ascii_uppercase()),
            },
        };
        KeyFacts {
            key: KeyDescription {
                name: self.name.clone(),
                client_id: "Xq3vT0bKp9LmN2cR5sWy7A".into(),
                environment: self.environment,
                kind: self.kind,
                scopes: self.scopes.clone(),
                owner: self.owner.clone(),
                purpose: self.purpose.clone(),
                integration: self.integration.clone(),
                created: self.created,
                rotated: self.rotated,
                ip_whitelist: self.ip_whitelist.clone(),
                consumers: self.consumers.clone(),
                declared_at: if self.declared {
                    "awxguard.toml:1".to_string()
                } else {
                    String::new()
                },
                config_problems: self.config_problems.clone(),
            },
            declared: self.declared,
            fingerprint: self.fingerprint.clone(),
            declared_scopes: tier_scopes(self.kind, &self.scopes, catalog),
            storage: Storage {
                source,
                file_mode: self.file_mode,
                world_readable: self.world_readable,
                group_readable: self.group_readable,
                in_git_work_tree: self.git_work_tree.clone(),
                plaintext_locations: self.plaintext.clone(),
            },
            secret_problem: self.secret_problem.clone(),
            login: self.login.map(|v| LoginFacts {
                verification: v,
                detail: match v {
                    Verification::Revoked => "credentials_invalid".into(),
                    Verification::Forbidden => "forbidden".into(),
                    _ => String::new(),
                },
                permissions: self.permissions.clone(),
                base_url: crate::airwallex::PRODUCTION_URL.into(),
            }),
            leaks: self
                .leaks
                .iter()
                .map(|p| {
                    let (path, line) = match p.rsplit_once(':') {
                        Some((a, b)) if b.parse::<u64>().is_ok() => (a.to_string(), b.parse().ok()),
                        _ => (p.clone(), None),
                    };
                    LeakFact {
                        rule: "leak.airwallex.api-key".into(),
                        path,
                        line,
                        commit: None,
                        finding_id: crate::finding::finding_id("leak.airwallex.api-key", &[p]),
                        source: "scan:tree:example".into(),
                    }
                })
                .collect(),
            found_by: if self.plaintext.is_empty() {
                Default::default()
            } else {
                std::iter::once("discover:example".to_string()).collect()
            },
        }
    }
}

/// One privilege rule in force.
#[derive(Debug, Clone)]
pub struct PrivilegeRule {
    pub id: String,
    pub name: String,
    pub check: Check,
    pub severity: Severity,
    pub severity_production: Option<Severity>,
    pub severity_sandbox: Option<Severity>,
    pub action: Action,
    pub params: toml::Table,
    pub description: String,
    pub message: String,
    pub steps: Vec<String>,
    /// The checks whose findings on the same key this rule's finding carries (`also`).
    pub folds: Vec<Check>,
    /// Steps added to the carrying finding when this rule's finding is folded into it.
    pub folded_steps: Vec<String>,
    /// Steps added only to a carrier without a replacement key of its own.
    pub folded_replacement_steps: Vec<String>,
    pub examples: Vec<Example>,
    pub negative_examples: Vec<Example>,
    pub source: PathBuf,
}

impl PrivilegeRule {
    /// The severity for a key of `env`.
    pub fn severity_for(&self, env: Option<Environment>) -> Severity {
        match env {
            Some(Environment::Production) => self.severity_production.unwrap_or(self.severity),
            Some(Environment::Sandbox) => self.severity_sandbox.unwrap_or(self.severity),
            None => self.severity,
        }
    }

    /// An integer parameter (tested at load time to exist with that type).
    pub fn int(&self, name: &str) -> i64 {
        self.params
            .get(name)
            .and_then(|v| v.as_integer())
            .unwrap_or(0)
    }

    /// A severity parameter (`severity_live = "critical"`), checked at load time to name a
    /// severity.
    pub fn severity_param(&self, name: &str) -> Option<Severity> {
        self.params
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
    }

    /// A boolean parameter.
    pub fn flag(&self, name: &str) -> bool {
        self.params
            .get(name)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }
}

/// The privilege rules in force (from `rules/privilege/`, user directories, config overrides).
#[derive(Debug, Clone, Default)]
pub struct PrivilegeRules {
    pub rules: Vec<PrivilegeRule>,
}

impl PrivilegeRules {
    /// Built-in rules plus `extra_dirs` (directories or files; files holding leak rules, whose
    /// rules have no `check`, are skipped), less `disabled`, with parameter overrides by rule id
    /// (e.g. `{"privilege.unused-scope": {"days": 60}}`; `severity` may be overridden too).
    pub fn load(
        extra_dirs: &[PathBuf],
        disabled: &[String],
        overrides: &BTreeMap<String, toml::Table>,
    ) -> Result<PrivilegeRules, RuleError> {
        let mut rules = Vec::new();
        for (name, text) in BUILTIN_PRIVILEGE_RULES {
            rules.extend(parse_file(Path::new(name), text)?);
        }
        for (path, text) in read_rule_files(extra_dirs)? {
            if is_privilege_file(&text) {
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
            // a disabled id may name a leak rule: only complain when it looks like ours
            if !seen.contains_key(id) && (id.starts_with("privilege.") || id.starts_with("usage."))
            {
                return Err(RuleError::UnknownDisabled {
                    id: id.clone(),
                    known: known(),
                });
            }
        }
        for (id, table) in overrides {
            let Some(rule) = rules.iter_mut().find(|r| &r.id == id) else {
                if id.starts_with("privilege.") || id.starts_with("usage.") {
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
            };
            apply_override(rule, table)?;
        }
        rules.retain(|r| !disabled.contains(&r.id));
        Ok(PrivilegeRules { rules })
    }

    /// Only the built-in rules.
    pub fn builtin() -> PrivilegeRules {
        PrivilegeRules::load(&[], &[], &BTreeMap::new())
            .expect("built-in privilege rules are valid (tested)")
    }

    pub fn get(&self, id: &str) -> Option<&PrivilegeRule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The rules using `check`.
    pub fn with_check(&self, check: Check) -> impl Iterator<Item = &PrivilegeRule> {
        self.rules.iter().filter(move |r| r.check == check)
    }
}

/// An example that did not behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    pub rule: String,
    /// 1-based index among the rule's examples (or negative examples).
    pub index: usize,
    pub expected_finding: bool,
    pub detail: String,
}

impl PrivilegeRules {
    /// Evaluates every rule's examples (the rule must fire) and negative examples (it must not)
    /// with every rule in force; returns the failures and the number of examples run.
    pub fn check_examples(&self, catalog: &Catalog) -> (Vec<ExampleFailure>, usize) {
        let mut failures = Vec::new();
        let mut ran = 0;
        for rule in &self.rules {
            for (expected, set) in [(true, &rule.examples), (false, &rule.negative_examples)] {
                for (i, ex) in set.iter().enumerate() {
                    ran += 1;
                    let facts: Vec<KeyFacts> =
                        ex.keys.iter().map(|k| k.to_facts(catalog)).collect();
                    // read as the audit reads evidence: through the keys' screen
                    let screen = crate::inventory::screen(&facts, &[], catalog);
                    let evidence = (!ex.usage.is_empty()).then(|| {
                        crate::usage::ingest::read_text_screened(
                            "example",
                            &ex.usage.join("\n"),
                            catalog,
                            Some(&screen),
                        )
                    });
                    if let Some(ev) = &evidence {
                        if ev.rejected > 0 {
                            failures.push(ExampleFailure {
                                rule: rule.id.clone(),
                                index: i + 1,
                                expected_finding: expected,
                                detail: format!("bad usage line: {}", ev.problems.join("; ")),
                            });
                            continue;
                        }
                    }
                    let found = super::evaluate(&facts, evidence.as_ref(), catalog, self, ex.now());
                    // a finding folded into a stronger one is reported, in that one's `also`
                    let hit = found
                        .iter()
                        .find(|f| f.rule == rule.id || f.also.contains(&rule.id));
                    match (expected, hit) {
                        (true, None) => failures.push(ExampleFailure {
                            rule: rule.id.clone(),
                            index: i + 1,
                            expected_finding: true,
                            detail: "example not reported".into(),
                        }),
                        (false, Some(f)) => failures.push(ExampleFailure {
                            rule: rule.id.clone(),
                            index: i + 1,
                            expected_finding: false,
                            detail: format!("negative example reported: {}", f.message),
                        }),
                        _ => {}
                    }
                }
            }
        }
        (failures, ran)
    }
}

fn is_privilege_file(text: &str) -> bool {
    let Ok(t) = text.parse::<toml::Table>() else {
        return true; // let the parser report the error with its line
    };
    match t.get("rule").and_then(|r| r.as_array()) {
        Some(rules) => rules
            .iter()
            .any(|r| r.as_table().is_some_and(|t| t.contains_key("check"))),
        None => false,
    }
}

fn apply_override(rule: &mut PrivilegeRule, table: &toml::Table) -> Result<(), RuleError> {
    let invalid = |message: String| RuleError::Invalid {
        path: PathBuf::from("config"),
        id: rule.id.clone(),
        message,
    };
    for (k, v) in table {
        if k == "severity" {
            let s = v
                .as_str()
                .ok_or_else(|| invalid("severity: expected a string".into()))?;
            let sev: Severity = s.parse().map_err(|e: String| invalid(e))?;
            rule.severity = sev;
            rule.severity_production = None;
            rule.severity_sandbox = None;
            continue;
        }
        let Some(old) = rule.params.get(k) else {
            let mut known: Vec<&str> = rule.params.keys().map(|s| s.as_str()).collect();
            known.push("severity");
            return Err(invalid(format!(
                "override parameter {k:?} does not exist (known: {})",
                known.join(", ")
            )));
        };
        if old.type_str() != v.type_str() {
            return Err(invalid(format!(
                "override parameter {k}: expected {}, got {}",
                old.type_str(),
                v.type_str()
            )));
        }
        if v.as_integer().is_some_and(|n| n <= 0) {
            return Err(invalid(format!(
                "override parameter {k}: must be a positive number"
            )));
        }
        let mut one = toml::Table::new();
        one.insert(k.clone(), v.clone());
        check_severity_params(&one).map_err(&invalid)?;
        rule.params.insert(k.clone(), v.clone());
    }
    Ok(())
}

fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}'))
        .map(|(p, _)| p)
}

fn parse_file(path: &Path, text: &str) -> Result<Vec<PrivilegeRule>, RuleError> {
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
                "rule id {:?} must be dotted lowercase words beginning privilege. or usage.",
                r.id
            )));
        }
        let Some(check) = Check::from_id(&r.check) else {
            return Err(parse_err(format!(
                "rule {}: check {:?} is not a built-in evaluator (known: {})",
                r.id,
                r.check,
                Check::ids()
            )));
        };
        let mut folds = Vec::new();
        for c in &r.folds {
            match Check::from_id(c) {
                Some(c) => folds.push(c),
                None => {
                    return Err(parse_err(format!(
                        "rule {}: folds names {c:?}, which is not a built-in check (known: {})",
                        r.id,
                        Check::ids()
                    )))
                }
            }
        }
        for t in std::iter::once(&r.message)
            .chain(&r.steps)
            .chain(&r.folded_steps)
            .chain(&r.folded_replacement_steps)
        {
            for p in placeholders(t) {
                if !PLACEHOLDERS.contains(&p) {
                    return Err(parse_err(format!(
                        "rule {}: unknown placeholder {{{p}}} (known: {})",
                        r.id,
                        PLACEHOLDERS.join(", ")
                    )));
                }
            }
        }
        if let Err(m) = check_severity_params(&r.params) {
            return Err(parse_err(format!("rule {}: {m}", r.id)));
        }
        if r.examples.is_empty() || r.negative_examples.is_empty() {
            return Err(parse_err(format!(
                "rule {}: give at least one example and one negative example",
                r.id
            )));
        }
        for ex in r.examples.iter().chain(&r.negative_examples) {
            if ex.keys.is_empty() {
                return Err(parse_err(format!(
                    "rule {}: an example needs at least one key",
                    r.id
                )));
            }
        }
        out.push(PrivilegeRule {
            id: r.id,
            name: r.name,
            check,
            severity: r.severity,
            severity_production: r.severity_production,
            severity_sandbox: r.severity_sandbox,
            action: r.action,
            params: r.params,
            description: r.description,
            message: r.message,
            steps: r.steps,
            folds,
            folded_steps: r.folded_steps,
            folded_replacement_steps: r.folded_replacement_steps,
            examples: r.examples,
            negative_examples: r.negative_examples,
            source: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Parameters named `severity_*` must name a severity.
fn check_severity_params(params: &toml::Table) -> Result<(), String> {
    for (k, v) in params {
        if k.starts_with("severity_") {
            let ok = v.as_str().is_some_and(|s| s.parse::<Severity>().is_ok());
            if !ok {
                return Err(format!(
                    "parameter {k}: expected a severity (info, low, medium, high, critical)"
                ));
            }
        }
    }
    Ok(())
}

fn valid_id(id: &str) -> bool {
    (id.starts_with("privilege.") || id.starts_with("usage."))
        && id.split('.').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load_with_unique_ids() {
        let r = PrivilegeRules::builtin();
        assert!(r.rules.len() >= 24, "{}", r.rules.len());
        let mut ids: Vec<&str> = r.rules.iter().map(|r| r.id.as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "rule ids must be unique");
    }

    /// The audit reports screened calls under the usage detectors' ids (issue 9's definitions,
    /// rules/anomaly/usage.toml): with their words too, so one finding reads the same whoever
    /// records it.
    #[test]
    fn screened_call_rules_say_what_the_usage_detectors_say() {
        let ours = PrivilegeRules::builtin();
        let theirs = crate::usage::detect::AnomalyRules::builtin();
        for id in ["usage.outside-whitelist", "usage.undeclared-scope"] {
            let (a, b) = (ours.get(id).unwrap(), theirs.get(id).unwrap());
            assert_eq!(a.message, b.message, "{id}");
            assert_eq!(a.steps, b.steps, "{id}");
            assert_eq!(a.severity, b.severity, "{id}");
            assert_eq!(
                a.severity_param("severity_write"),
                Some(b.severity_param("severity_write")),
                "{id}"
            );
        }
    }

    #[test]
    fn every_check_is_used_by_a_builtin_rule() {
        let r = PrivilegeRules::builtin();
        for c in Check::ALL {
            assert!(r.with_check(*c).next().is_some(), "check {c} unused");
        }
    }

    #[test]
    fn builtin_examples_pass() {
        let (failures, ran) = PrivilegeRules::builtin().check_examples(&Catalog::builtin());
        assert!(ran >= 48, "{ran}");
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn overrides_are_checked() {
        let mut o = BTreeMap::new();
        o.insert(
            "privilege.unused-scope".to_string(),
            toml::toml! { days = 60 },
        );
        let r = PrivilegeRules::load(&[], &[], &o).unwrap();
        assert_eq!(r.get("privilege.unused-scope").unwrap().int("days"), 60);
        o.insert(
            "privilege.unused-scope".to_string(),
            toml::toml! { dayz = 60 },
        );
        let e = PrivilegeRules::load(&[], &[], &o).unwrap_err().to_string();
        assert!(e.contains("dayz") && e.contains("days"), "{e}");
        o.insert(
            "privilege.unused-scope".to_string(),
            toml::toml! { days = "60" },
        );
        let e = PrivilegeRules::load(&[], &[], &o).unwrap_err().to_string();
        assert!(e.contains("expected integer"), "{e}");
    }

    #[test]
    fn user_dirs_add_rules_and_skip_leak_rule_files() {
        let dir = std::env::temp_dir().join(format!("awxguard-prules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("leak.toml"),
            "[[rule]]\nid = \"leak.local.x\"\nname = \"x\"\nkeywords = [\"abc\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("mine.toml"),
            r#"
[[rule]]
id = "privilege.local.admin-anywhere"
name = "Admin keys anywhere"
check = "admin-key"
severity = "critical"
action = "narrow"
description = "d"
message = "{key} is admin"
[[rule.examples]]
keys = [{ name = "a", kind = "admin", environment = "sandbox" }]
[[rule.negative_examples]]
keys = [{ name = "a" }]
"#,
        )
        .unwrap();
        let r = PrivilegeRules::load(std::slice::from_ref(&dir), &[], &BTreeMap::new()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let mine = r.get("privilege.local.admin-anywhere").unwrap();
        assert_eq!(mine.severity, Severity::Critical);
        assert!(r.get("leak.local.x").is_none());
        let (failures, _) = r.check_examples(&Catalog::builtin());
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn disabling_by_id() {
        let r =
            PrivilegeRules::load(&[], &["privilege.admin-key".into()], &BTreeMap::new()).unwrap();
        assert!(r.get("privilege.admin-key").is_none());
        let e = PrivilegeRules::load(&[], &["privilege.nope".into()], &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("privilege.nope"), "{e}");
    }

    #[test]
    fn unknown_placeholders_and_checks_are_errors_with_file_and_line() {
        let text = r#"
[[rule]]
id = "privilege.custom"
name = "x"
check = "admin-key"
severity = "low"
action = "narrow"
description = "d"
message = "{key} {nope}"
[[rule.examples]]
keys = [{ name = "a" }]
[[rule.negative_examples]]
keys = [{ name = "a" }]
"#;
        let e = parse_file(Path::new("mine.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mine.toml:3: ") && e.contains("{nope}"),
            "{e}"
        );
        let e = parse_file(Path::new("mine.toml"), &text.replace("admin-key", "magic"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("magic"), "{e}");
    }
}
