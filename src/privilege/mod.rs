//! Least-privilege evaluation: the facts gathered about each key (inventory, login, storage,
//! leaks) and the usage evidence, judged by the privilege rules in `rules/privilege/`.

pub mod catalog;
pub mod facts;

pub use catalog::{Access, Catalog, RouteMatch, Scope};
pub use facts::{Environment, KeyFacts, KeyKind, LeakFact, LoginFacts, SecretSource, Storage};

use crate::finding::Finding;
use crate::usage::Evidence;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;

// INTERFACE PLACEHOLDER (lead): the privilege-rules engineer replaces everything below this line
// with the real rules loader and evaluation; the signatures are the contract the inventory and
// `audit` code against.

/// The privilege rules in force (from `rules/privilege/`, user directories, config overrides).
#[derive(Debug, Clone, Default)]
pub struct PrivilegeRules {}

impl PrivilegeRules {
    /// Built-in rules plus `extra_dirs`, less `disabled`, with parameter overrides by rule id
    /// (e.g. `{"privilege.unused-scope": {"days": 60}}`).
    pub fn load(
        _extra_dirs: &[PathBuf],
        _disabled: &[String],
        _overrides: &BTreeMap<String, toml::Table>,
    ) -> Result<PrivilegeRules, crate::rules::RuleError> {
        Ok(PrivilegeRules {})
    }
}

/// Judges every key. Findings carry `key`, `evidence` and `recommendation` as the contract says.
pub fn evaluate(
    _facts: &[KeyFacts],
    _evidence: Option<&Evidence>,
    _catalog: &Catalog,
    _rules: &PrivilegeRules,
    _now: DateTime<Utc>,
) -> Vec<Finding> {
    Vec::new()
}
