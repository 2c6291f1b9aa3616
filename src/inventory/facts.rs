//! What the privilege rules judge about one key. This is the contract between the inventory
//! (which gathers the facts from config, secret storage, a login and discovery) and the rules
//! (`privilege`), which sit above it.

pub use crate::airwallex::{Environment, KeyKind};
pub use crate::config::KeyDescription;
use crate::finding::Verification;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The inputs a run looks at and a finding is observed by (resolution by observation,
/// `Finding::observed_by`): one id per config file, secret reference, login, usage source, scan
/// root, discovery root. Paths are canonical, so the same place gets the same id however it
/// was named on the command line.
pub mod input {
    use std::path::Path;

    /// Leaks `awxguard scan --record` recorded, which the audit links to its keys.
    pub const STORED_SCAN: &str = "store:scan-findings";

    /// `path` made absolute and canonical when it exists, as text.
    pub fn canonical(path: &Path) -> String {
        std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    }

    pub fn config(path: &Path) -> String {
        format!("config:{}", canonical(path))
    }

    pub fn login(name: &str) -> String {
        format!("login:{name}")
    }

    pub fn usage(path: &Path) -> String {
        if path.as_os_str() == "-" {
            return "usage:<stdin>".to_string();
        }
        format!("usage:{}", canonical(path))
    }

    /// A source tree scanned for leaks (the same id `awxguard scan --record` uses as its scope).
    pub fn scan_tree(root: &Path) -> String {
        format!("scan:tree:{}", canonical(root))
    }

    /// A repository's history scanned for leaks.
    pub fn scan_git(repo: &Path) -> String {
        format!("scan:git:{}", canonical(repo))
    }

    pub fn discover(root: &Path) -> String {
        format!("discover:{}", canonical(root))
    }

    /// What a person does so that a run looks at `input` again.
    pub fn how_to_look(input: &str) -> String {
        let (kind, rest) = input.split_once(':').unwrap_or((input, ""));
        match kind {
            "scan" => {
                let (mode, path) = rest.split_once(':').unwrap_or(("tree", rest));
                if mode == "git" {
                    format!("audit --scan {path} (its history)")
                } else {
                    format!("audit --scan {path}")
                }
            }
            "discover" => format!("audit --discover {rest}"),
            "usage" => format!("audit --usage {rest}"),
            "login" => {
                format!("an audit without --no-verify that reaches Airwallex for key {rest}")
            }
            "secret" => match rest.split_once(':') {
                Some(("env", var)) => format!("an audit with {var} set"),
                Some(("file", p)) => format!("an audit that can read {p}"),
                _ => "an audit that can read the key".to_string(),
            },
            "config" => format!("an audit with --config {rest}"),
            "store" => "an audit that records (without --no-store)".to_string(),
            _ => format!("a run that looks at {input}"),
        }
    }
}

/// Where the configuration says the secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SecretSource {
    /// `env:VAR`
    Env { var: String },
    /// `file:PATH`
    File { path: PathBuf },
    /// A literal in the config file (itself a finding); `accepted` when the table says
    /// `allow_literal = true`.
    Literal {
        #[serde(default)]
        accepted: bool,
    },
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
    /// The input that found it (`scan:tree:/srv/app`, `scan:git:/srv/app`, or
    /// `store:scan-findings` for a leak `awxguard scan --record` recorded): see `input`.
    pub source: String,
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
    /// The discovery roots that found this key in plain text (`discover:/etc/app`): the inputs
    /// of its storage findings beyond the config.
    pub found_by: BTreeSet<String>,
}

impl KeyFacts {
    /// The config file that declares the key, as an input (`config:/etc/awxguard.toml`).
    pub fn config_input(&self) -> Option<String> {
        let decl = self.declaration()?;
        let file = decl.rsplit_once(':').map_or(decl, |(f, _)| f);
        Some(input::config(Path::new(file)))
    }

    /// The key's secret reference, as an input (`secret:env:PAYVY_KEY`); none for a shadow key.
    pub fn secret_input(&self) -> Option<String> {
        self.declared.then(|| match &self.storage.source {
            SecretSource::Env { var } => format!("secret:env:{var}"),
            SecretSource::File { path } => format!("secret:file:{}", input::canonical(path)),
            SecretSource::Literal { .. } => {
                format!("secret:literal:{}", self.config_input().unwrap_or_default())
            }
        })
    }

    /// The key's login, as an input (`login:payvy`): looked at when a login answered.
    pub fn login_input(&self) -> String {
        input::login(&self.name)
    }

    /// Whether a login answered for this key (live, revoked or forbidden: not unknown).
    pub fn login_answered(&self) -> bool {
        self.login
            .as_ref()
            .is_some_and(|l| l.verification != Verification::Unknown)
    }

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
