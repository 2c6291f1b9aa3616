//! One login per key, concurrently but within Airwallex's login rate limit, and what the token's
//! `permissions` claim says the key can really do.

use super::Inventory;
use crate::airwallex::{Client, ClientSettings, LoginOutcome, PRODUCTION_URL, SANDBOX_URLS};
use crate::config::AirwallexConfig;
use crate::finding::Verification;
use crate::privilege::{Environment, LoginFacts};
use crate::secret::Secret;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How verification runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Logins in flight at once. Each key logs in once, far below Airwallex's limit of about
    /// 100 logins a minute per key; this bounds the load on the API and on the network.
    pub concurrency: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { concurrency: 8 }
    }
}

/// What verification did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct VerifyStats {
    /// Logins sent (one per distinct credential).
    pub logins: usize,
    /// Keys without a secret or client ID, not verified.
    pub skipped: usize,
    /// Outcomes by verification word.
    pub outcomes: BTreeMap<String, usize>,
    pub elapsed_ms: u64,
}

/// What a token's `permissions` claim means, as far as Airwallex documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectiveAccess {
    /// `r:awx:*:*` and `w:awx:*:*`: full access, an admin key.
    Admin,
    /// `r:awx:*:*` alone: read access to everything.
    ReadAll,
    /// No permissions in the claim.
    Empty,
    /// Strings Airwallex does not document (scoped keys): the effective access is unknown.
    Unknown(Vec<String>),
}

/// Reads a `permissions` claim. Only the admin strings are documented (FACTS.md); anything else
/// is unknown, never taken as proof of least privilege.
pub fn effective_access(perms: &[String]) -> EffectiveAccess {
    let known = ["r:awx:*:*", "w:awx:*:*"];
    let unknown: Vec<String> = perms
        .iter()
        .filter(|p| !known.contains(&p.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return EffectiveAccess::Unknown(unknown);
    }
    let has = |p: &str| perms.iter().any(|q| q == p);
    match (has(known[0]), has(known[1])) {
        (true, true) => EffectiveAccess::Admin,
        (true, false) => EffectiveAccess::ReadAll,
        (false, true) => EffectiveAccess::Admin,
        (false, false) => EffectiveAccess::Empty,
    }
}

impl EffectiveAccess {
    /// A short description for tables and details.
    pub fn describe(&self) -> String {
        match self {
            EffectiveAccess::Admin => "full access (admin: r:awx:*:* w:awx:*:*)".into(),
            EffectiveAccess::ReadAll => "read everything (r:awx:*:*)".into(),
            EffectiveAccess::Empty => "no permissions in the token".into(),
            EffectiveAccess::Unknown(p) => format!(
                "unknown: permission strings Airwallex does not document ({}); judged by the \
                 declared scopes",
                p.join(", ")
            ),
        }
    }
}

/// The base URL a key logs in at: the configured one, else Airwallex's host for its environment.
pub fn base_url_for(config: &AirwallexConfig, env: Environment) -> String {
    match &config.base_url {
        Some(u) => u.clone(),
        None => match env {
            Environment::Production => PRODUCTION_URL.to_string(),
            Environment::Sandbox => SANDBOX_URLS[0].to_string(),
        },
    }
}

fn login_facts(outcome: &LoginOutcome, base_url: &str) -> LoginFacts {
    let (detail, permissions) = match outcome {
        LoginOutcome::Live(token) => match &token.claims {
            Some(c) => (
                format!(
                    "logged in; effective permissions: {}",
                    effective_access(&c.permissions).describe()
                ),
                Some(c.permissions.clone()),
            ),
            None => (
                "logged in; the token's claims could not be read, effective permissions unknown"
                    .to_string(),
                None,
            ),
        },
        LoginOutcome::Revoked { code, message } => (
            format!("{code}: {message} (revoked, expired or wrong credentials)"),
            None,
        ),
        LoginOutcome::Forbidden { code, message } => (
            format!(
                "{code}: {message} (this machine's IP is not in the key's whitelist, or a \
                 permission is missing)"
            ),
            None,
        ),
        LoginOutcome::Unknown { reason } => (reason.clone(), None),
    };
    LoginFacts {
        verification: outcome.verification(),
        detail,
        permissions,
        base_url: base_url.to_string(),
    }
}

/// A distinct credential at a base URL: (base URL, client ID, key fingerprint).
type Credential = (String, String, String);

/// Logs every key with a secret in once (a credential declared twice logs in once) and records
/// the outcome in its facts.
pub fn verify(inv: &mut Inventory, config: &AirwallexConfig, opts: &VerifyOptions) -> VerifyStats {
    let started = std::time::Instant::now();
    let mut stats = VerifyStats::default();
    // Distinct credentials: (base URL, client ID, fingerprint) -> entry indexes.
    let mut jobs: BTreeMap<Credential, (Secret<String>, Vec<usize>)> = BTreeMap::new();
    for (i, e) in inv.entries.iter().enumerate() {
        let (Some(secret), Some(fp)) = (&e.secret, &e.facts.fingerprint) else {
            stats.skipped += 1;
            continue;
        };
        if e.facts.client_id.is_empty() {
            stats.skipped += 1;
            continue;
        }
        let url = base_url_for(config, e.facts.environment);
        jobs.entry((url, e.facts.client_id.clone(), fp.clone()))
            .or_insert_with(|| (secret.clone(), Vec::new()))
            .1
            .push(i);
    }
    if jobs.is_empty() {
        return stats;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            for (_, (_, idx)) in jobs {
                for i in idx {
                    inv.entries[i].facts.login = Some(LoginFacts {
                        verification: Verification::Unknown,
                        detail: format!("cannot start the HTTP runtime: {e}"),
                        permissions: None,
                        base_url: String::new(),
                    });
                }
            }
            return stats;
        }
    };
    let mut clients: HashMap<String, Result<Client, String>> = HashMap::new();
    for (url, _, _) in jobs.keys() {
        clients.entry(url.clone()).or_insert_with(|| {
            Client::new(ClientSettings::from_config(url, config)).map_err(|e| e.to_string())
        });
    }
    let results: Vec<(Vec<usize>, LoginFacts)> = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for ((url, client_id, _), (secret, idx)) in jobs {
            let client = clients[&url].clone();
            let sem = sem.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                let outcome = match &client {
                    Ok(c) => c.login(&client_id, &secret).await,
                    Err(e) => LoginOutcome::Unknown { reason: e.clone() },
                };
                (idx, login_facts(&outcome, &url))
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                out.push(r);
            }
        }
        out
    });
    for (idx, facts) in results {
        stats.logins += 1;
        *stats
            .outcomes
            .entry(facts.verification.as_str().to_string())
            .or_default() += 1;
        for i in idx {
            let label = inv.entries[i].label();
            tracing::info!(key = %label, verification = %facts.verification, "login checked");
            inv.entries[i].facts.login = Some(facts.clone());
        }
    }
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn base_url_by_environment_unless_configured() {
        let mut c = AirwallexConfig::default();
        assert_eq!(
            base_url_for(&c, Environment::Production),
            "https://api.airwallex.com"
        );
        assert_eq!(
            base_url_for(&c, Environment::Sandbox),
            "https://api-demo.airwallex.com"
        );
        c.base_url = Some("http://127.0.0.1:8787".into());
        assert_eq!(
            base_url_for(&c, Environment::Production),
            "http://127.0.0.1:8787"
        );
    }

    #[test]
    fn only_documented_permission_strings_are_understood() {
        assert_eq!(
            effective_access(&s(&["r:awx:*:*", "w:awx:*:*"])),
            EffectiveAccess::Admin
        );
        assert_eq!(
            effective_access(&s(&["r:awx:*:*"])),
            EffectiveAccess::ReadAll
        );
        assert_eq!(effective_access(&[]), EffectiveAccess::Empty);
        assert_eq!(
            effective_access(&s(&["r:awx:transfer:*", "r:awx:*:*"])),
            EffectiveAccess::Unknown(s(&["r:awx:transfer:*"]))
        );
        assert!(EffectiveAccess::Unknown(s(&["x"]))
            .describe()
            .contains("does not document"));
    }
}
