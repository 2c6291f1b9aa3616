//! One login per key, concurrently but within Airwallex's login rate limit, through the one
//! login path (`airwallex::login`), and what the token's `permissions` claim says the key can
//! really do.

use super::Inventory;
use super::LoginFacts;
use crate::airwallex::login::{self, LoginError, Logins, Pair};
use crate::airwallex::{AirwallexConfig, LoginOutcome};
use crate::secret::Secret;
use serde::Serialize;
use std::collections::BTreeMap;
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
    /// Hosts from `[airwallex] allow_hosts` keys were sent to (neither Airwallex nor loopback).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
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
        LoginOutcome::Unknown { reason } | LoginOutcome::Unreachable { reason } => {
            (reason.clone(), None)
        }
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
/// the outcome in its facts. A base URL the transport rule refuses is an error before any login.
pub async fn verify(
    inv: &mut Inventory,
    config: &AirwallexConfig,
    opts: &VerifyOptions,
) -> Result<VerifyStats, LoginError> {
    let started = std::time::Instant::now();
    let mut stats = VerifyStats::default();
    // Distinct credentials: (base URL, client ID, fingerprint) -> entry indexes.
    let mut jobs: BTreeMap<Credential, (Secret<String>, login::Host, Vec<usize>)> = BTreeMap::new();
    for (i, e) in inv.entries.iter().enumerate() {
        let (Some(secret), Some(fp)) = (&e.secret, &e.facts.fingerprint) else {
            stats.skipped += 1;
            continue;
        };
        if e.facts.client_id.is_empty() {
            stats.skipped += 1;
            continue;
        }
        let host = login::hosts(config, Some(e.facts.environment)).remove(0);
        jobs.entry((host.url.clone(), e.facts.client_id.clone(), fp.clone()))
            .or_insert_with(|| (secret.clone(), host, Vec::new()))
            .2
            .push(i);
    }
    if jobs.is_empty() {
        return Ok(stats);
    }
    let hosts: Vec<login::Host> = jobs.values().map(|(_, h, _)| h.clone()).collect();
    let logins = Arc::new(Logins::new(&hosts, config)?);
    let mut targets = Vec::new();
    let mut work = Vec::new();
    for ((_, client_id, fingerprint), (key, host, idx)) in jobs {
        let pair = Pair {
            fingerprint,
            client_id,
            key,
        };
        work.push((pair, vec![host]));
        targets.push(idx);
    }
    let results = logins.login_all(work, opts.concurrency).await;
    for (idx, r) in targets.into_iter().zip(results) {
        let facts = login_facts(&r.outcome, &r.host.url);
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
    stats.allowed_hosts = logins.allowed_hosts();
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
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
