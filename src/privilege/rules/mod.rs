//! Privilege rules as data: `rules/privilege/*.toml` (embedded), user directories, disabling by
//! id and parameter overrides from config. The logic of each rule is a built-in evaluator named
//! by its `check`; ids, severities, parameters, messages and remediation templates are data.
//! Reading a rule file is `parse`; the examples every rule carries are `examples`.

mod examples;
mod parse;

pub use examples::{Example, ExampleFailure, ExampleKey};
pub use parse::PLACEHOLDERS;

use super::check::Check;
use crate::airwallex::Environment;
use crate::finding::{Action, Severity};
use crate::rules::{read_rule_files, unique_ids, RuleError, BUILTIN_PRIVILEGE_RULES};
use parse::{check_severity_params, parse_file};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privilege::Catalog;

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
}
