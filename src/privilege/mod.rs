//! Least-privilege evaluation: the facts gathered about each key (inventory, login, storage,
//! leaks) and the usage evidence, judged by the privilege rules in `rules/privilege/`.

pub mod audit;
pub mod check;
pub mod evaluate;
pub mod recommend;
pub mod rules;

pub use crate::airwallex::model::{tier_scopes, Access, Catalog, RouteMatch, RouteRef, Scope};
pub use crate::airwallex::{Environment, KeyKind};
pub use crate::inventory::{KeyDescription, KeyFacts, LeakFact, LoginFacts, SecretSource, Storage};
pub use check::{Check, Needs, Subject};
pub use recommend::Replacement;
pub use rules::{Example, ExampleKey, PrivilegeRule, PrivilegeRules};

use crate::finding::Finding;
use crate::usage::Evidence;
use chrono::{DateTime, Utc};

/// Judges every key against the rules in force. Findings carry `key`, `evidence` and
/// `recommendation` as the findings contract says; rules that need usage evidence say
/// "not judged" (an `info` finding, `privilege.not-judged`) instead of guessing; usage events
/// naming a key no inventory entry knows give `usage.unknown-key`.
pub fn evaluate(
    facts: &[KeyFacts],
    evidence: Option<&Evidence>,
    catalog: &Catalog,
    rules: &PrivilegeRules,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    evaluate::evaluate(facts, evidence, catalog, rules, now)
}
