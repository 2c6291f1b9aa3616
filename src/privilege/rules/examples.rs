//! The examples every privilege rule carries (`examples` must fire, `negative_examples` must
//! not): small fact sets as written in rule files, run by `awxguard rules check` and the tests.

use super::PrivilegeRules;
use crate::airwallex::tier_scopes;
use crate::airwallex::{Environment, KeyKind};
use crate::finding::Verification;
use crate::inventory::{KeyDescription, KeyFacts, LeakFact, LoginFacts, SecretSource, Storage};
use crate::privilege::Catalog;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::path::PathBuf;

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
                    let found = crate::privilege::evaluate(
                        &facts,
                        evidence.as_ref(),
                        catalog,
                        self,
                        ex.now(),
                    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_examples_pass() {
        let (failures, ran) = PrivilegeRules::builtin().check_examples(&Catalog::builtin());
        assert!(ran >= 48, "{ran}");
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
