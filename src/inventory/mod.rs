//! The inventory: the keys the config declares, their secrets resolved (never printed), how those
//! secrets are stored, what one login says each key can really do, and keys found by discovery
//! that nobody declared. It produces the `KeyFacts` the privilege rules judge.

pub mod discover;
pub mod facts;
pub mod job;
pub mod storage;
mod verify;

pub use discover::{discover, DiscoverOutcome, Found, API_KEY_RULE};
pub use facts::{KeyDescription, KeyFacts, LeakFact, LoginFacts, SecretSource, Storage};
pub use job::{gather, rows, GatherError, GatherRequest, Gathered, KeyRow};
pub use verify::{effective_access, verify, EffectiveAccess, VerifyOptions, VerifyStats};

use crate::airwallex::{tier_scopes, Catalog, KeyKind};
use crate::config::{Config, KeyDecl, SecretSpec};
use crate::secret::Secret;
use crate::usage::screen::{AnomalyWindow, Declared, Screen};
use std::collections::HashSet;

/// One key: its facts and, when it could be resolved, its secret.
#[derive(Debug, Clone)]
pub struct Entry {
    pub facts: KeyFacts,
    pub(crate) secret: Option<Secret<String>>,
}

impl Entry {
    /// `"payvy-ap" (sha256:…)`: how messages name a key. Never the secret.
    pub fn label(&self) -> String {
        match &self.facts.fingerprint {
            Some(fp) if fp != &self.facts.name => format!("{:?} ({fp})", self.facts.name),
            _ => format!("{:?}", self.facts.name),
        }
    }
}

/// Every key awxguard knows of.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub entries: Vec<Entry>,
}

/// Reads a key's secret. The error names the cause (never the value).
pub fn resolve_secret(spec: &SecretSpec) -> Result<Secret<String>, String> {
    let secret = read_secret(spec)?;
    // Held by the redaction gate from now on: any window of it is redacted wherever it goes.
    crate::redact::hold(secret.expose());
    Ok(secret)
}

fn read_secret(spec: &SecretSpec) -> Result<Secret<String>, String> {
    let (value, from) = match spec {
        SecretSpec::Literal { key, .. } => return Ok(key.clone()),
        SecretSpec::Env(var) => match std::env::var(var) {
            Ok(v) => (v, format!("environment variable {var}")),
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("environment variable {var} is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("environment variable {var} is not valid UTF-8"))
            }
        },
        SecretSpec::File(path) => {
            let shown = path.display();
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => {
                    return Err(format!(
                        "{shown} is a directory, not a file holding the key"
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(format!("secret file {shown} does not exist"))
                }
                _ => {}
            }
            // A regular file of a sane size only: a FIFO or a device is never read.
            use crate::files::{cap, read_capped, FileError};
            match read_capped(path, cap::SECRET_FILE, "secret files") {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(s) => (s, format!("file {shown}")),
                    Err(_) => return Err(format!("secret file {shown} is not UTF-8 text")),
                },
                Err(FileError::Io { source, .. }) => {
                    return Err(format!("cannot read secret file {shown}: {source}"))
                }
                Err(e) => return Err(format!("secret file {e}")),
            }
        }
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(format!("{from} is empty"));
    }
    // Whatever it is, it was meant to be secret.
    crate::redact::hold(&value);
    if !crate::config::is_api_key_shape(&value) {
        // Never echo the value: its length and shape only.
        return Err(format!(
            "{from} does not hold an Airwallex API key (expected exactly 96 lowercase hex \
             characters, found {} characters{})",
            value.chars().count(),
            if value.contains('=') {
                "; it looks like an env file: reference the variable with env:VAR, or put only \
                 the key in the file"
            } else {
                ""
            }
        ));
    }
    Ok(Secret::new(value))
}

/// What the declared keys say about their calls (IP whitelist, scopes and the routes they
/// allow) and their open anomalies: the screen that keeps calls that are not evidence of need
/// out of the usage evidence (`usage::screen`). A key declaring no scope list (a custom key
/// without `scopes`) and the tiers that hold every scope are not screened by scope; a key
/// without a whitelist is not screened by address; shadow keys declare nothing.
pub fn screen(facts: &[KeyFacts], anomalies: &[AnomalyWindow], catalog: &Catalog) -> Screen {
    let mut screen = Screen::default();
    for f in facts.iter().filter(|f| f.declared) {
        let whitelist: Vec<ipnet::Ipv4Net> = f
            .ip_whitelist
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        let scopes: Option<HashSet<String>> = match f.kind {
            KeyKind::Admin | KeyKind::ReadWrite => None,
            _ if f.declared_scopes.is_empty() => None,
            _ => Some(f.declared_scopes.iter().cloned().collect()),
        };
        let allowed_routes = match &scopes {
            Some(s) => crate::usage::detect::usage_checks::allowed_routes(
                catalog,
                &s.iter().cloned().collect(),
            )
            .into_iter()
            .collect(),
            None => HashSet::new(),
        };
        let mut names: Vec<&str> = vec![f.name.as_str()];
        names.extend(f.fingerprint.as_deref());
        let declared = Declared {
            whitelist,
            scopes,
            allowed_routes,
            anomalies: anomalies
                .iter()
                .filter(|a| names.contains(&a.key.as_str()))
                .cloned()
                .collect(),
        };
        screen.add(&names, declared);
    }
    screen
}

impl Inventory {
    /// The declared keys with their secrets resolved and storage inspected. A key whose secret
    /// cannot be read gets a `secret_problem`; it never stops the others.
    pub fn from_config(config: &Config, catalog: &Catalog) -> Inventory {
        let entries = config
            .keys
            .iter()
            .map(|k| Inventory::entry(config, k, catalog))
            .collect();
        Inventory { entries }
    }

    fn entry(config: &Config, k: &KeyDecl, catalog: &Catalog) -> Entry {
        let (source, stored_in) = match &k.secret {
            SecretSpec::Env(var) => (SecretSource::Env { var: var.clone() }, None),
            SecretSpec::File(p) => (SecretSource::File { path: p.clone() }, Some(p.clone())),
            SecretSpec::Literal { accepted, .. } => (
                SecretSource::Literal {
                    accepted: *accepted,
                },
                config.path.clone(),
            ),
        };
        let mut storage = Storage {
            source,
            file_mode: None,
            world_readable: false,
            group_readable: false,
            in_git_work_tree: None,
            plaintext_locations: Vec::new(),
        };
        if let Some(p) = &stored_in {
            storage::inspect(p, &mut storage);
        }
        let (secret, secret_problem) = match resolve_secret(&k.secret) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        if let Some(p) = &secret_problem {
            tracing::info!(key = %k.name, "secret not resolvable: {p}");
        }
        let facts = KeyFacts {
            key: k.key.clone(),
            declared: true,
            fingerprint: secret.as_ref().map(|s| s.fingerprint()),
            declared_scopes: tier_scopes(k.kind, &k.scopes, catalog),
            storage,
            secret_problem,
            login: None,
            leaks: Vec::new(),
            found_by: Default::default(),
        };
        Entry { facts, secret }
    }

    /// The facts of every key, for the privilege rules.
    pub fn facts(&self) -> Vec<KeyFacts> {
        self.entries.iter().map(|e| e.facts.clone()).collect()
    }

    /// `fingerprints` of the keys `config` declares (none declared: empty, no secret read).
    pub fn fingerprints_of(config: &Config) -> std::collections::BTreeMap<String, String> {
        if config.keys.is_empty() {
            return Default::default();
        }
        Inventory::from_config(config, &Catalog::builtin()).fingerprints()
    }

    /// Fingerprint → name of every key whose secret could be read: usage events filed under a
    /// key's fingerprint are that key's (`usage::job::IngestRequest::fingerprints`).
    pub fn fingerprints(&self) -> std::collections::BTreeMap<String, String> {
        self.entries
            .iter()
            .filter_map(|e| Some((e.facts.fingerprint.clone()?, e.facts.name.clone())))
            .collect()
    }

    /// The entry with this fingerprint.
    pub fn by_fingerprint_mut(&mut self, fp: &str) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|e| e.facts.fingerprint.as_deref() == Some(fp))
    }

    /// One line per key that could not be fully examined: a secret that could not be read, a
    /// login whose outcome is unknown (Airwallex unreachable, rate limited, 5xx).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.entries {
            for p in &e.facts.config_problems {
                out.push(format!(
                    "key {}: config problem: {p}; the rest of the key is audited",
                    e.label()
                ));
            }
            if let Some(p) = &e.facts.secret_problem {
                out.push(format!(
                    "key {}: secret not resolvable: {p}; not verified",
                    e.label()
                ));
            }
            if let Some(l) = &e.facts.login {
                if l.verification == crate::finding::Verification::Unknown {
                    out.push(format!(
                        "key {}: login outcome unknown ({}): {}",
                        e.label(),
                        l.base_url,
                        l.detail
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_env_and_directory_secret_are_problems_not_failures() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("adir")).unwrap();
        let text = "[[key]]\nname = \"a\"\nclient_id = \"c\"\napi_key = \
                    \"env:AWXGUARD_TEST_SURELY_UNSET\"\nenvironment = \"sandbox\"\nkind = \
                    \"read_only\"\n[[key]]\nname = \"b\"\nclient_id = \"c\"\napi_key = \
                    \"file:adir\"\nenvironment = \"sandbox\"\nkind = \"admin\"\n";
        let cfg = Config::parse(&dir.path().join("awxguard.toml"), text).unwrap();
        let catalog = Catalog::builtin();
        let inv = Inventory::from_config(&cfg, &catalog);
        assert_eq!(
            inv.entries[0].facts.secret_problem.as_deref(),
            Some("environment variable AWXGUARD_TEST_SURELY_UNSET is not set")
        );
        assert!(inv.entries[1]
            .facts
            .secret_problem
            .as_deref()
            .unwrap()
            .ends_with("adir is a directory, not a file holding the key"));
        assert_eq!(
            inv.entries[0].facts.declared_scopes,
            catalog.read_ids(),
            "read_only expands to the catalog's read scopes"
        );
        assert_eq!(inv.entries[1].facts.declared_scopes, catalog.all_ids());
        assert_eq!(inv.problems().len(), 2);
    }
}
