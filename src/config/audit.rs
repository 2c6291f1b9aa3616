//! `[audit]`: where `awxguard audit` finds usage evidence, extra privilege rules and what to
//! search for keys; which rules are off and their parameter overrides.

use super::{ConfigProblem, Source};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

/// The `[audit]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Usage-event files or directories, relative to the config file.
    #[serde(default)]
    pub usage: Vec<Spanned<String>>,
    /// Extra privilege rule directories, relative to the config file.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Privilege rule ids to disable.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
    /// Parameter overrides by rule id: `[audit.params."privilege.unused-scope"] days = 60`.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Table>,
    /// Paths `awxguard audit` runs discovery over (config directories, env files).
    #[serde(default)]
    pub discover: Vec<Spanned<String>>,
}

/// The validated `[audit]` section.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    pub usage: Vec<PathBuf>,
    pub rule_dirs: Vec<PathBuf>,
    pub disable: Vec<String>,
    pub params: BTreeMap<String, toml::Table>,
    pub discover: Vec<PathBuf>,
}

/// Validates `[audit]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawAudit,
    problems: &mut Vec<ConfigProblem>,
) -> AuditConfig {
    let mut check = |list: &[Spanned<String>], field: &str, what: &str| -> Vec<PathBuf> {
        list.iter()
            .map(|p| src.existing_path(p, field, what, problems))
            .collect()
    };
    AuditConfig {
        usage: check(
            &raw.usage,
            "audit.usage",
            "a JSON Lines file or a directory of them",
        ),
        rule_dirs: check(
            &raw.rules,
            "audit.rules",
            "a directory of privilege rule files",
        ),
        discover: check(
            &raw.discover,
            "audit.discover",
            "a directory or file to search for keys",
        ),
        disable: raw.disable.iter().map(|d| d.get_ref().clone()).collect(),
        params: raw.params.clone(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/cfg/awxguard.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn audit_section() {
        let text = "[audit]\ndisable = [\"privilege.shared-key\"]\n[audit.params.\"privilege.unused-scope\"]\ndays = 60\n";
        let c = parse(text).unwrap();
        assert_eq!(c.audit.disable, vec!["privilege.shared-key"]);
        assert_eq!(
            c.audit.params["privilege.unused-scope"]["days"].as_integer(),
            Some(60)
        );
        let msg = parse("[audit]\nusage = [\"nope\"]\n").unwrap_err();
        assert!(
            msg.contains("awxguard.toml:2: audit.usage: /cfg/nope does not exist"),
            "{msg}"
        );
    }
}
