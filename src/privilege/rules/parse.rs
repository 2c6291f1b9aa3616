//! Reading one privilege rule file: its shape, ids, checks, placeholders and parameters, each
//! problem reported with file and line.

use super::{Example, PrivilegeRule};
use crate::finding::{Action, Severity};
use crate::privilege::check::Check;
use crate::rules::{line_of, toml_error, RuleError};
use serde::Deserialize;
use std::path::Path;

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
    "revoke_now",
    "leak_check",
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

pub(super) fn parse_file(path: &Path, text: &str) -> Result<Vec<PrivilegeRule>, RuleError> {
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
pub(super) fn check_severity_params(params: &toml::Table) -> Result<(), String> {
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
    (id.starts_with("privilege.") || id.starts_with("usage.")) && crate::rules::id_words_valid(id)
}

#[cfg(test)]
mod tests {
    use super::*;

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
