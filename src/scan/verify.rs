//! `scan --verify`: one login per distinct client-ID-plus-key pair tells a live key (an
//! emergency) from a revoked one (history). Keys stay in memory, wrapped in `Secret`, and go only
//! to the configured Airwallex base URL or, when none is configured, to Airwallex's documented
//! hosts (production, then the sandbox hosts, stopping at the first 201), through the one login
//! path (`airwallex::login`), which refuses any other destination before a key is sent.

use crate::airwallex::login::{self, rank, LoginError, Logins};
pub use crate::airwallex::login::{Host, Pair};
use crate::airwallex::AirwallexConfig;
use crate::finding::{Finding, Severity, Verification};
use crate::rules::leak::{LeakRule, Validator};
use crate::scan::Match;
use crate::secret::{preview, Secret};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// How many logins run at once.
pub const CONCURRENCY: usize = 4;

/// Why a key found was not verified.
pub const NO_CLIENT_ID: &str = "not verified: no client ID next to the key";

/// Why verification could not run at all: a destination the transport rule refuses (nothing
/// was sent).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct VerifyError(#[from] LoginError);

/// One API key found by a scan, with every client ID found next to it. In memory only.
#[derive(Clone)]
pub struct Candidate {
    pub key: Secret<String>,
    pub client_ids: BTreeSet<String>,
}

/// The API keys behind a scan's findings, by fingerprint. Filled during the scan (from many
/// threads) when `--verify` asks for it; never serialized, and its `Debug` shows only counts.
#[derive(Default)]
pub struct Secrets {
    inner: Mutex<BTreeMap<String, Candidate>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} keys)", self.len())
    }
}

impl Secrets {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Candidate>> {
        self.inner.lock().expect("secrets poisoned")
    }

    /// Keeps the key of an API-key match (rules validated as Airwallex API keys) and the client
    /// ID found next to it. Other secrets (access tokens) cannot log in and are not kept.
    pub fn keep(&self, rule: &LeakRule, fingerprint: &str, m: &Match) {
        if rule.validate != Some(Validator::AirwallexApiKey) {
            return;
        }
        self.insert(fingerprint, &m.secret, m.client_id.as_deref());
    }

    /// Keeps `key` (fingerprint `fingerprint`) with `client_id` if one was found next to it.
    pub fn insert(&self, fingerprint: &str, key: &str, client_id: Option<&str>) {
        let mut inner = self.lock();
        let c = inner
            .entry(fingerprint.to_string())
            .or_insert_with(|| Candidate {
                key: Secret::new(key.to_string()),
                client_ids: BTreeSet::new(),
            });
        if let Some(cid) = client_id {
            c.client_ids.insert(cid.to_string());
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, fingerprint: &str) -> Option<Candidate> {
        self.lock().get(fingerprint).cloned()
    }
}

/// The hosts a found key may be sent to: the configured base URL alone, else Airwallex
/// production and then the sandbox hosts.
pub fn hosts(config: &AirwallexConfig) -> Vec<Host> {
    login::hosts(config, None)
}

/// A key that was not verified, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotVerified {
    pub fingerprint: String,
    pub preview: String,
    pub reason: String,
}

/// What the logins said of one pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairResult {
    pub fingerprint: String,
    pub preview: String,
    /// The client ID's preview.
    pub client_id: String,
    pub verification: Verification,
    /// The host that gave the deciding answer.
    pub host: Host,
    /// Each host's answer, in the order asked (`201`, `401 credentials_invalid`, ...).
    pub detail: String,
    /// No host could be reached (no network): nothing was sent for this pair.
    pub unreachable: bool,
}

/// What a finding whose key could not be sent anywhere says.
pub const UNREACHABLE: &str = "unverified: unreachable (no network; the key was not sent)";

/// After this long, verification reports its progress on standard error.
const PROGRESS_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a key of an API-key rule has no kept secret: the input kind does not hand keys over yet.
pub const NOT_KEPT: &str = "this kind of scan did not keep the key for --verify";

/// The distinct pairs for the keys behind `findings`, and the keys that cannot be verified.
/// `key_rules` are the ids of rules that report API keys (the only secrets a login can test).
pub fn pairs_for(
    findings: &[Finding],
    secrets: &Secrets,
    key_rules: &BTreeSet<String>,
) -> (Vec<Pair>, Vec<NotVerified>) {
    let mut wanted: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in findings {
        if let Some(s) = &f.secret {
            wanted.entry(s.fingerprint.as_str()).or_insert(f);
        }
    }
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();
    for (fp, f) in wanted {
        let Some(c) = secrets.get(fp) else {
            if key_rules.contains(&f.rule) {
                skipped.push(NotVerified {
                    fingerprint: fp.to_string(),
                    preview: f
                        .secret
                        .as_ref()
                        .map(|s| s.preview.clone())
                        .unwrap_or_default(),
                    reason: NOT_KEPT.into(),
                });
            }
            continue;
        };
        if c.client_ids.is_empty() {
            skipped.push(NotVerified {
                fingerprint: fp.to_string(),
                preview: c.key.preview(),
                reason: "no client ID next to the key".into(),
            });
        }
        for cid in &c.client_ids {
            pairs.push(Pair {
                fingerprint: fp.to_string(),
                client_id: cid.clone(),
                key: c.key.clone(),
            });
        }
    }
    (pairs, skipped)
}

/// Verifies `pairs` against `hosts`, at most `concurrency` at once. Results come back sorted by
/// fingerprint and client ID.
pub async fn verify_pairs(
    pairs: Vec<Pair>,
    hosts: &[Host],
    config: &AirwallexConfig,
    concurrency: usize,
) -> Result<Vec<PairResult>, VerifyError> {
    let logins = Arc::new(Logins::new(hosts, config)?);
    Ok(verify_with(&logins, pairs, hosts, concurrency).await)
}

async fn verify_with(
    logins: &Arc<Logins>,
    pairs: Vec<Pair>,
    hosts: &[Host],
    concurrency: usize,
) -> Vec<PairResult> {
    let total = pairs.len();
    let jobs = pairs.into_iter().map(|p| (p, hosts.to_vec())).collect();
    // When logins take more than a moment (slow hosts, retries), say how far they are.
    let progress = {
        let logins = logins.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + PROGRESS_AFTER,
                PROGRESS_AFTER,
            );
            loop {
                tick.tick().await;
                tell!(
                    "awxguard: verifying keys by login: {} of {total} pairs done",
                    logins.done()
                );
            }
        })
    };
    let results = logins.login_all(jobs, concurrency).await;
    progress.abort();
    let mut out: Vec<PairResult> = results
        .into_iter()
        .map(|r| {
            tracing::debug!(
                key = %r.pair.key.preview(),
                fingerprint = %r.pair.fingerprint,
                client_id = %preview(&r.pair.client_id),
                verification = %r.verification,
                detail = %r.detail,
                "verified"
            );
            PairResult {
                preview: r.pair.key.preview(),
                fingerprint: r.pair.fingerprint,
                client_id: preview(&r.pair.client_id),
                verification: r.verification,
                host: r.host,
                detail: r.detail,
                unreachable: r.unreachable,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.fingerprint, &a.client_id).cmp(&(&b.fingerprint, &b.client_id)));
    out
}

/// Writes the outcome onto every finding of each verified key: the `verification` field, and
/// the message; a live key becomes `critical`. Revoked, forbidden and unknown keys keep their
/// rule's severity (see README: a 401 proves only that this pair does not log in now).
pub fn apply(findings: &mut [Finding], results: &[PairResult], skipped: &[NotVerified]) {
    let mut best: BTreeMap<&str, &PairResult> = BTreeMap::new();
    for r in results {
        let e = best.entry(r.fingerprint.as_str()).or_insert(r);
        if rank(r.verification) > rank(e.verification) {
            *e = r;
        }
    }
    let skipped: BTreeMap<&str, &str> = skipped
        .iter()
        .map(|s| (s.fingerprint.as_str(), s.reason.as_str()))
        .collect();
    for f in findings.iter_mut() {
        let Some(fp) = f.secret.as_ref().map(|s| s.fingerprint.clone()) else {
            continue;
        };
        if let Some(r) = best.get(fp.as_str()) {
            f.verification = Some(r.verification);
            let said = match r.verification {
                Verification::Live => {
                    f.severity = Severity::Critical;
                    format!("verified live: it logs in to {}", r.host.phrase())
                }
                Verification::Revoked => format!(
                    "login refused with 401 by {}: the key looks revoked",
                    r.host.phrase()
                ),
                Verification::Forbidden => format!(
                    "login refused with 403 by {}: the key exists but this IP is not in its \
                     whitelist (or it lacks permission); treat it as real",
                    r.host.phrase()
                ),
                Verification::Unknown if r.unreachable => UNREACHABLE.to_string(),
                Verification::Unknown => {
                    "could not verify (network error, rate limit or server error after retries)"
                        .to_string()
                }
            };
            f.message = format!("{}; {said}", f.message);
        } else if let Some(reason) = skipped.get(fp.as_str()) {
            f.message = format!("{}; not verified: {reason}", f.message);
        }
    }
}

/// The summary's `verification` section of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerificationSummary {
    /// The hosts keys could be sent to, in the order asked.
    pub hosts: Vec<String>,
    /// Of those, the hosts `[airwallex] allow_hosts` let keys go to (neither Airwallex nor
    /// loopback).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    pub pairs: usize,
    /// Pairs per outcome: `live`, `revoked`, `forbidden`, `unknown`.
    pub outcomes: BTreeMap<&'static str, usize>,
    pub results: Vec<PairSummary>,
    pub not_verified: Vec<NotVerifiedSummary>,
}

/// One pair's outcome in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairSummary {
    pub fingerprint: String,
    pub preview: String,
    pub client_id: String,
    pub verification: Verification,
    pub host: String,
    pub detail: String,
}

/// A key not verified, in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotVerifiedSummary {
    pub fingerprint: String,
    pub preview: String,
    pub reason: String,
}

/// The summary's `verification` section.
pub fn summary_section(
    hosts: &[Host],
    results: &[PairResult],
    skipped: &[NotVerified],
) -> VerificationSummary {
    let mut outcomes = BTreeMap::new();
    for v in ["live", "revoked", "forbidden", "unknown"] {
        outcomes.insert(v, 0usize);
    }
    for r in results {
        *outcomes.entry(r.verification.as_str()).or_insert(0) += 1;
    }
    VerificationSummary {
        hosts: hosts.iter().map(|h| h.url.clone()).collect(),
        allowed_hosts: Vec::new(),
        pairs: results.len(),
        outcomes,
        results: results
            .iter()
            .map(|r| PairSummary {
                fingerprint: r.fingerprint.clone(),
                preview: r.preview.clone(),
                client_id: r.client_id.clone(),
                verification: r.verification,
                host: r.host.url.clone(),
                detail: r.detail.clone(),
            })
            .collect(),
        not_verified: skipped
            .iter()
            .map(|s| NotVerifiedSummary {
                fingerprint: s.fingerprint.clone(),
                preview: s.preview.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
    }
}

/// The notes a person reads under the human report.
pub fn notes(results: &[PairResult], skipped: &[NotVerified]) -> Vec<String> {
    let mut out = Vec::new();
    let count = |v: Verification| results.iter().filter(|r| r.verification == v).count();
    out.push(format!(
        "verification: {} client-ID-plus-key {}: {} live, {} revoked, {} forbidden, {} unknown",
        results.len(),
        if results.len() == 1 { "pair" } else { "pairs" },
        count(Verification::Live),
        count(Verification::Revoked),
        count(Verification::Forbidden),
        count(Verification::Unknown),
    ));
    // Pairs no host could be reached for have one note (`offline_note`), not one each.
    for r in results
        .iter()
        .filter(|r| r.verification == Verification::Unknown && !r.unreachable)
    {
        out.push(format!(
            "key {} ({}) with client ID {} could not be verified: {}",
            r.preview, r.fingerprint, r.client_id, r.detail
        ));
    }
    for s in skipped {
        out.push(format!(
            "key {} ({}) not verified: {}",
            s.preview, s.fingerprint, s.reason
        ));
    }
    out
}

/// The one note for pairs no host could be reached for (no network), naming the hosts and why.
pub fn offline_note(
    results: &[PairResult],
    unreachable: &BTreeMap<String, String>,
) -> Option<String> {
    let n = results.iter().filter(|r| r.unreachable).count();
    if n == 0 {
        return None;
    }
    let why = unreachable
        .values()
        .next()
        .map(|r| match r.find("dns error") {
            Some(i) => r[i..].to_string(),
            None => r.clone(),
        })
        .unwrap_or_default();
    Some(format!(
        "no network: could not reach {} ({why}); {n} client-ID-plus-key {} not verified: \
         nothing was sent, run --verify again with a network",
        unreachable.keys().cloned().collect::<Vec<_>>().join(", "),
        if n == 1 { "pair" } else { "pairs" },
    ))
}

/// Verifies the keys behind `findings` and writes the outcome onto them; returns the summary
/// section and notes. A destination the transport rule refuses is an error before any login.
pub async fn verify_findings(
    findings: &mut [Finding],
    secrets: &Secrets,
    key_rules: &BTreeSet<String>,
    config: &AirwallexConfig,
) -> Result<(VerificationSummary, Vec<String>), VerifyError> {
    let hosts = hosts(config);
    let logins = Arc::new(Logins::new(&hosts, config)?);
    let (pairs, skipped) = pairs_for(findings, secrets, key_rules);
    tracing::info!(
        pairs = pairs.len(),
        hosts = %hosts.iter().map(|h| h.url.as_str()).collect::<Vec<_>>().join(", "),
        "verifying keys by login"
    );
    let results = if pairs.is_empty() {
        Vec::new()
    } else {
        verify_with(&logins, pairs, &hosts, CONCURRENCY).await
    };
    apply(findings, &results, &skipped);
    let mut section = summary_section(&hosts, &results, &skipped);
    let mut notes = notes(&results, &skipped);
    notes.extend(offline_note(&results, &logins.unreachable_hosts()));
    if !results.is_empty() {
        section.allowed_hosts = logins.allowed_hosts();
        for h in &section.allowed_hosts {
            notes.push(format!(
                "keys were sent to {h}, a host [airwallex] allow_hosts lets keys go to (not \
                 Airwallex's own)"
            ));
        }
    }
    Ok((section, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_base_url_keys_go_to_production_then_the_sandbox_hosts_only() {
        let h = hosts(&AirwallexConfig::default());
        let urls: Vec<&str> = h.iter().map(|h| h.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://api.airwallex.com",
                "https://api-demo.airwallex.com",
                "https://api.sandbox.airwallex.com"
            ]
        );
        assert_eq!(h[0].kind, "production");
        assert!(h[1..].iter().all(|h| h.kind == "sandbox"));
    }

    #[test]
    fn a_configured_base_url_is_the_only_host() {
        let c = AirwallexConfig {
            base_url: Some("http://127.0.0.1:9".into()),
            ..AirwallexConfig::default()
        };
        assert_eq!(
            hosts(&c),
            [Host {
                url: "http://127.0.0.1:9".into(),
                kind: "configured"
            }]
        );
    }

    #[test]
    fn keys_without_a_client_id_are_not_paired() {
        let s = Secrets::default();
        let key = "k".repeat(96);
        let fp = crate::secret::fingerprint(key.as_bytes());
        s.insert(&fp, &key, None);
        let mut f = Finding::new("leak.airwallex.api-key", Severity::High, "m", &["p"]);
        f.secret = Some(crate::finding::SecretRef {
            preview: preview(&key),
            fingerprint: fp.clone(),
            client_id: None,
        });
        let mut findings = vec![f.clone()];
        let rules = BTreeSet::from(["leak.airwallex.api-key".to_string()]);
        let (pairs, skipped) = pairs_for(&findings, &s, &rules);
        assert!(pairs.is_empty());
        assert_eq!(skipped.len(), 1);
        apply(&mut findings, &[], &skipped);
        assert!(findings[0].message.ends_with(NO_CLIENT_ID));
        assert_eq!(findings[0].verification, None);
        assert!(!format!("{s:?}").contains(&key));
        // A key the scan did not keep (e.g. a history scan without secrets) says so too.
        let mut findings = vec![f];
        let (_, skipped) = pairs_for(&findings, &Secrets::default(), &rules);
        apply(&mut findings, &[], &skipped);
        assert!(
            findings[0].message.ends_with(NOT_KEPT),
            "{}",
            findings[0].message
        );
    }
}
