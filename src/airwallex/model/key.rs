//! What a key is on Airwallex's side: the environment it belongs to, its tier (admin, read-only,
//! read-write, custom), and the catalog scopes a tier stands for.

use super::catalog::Catalog;
use serde::{Deserialize, Serialize};

/// Which Airwallex environment a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Sandbox,
}

impl Environment {
    /// `production` or `sandbox`, as config files and reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Sandbox => "sandbox",
        }
    }
}

/// The key tiers of the Airwallex guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Full access to every API of the account or organisation.
    Admin,
    /// Read on every resource.
    ReadOnly,
    /// Read and write on every resource.
    ReadWrite,
    /// A chosen set of scopes (catalog ids).
    Custom,
}

impl KeyKind {
    /// `admin`, `read_only`, `read_write` or `custom`, as config files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Admin => "admin",
            KeyKind::ReadOnly => "read_only",
            KeyKind::ReadWrite => "read_write",
            KeyKind::Custom => "custom",
        }
    }
}

/// The scopes a tier stands for: every scope (admin, read_write), every read scope (read_only),
/// or the listed ones (custom).
pub fn tier_scopes(kind: KeyKind, listed: &[String], catalog: &Catalog) -> Vec<String> {
    match kind {
        KeyKind::Admin | KeyKind::ReadWrite => catalog.all_ids(),
        KeyKind::ReadOnly => catalog.read_ids(),
        KeyKind::Custom => listed.to_vec(),
    }
}
