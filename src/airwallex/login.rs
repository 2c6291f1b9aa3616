//! The one login path: every caller that checks keys by logging in (`scan --verify`, `inventory
//! verify`, `audit`, and later the watch and the proxy's upstream) goes through `Logins`. Each
//! host gets one `Client`, built under the transport rule, so a key is never sent where the rule
//! forbids; each credential logs in at its hosts in order, stopping at the first 201; at most
//! `concurrency` logins are in flight.

use super::client::{Client, ClientSettings, LoginOutcome};
use super::model::host::{PRODUCTION_URL, SANDBOX_URLS};
use super::model::Environment;
use super::transport::Destination;
use super::AirwallexConfig;
use crate::finding::Verification;
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Where logins go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub url: String,
    /// `production`, `sandbox`, or `configured`.
    pub kind: &'static str,
}

impl Host {
    /// How a message names the host.
    pub fn phrase(&self) -> String {
        match self.kind {
            "configured" => "the configured Airwallex URL".to_string(),
            kind => format!("Airwallex {kind}"),
        }
    }
}

/// The hosts a key may be sent to: the configured base URL alone; else Airwallex's host for the
/// key's environment; for a key whose environment is unknown (found by a scan), production and
/// then the sandbox hosts. Nothing else, ever.
pub fn hosts(config: &AirwallexConfig, environment: Option<Environment>) -> Vec<Host> {
    let host = |url: &str, kind| Host {
        url: url.to_string(),
        kind,
    };
    match (&config.base_url, environment) {
        (Some(url), _) => vec![host(url, "configured")],
        (None, Some(Environment::Production)) => vec![host(PRODUCTION_URL, "production")],
        (None, Some(Environment::Sandbox)) => vec![host(SANDBOX_URLS[0], "sandbox")],
        (None, None) => std::iter::once(host(PRODUCTION_URL, "production"))
            .chain(SANDBOX_URLS.iter().map(|u| host(u, "sandbox")))
            .collect(),
    }
}

/// One client-ID-plus-key pair to log in with.
#[derive(Debug, Clone)]
pub struct Pair {
    pub fingerprint: String,
    pub client_id: String,
    pub key: Secret<String>,
}

/// What the logins said of one pair.
#[derive(Debug, Clone)]
pub struct LoginResult {
    pub pair: Pair,
    pub verification: Verification,
    /// The host that gave the deciding answer.
    pub host: Host,
    /// Each host's answer, in the order asked (`201`, `401 credentials_invalid`, ...), each
    /// prefixed by its URL when more than one host was asked.
    pub detail: String,
    /// The deciding answer (with the token, for a live key).
    pub outcome: LoginOutcome,
    /// No host could be reached (no network): the pair was not tried at all.
    pub unreachable: bool,
}

/// Why logins could not start: a host the transport rule refuses (nothing was sent).
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct LoginError {
    pub url: String,
    pub source: super::Error,
}

/// How strongly an answer speaks for the key being usable: a 201 anywhere wins; a 403 proves
/// the key exists; an unknown answer (network, 429, 5xx) outranks a 401, since it leaves open
/// that the key works where we could not ask.
pub fn rank(v: Verification) -> u8 {
    match v {
        Verification::Live => 3,
        Verification::Forbidden => 2,
        Verification::Unknown => 1,
        Verification::Revoked => 0,
    }
}

fn answer(outcome: &LoginOutcome) -> String {
    match outcome {
        LoginOutcome::Live(_) => "201".into(),
        LoginOutcome::Revoked { code, .. } => format!("401 {code}").trim().to_string(),
        LoginOutcome::Forbidden { code, .. } => format!("403 {code}").trim().to_string(),
        LoginOutcome::Unknown { reason } => format!("unknown ({reason})"),
        LoginOutcome::Unreachable { reason } => format!("not sent ({reason})"),
    }
}

/// Clients for a set of hosts, each built under the transport rule.
pub struct Logins {
    clients: BTreeMap<String, (Host, Client)>,
    /// Hosts found unreachable (no network) in this run, with why: later pairs skip them at
    /// once instead of each waiting for the same failure.
    unreachable: Mutex<BTreeMap<String, String>>,
    /// Pairs done so far, for progress reports.
    done: AtomicUsize,
}

impl Logins {
    /// A client per host; the first host the transport rule refuses is an error, before any
    /// login.
    pub fn new(hosts: &[Host], config: &AirwallexConfig) -> Result<Logins, LoginError> {
        let mut clients = BTreeMap::new();
        for h in hosts {
            if clients.contains_key(&h.url) {
                continue;
            }
            let c = Client::new(ClientSettings::from_config(&h.url, config)).map_err(|source| {
                LoginError {
                    url: h.url.clone(),
                    source,
                }
            })?;
            clients.insert(h.url.clone(), (h.clone(), c));
        }
        Ok(Logins {
            clients,
            unreachable: Mutex::new(BTreeMap::new()),
            done: AtomicUsize::new(0),
        })
    }

    /// The hosts from `[airwallex] allow_hosts` these logins may use: every report that sent a
    /// key there names them.
    pub fn allowed_hosts(&self) -> Vec<String> {
        self.clients
            .values()
            .filter(|(_, c)| matches!(c.destination(), Destination::Allowed(_)))
            .map(|(h, _)| h.url.clone())
            .collect()
    }

    /// How many pairs `login_all` has finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// The hosts found unreachable in this run, with why.
    pub fn unreachable_hosts(&self) -> BTreeMap<String, String> {
        self.unreachable
            .lock()
            .expect("unreachable poisoned")
            .clone()
    }

    /// Logs one pair in at each of `hosts` in turn, stopping at the first 201.
    async fn login_one(&self, pair: Pair, hosts: &[Host]) -> LoginResult {
        let result = self.login_hosts(pair, hosts).await;
        self.done.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn login_hosts(&self, pair: Pair, hosts: &[Host]) -> LoginResult {
        let mut best: Option<(Verification, Host, LoginOutcome)> = None;
        let mut answers = Vec::new();
        let (mut tried, mut reached) = (false, false);
        for host in hosts {
            let Some((_, client)) = self.clients.get(&host.url) else {
                continue;
            };
            tried = true;
            let known = self
                .unreachable
                .lock()
                .expect("unreachable poisoned")
                .get(&host.url)
                .cloned();
            let outcome = match known {
                Some(reason) => LoginOutcome::Unreachable { reason },
                None => client.login(&pair.client_id, &pair.key).await,
            };
            match &outcome {
                LoginOutcome::Unreachable { reason } => {
                    self.unreachable
                        .lock()
                        .expect("unreachable poisoned")
                        .insert(host.url.clone(), reason.clone());
                }
                _ => reached = true,
            }
            let v = outcome.verification();
            answers.push(if hosts.len() > 1 {
                format!("{}: {}", host.url, answer(&outcome))
            } else {
                answer(&outcome)
            });
            if best.as_ref().is_none_or(|(b, _, _)| rank(v) > rank(*b)) {
                best = Some((v, host.clone(), outcome));
            }
            if v == Verification::Live {
                break;
            }
        }
        let (verification, host, outcome) = best.unwrap_or_else(|| {
            let reason = "no host to log in at".to_string();
            let host = Host {
                url: String::new(),
                kind: "configured",
            };
            (
                Verification::Unknown,
                host,
                LoginOutcome::Unknown { reason },
            )
        });
        LoginResult {
            pair,
            verification,
            host,
            detail: answers.join("; "),
            outcome,
            unreachable: tried && !reached,
        }
    }

    /// Logs every pair in at its hosts (each one of the hosts given to `new`), at most
    /// `concurrency` at once. Results come back in the order of `jobs`.
    pub async fn login_all(
        self: &Arc<Self>,
        jobs: Vec<(Pair, Vec<Host>)>,
        concurrency: usize,
    ) -> Vec<LoginResult> {
        let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (pair, hosts)) in jobs.into_iter().enumerate() {
            let me = self.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore open");
                (i, me.login_one(pair, &hosts).await)
            });
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            out.push(r.expect("login task panicked"));
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_base_url_keys_go_to_airwallex_hosts_only() {
        let c = AirwallexConfig::default();
        let urls = |e| -> Vec<String> { hosts(&c, e).into_iter().map(|h| h.url).collect() };
        assert_eq!(
            urls(None),
            [
                "https://api.airwallex.com",
                "https://api-demo.airwallex.com",
                "https://api.sandbox.airwallex.com"
            ]
        );
        assert_eq!(
            urls(Some(Environment::Production)),
            ["https://api.airwallex.com"]
        );
        assert_eq!(
            urls(Some(Environment::Sandbox)),
            ["https://api-demo.airwallex.com"]
        );
        let c = AirwallexConfig {
            base_url: Some("http://127.0.0.1:9".into()),
            ..AirwallexConfig::default()
        };
        assert_eq!(
            hosts(&c, Some(Environment::Sandbox)),
            [Host {
                url: "http://127.0.0.1:9".into(),
                kind: "configured"
            }]
        );
    }

    #[test]
    fn a_refused_host_stops_logins_before_they_start() {
        let c = AirwallexConfig::default();
        for url in ["http://example.invalid", "https://example.invalid"] {
            let h = [Host {
                url: url.into(),
                kind: "configured",
            }];
            let err = Logins::new(&h, &c).err().expect("refused").to_string();
            assert!(err.contains("refusing to send API keys"), "{err}");
        }
    }

    /// The base URL a key logs in at: the configured one, else Airwallex's host for its
    /// environment (moved from inventory::verify).
    #[test]
    fn base_url_by_environment_unless_configured() {
        let mut c = AirwallexConfig::default();
        assert_eq!(
            hosts(&c, Some(Environment::Production))[0].url,
            "https://api.airwallex.com"
        );
        assert_eq!(
            hosts(&c, Some(Environment::Sandbox))[0].url,
            "https://api-demo.airwallex.com"
        );
        c.base_url = Some("http://127.0.0.1:8787".into());
        assert_eq!(
            hosts(&c, Some(Environment::Production))[0].url,
            "http://127.0.0.1:8787"
        );
    }

    #[test]
    fn answers_rank_live_forbidden_unknown_revoked() {
        use Verification::*;
        assert!(rank(Live) > rank(Forbidden));
        assert!(rank(Forbidden) > rank(Unknown));
        assert!(rank(Unknown) > rank(Revoked));
    }
}
