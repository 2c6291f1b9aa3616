//! What the privilege rules judge about one key. This is the contract between the inventory
//! (which gathers the facts from config, secret storage, a login and discovery) and the rules
//! (`privilege`), which sit above it.

pub use crate::airwallex::{Environment, KeyKind};
pub use crate::config::KeyDescription;
use crate::finding::Verification;
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

/// Everything the privilege rules may look at for one key: its description (as declared, or as
/// observed for a shadow key) and what the inventory found out. Reads of the description's fields
/// go through (`facts.owner`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFacts {
    pub key: KeyDescription,
    /// Declared in the config; `false` for a shadow key that discovery found and nobody declared.
    pub declared: bool,
    /// Fingerprint of the API key; `None` when the secret could not be resolved.
    pub fingerprint: Option<String>,
    /// Scope catalog ids: as listed for a custom key; for the other tiers, the catalog's
    /// expansion of the tier (every scope, or every read scope).
    pub declared_scopes: Vec<String>,
    pub storage: Storage,
    /// Why the secret could not be read (missing env var, unreadable file), if it could not.
    pub secret_problem: Option<String>,
    /// The login check; `None` when not verified.
    pub login: Option<LoginFacts>,
    /// Where the scanner found this key.
    pub leaks: Vec<LeakFact>,
}

impl KeyFacts {
    /// Where the key is declared (`awxguard.toml:12`); `None` for a shadow key.
    pub fn declaration(&self) -> Option<&str> {
        Some(self.key.declared_at.as_str()).filter(|d| self.declared && !d.is_empty())
    }
}

impl std::ops::Deref for KeyFacts {
    type Target = KeyDescription;
    fn deref(&self) -> &KeyDescription {
        &self.key
    }
}

impl std::ops::DerefMut for KeyFacts {
    fn deref_mut(&mut self) -> &mut KeyDescription {
        &mut self.key
    }
}
