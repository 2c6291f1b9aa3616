//! What the privilege rules judge about one key. This is the contract between the inventory
//! (which gathers the facts from config, secret storage, a login and discovery) and the rules
//! (`privilege`), which sit above it.

pub use crate::airwallex::{Environment, KeyKind};
use crate::finding::Verification;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the configuration says the secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SecretSource {
    /// `env:VAR`
    Env { var: String },
    /// `file:PATH`
    File { path: PathBuf },
    /// A literal in the config file (itself a finding).
    Literal,
}

/// How the secret is stored, as far as awxguard can see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    pub source: SecretSource,
    /// Unix mode of the file holding the secret (a `file:` reference, or the config file for a
    /// literal).
    pub file_mode: Option<u32>,
    pub world_readable: bool,
    pub group_readable: bool,
    /// The top of the git work tree the secret file (or config with a literal) sits in.
    pub in_git_work_tree: Option<PathBuf>,
    /// Plain-text files where discovery found this key (`path:line`).
    pub plaintext_locations: Vec<String>,
}

/// What one login said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFacts {
    pub verification: Verification,
    /// The error code and message, or why the outcome is unknown.
    pub detail: String,
    /// The token's `permissions` claim (effective permissions), when the login succeeded.
    pub permissions: Option<Vec<String>>,
    /// The base URL the login went to.
    pub base_url: String,
}

/// A place where the scanner found this key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakFact {
    pub rule: String,
    pub path: String,
    pub line: Option<u64>,
    /// Commit id (history scans) or `staged`.
    pub commit: Option<String>,
    /// The id of the leak finding.
    pub finding_id: String,
}

/// Everything the privilege rules may look at for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFacts {
    /// Inventory name (for a shadow key, its fingerprint).
    pub name: String,
    /// Declared in the config; `false` for a shadow key that discovery found and nobody declared.
    pub declared: bool,
    pub client_id: String,
    /// Fingerprint of the API key; `None` when the secret could not be resolved.
    pub fingerprint: Option<String>,
    pub environment: Environment,
    pub kind: KeyKind,
    /// Scope catalog ids: as listed for a custom key; for the other tiers, the catalog's
    /// expansion of the tier (every scope, or every read scope).
    pub declared_scopes: Vec<String>,
    pub owner: Option<String>,
    pub purpose: Option<String>,
    pub integration: Option<String>,
    pub created: Option<NaiveDate>,
    pub rotated: Option<NaiveDate>,
    /// IPv4 CIDRs.
    pub ip_whitelist: Vec<String>,
    /// Hosts or services that use the key.
    pub consumers: Vec<String>,
    pub storage: Storage,
    /// Why the secret could not be read (missing env var, unreadable file), if it could not.
    pub secret_problem: Option<String>,
    /// The login check; `None` when not verified.
    pub login: Option<LoginFacts>,
    /// Where the scanner found this key.
    pub leaks: Vec<LeakFact>,
    /// Where the key is declared (`awxguard.toml:12`).
    pub declared_at: Option<String>,
    /// Problems with values of the declaration (unknown scope ids, bad whitelist entries, bad
    /// dates), each `file:line: field: what is wrong`; the bad values are left out of the facts
    /// above, so the key is judged on what was declared correctly, never proven least-privilege.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_problems: Vec<String>,
}
