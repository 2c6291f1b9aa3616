//! The Airwallex HTTP client: rustls only, the transport and host rule (`transport`) checked
//! before anything is sent, no redirects, bounded timeouts and response sizes, retries with
//! exponential backoff and jitter on 429, 5xx and network errors, typed errors. The base URL
//! comes from config (or `AWXGUARD_AIRWALLEX_URL`) so tests and the demo point it at the local
//! simulator.

use super::claims::Claims;
use super::transport::{self, Destination, TransportError};
use super::{parse_timestamp, LOGIN_PATH};
use crate::secret::Secret;
use rand::Rng;
use serde::Deserialize;
use std::time::Duration;

/// How the client behaves on the wire.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `https://api.airwallex.com`, a sandbox host, or a local simulator.
    pub base_url: String,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries after the first attempt, on 429, 5xx and network errors.
    pub retries: u32,
    /// First backoff delay; doubles each retry (1, 2, 4 ... 16 s by default), with jitter.
    pub retry_base: Duration,
    /// Hosts beyond Airwallex's and loopback that may receive a key (`[airwallex] allow_hosts`).
    pub allow_hosts: Vec<String>,
    /// A larger response body is not read (the answer counts as a network error).
    pub max_response_bytes: usize,
}

/// The default bound on a response body: far above any Airwallex page.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

/// The bound on a login answer (a token and its expiry: a few KiB at most).
pub const MAX_LOGIN_BYTES: usize = 64 << 10;

impl ClientSettings {
    pub fn new(base_url: &str) -> ClientSettings {
        ClientSettings {
            base_url: base_url.trim_end_matches('/').to_string(),
            timeout: Duration::from_secs(10),
            retries: 4,
            retry_base: Duration::from_secs(1),
            allow_hosts: Vec::new(),
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }

    /// Settings from the `[airwallex]` config for a given base URL.
    pub fn from_config(base_url: &str, c: &super::AirwallexConfig) -> ClientSettings {
        ClientSettings {
            base_url: base_url.trim_end_matches('/').to_string(),
            timeout: Duration::from_millis(c.timeout_ms),
            retries: c.retries,
            retry_base: Duration::from_millis(c.retry_base_ms),
            allow_hosts: c.allow_hosts.clone(),
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot build HTTP client: {0}")]
    Build(String),
    #[error("{url}: {reason}")]
    Network { url: String, reason: String },
    /// The host's name does not resolve, or no route leads to it: no network (or a wrong
    /// host). Never retried: waiting would not bring the network back within a run.
    #[error("{url}: unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: HTTP {status} {code}: {message}")]
    Api {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{url}: unexpected response: {reason}")]
    Protocol { url: String, reason: String },
}

impl Error {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Airwallex's error body: `{"code", "message", "source"?, "details"?, "trace_id"?}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// A login token. The token is a bearer credential, so it is a `Secret`.
#[derive(Debug, Clone)]
pub struct Token {
    pub token: Secret<String>,
    pub expires_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// The decoded claims, when the token is a readable JWT.
    pub claims: Option<Claims>,
}

/// What one login says of a key (findings contract: live, revoked, forbidden, unknown).
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// 201 with a token.
    Live(Box<Token>),
    /// 401: `credentials_invalid`, `credentials_expired`, `unauthorized`.
    Revoked { code: String, message: String },
    /// 403: the request IP is not in the key's whitelist, or a permission is missing.
    Forbidden { code: String, message: String },
    /// Network error, 429 or 5xx after retries, or a response that could not be read.
    Unknown { reason: String },
    /// The host's name did not resolve or no route led to it (no network): nothing was sent.
    Unreachable { reason: String },
}

impl LoginOutcome {
    pub fn verification(&self) -> crate::finding::Verification {
        use crate::finding::Verification;
        match self {
            LoginOutcome::Live(_) => Verification::Live,
            LoginOutcome::Revoked { .. } => Verification::Revoked,
            LoginOutcome::Forbidden { .. } => Verification::Forbidden,
            LoginOutcome::Unknown { .. } | LoginOutcome::Unreachable { .. } => {
                Verification::Unknown
            }
        }
    }
}

#[derive(Deserialize)]
struct LoginBody {
    token: String,
    #[serde(default)]
    expires_at: Option<String>,
}

/// A client bound to one base URL.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    settings: ClientSettings,
    destination: Destination,
}

/// Result of one attempt: a final answer, something worth retrying, or a failure that retrying
/// would not mend.
enum Attempt {
    Done(u16, Vec<u8>),
    Retry(String),
    Fail(String),
    Unreachable(String),
}

/// Whether a request failed before reaching the host for want of a network: the name does not
/// resolve (`dns error`), or the network or host is unreachable.
fn is_unreachable(e: &reqwest::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::NetworkUnreachable | std::io::ErrorKind::HostUnreachable
            ) {
                return true;
            }
        }
        let m = c.to_string();
        // hyper-util's resolver error ("dns error: failed to lookup address information").
        if m.starts_with("dns error") || m.contains("failed to lookup address") {
            return true;
        }
        cur = c.source();
    }
    false
}

enum ReadError {
    TooLarge(usize),
    Io(reqwest::Error),
}

/// The response body, at most `limit` bytes (a longer one is an error, never read whole).
async fn read_bounded(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Io)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl Client {
    /// A client for `settings.base_url`, which must pass the transport rule (`transport::check`):
    /// otherwise an error, and no request can be made.
    pub fn new(settings: ClientSettings) -> Result<Client, Error> {
        let destination = transport::check(&settings.base_url, &settings.allow_hosts)?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("awxguard/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Build(e.to_string()))?;
        Ok(Client {
            http,
            settings,
            destination,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.settings.base_url
    }

    /// What the base URL points at (Airwallex, loopback, or a host from `allow_hosts`).
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The delay before retry `attempt` (0-based): base * 2^attempt, capped at 16 * base, times a
    /// random factor in [0.5, 1.0] so many clients do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt).min(16);
        let full = self.settings.retry_base.saturating_mul(factor);
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        full.mul_f64(jitter)
    }

    async fn send_once(&self, req: reqwest::RequestBuilder, limit: usize) -> Attempt {
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // The body is read within the request's timeout (reqwest's timeout covers the
                // whole exchange): an endless or trickling body ends as an error, never a hang.
                match read_bounded(resp, limit).await {
                    Ok(body) if status == 429 || status >= 500 => {
                        let b: ApiErrorBody = serde_json::from_slice(&body).unwrap_or_default();
                        Attempt::Retry(format!("HTTP {status} {}", b.code).trim().to_string())
                    }
                    Ok(body) => Attempt::Done(status, body),
                    Err(ReadError::TooLarge(n)) => {
                        Attempt::Fail(format!("the response is larger than {n} bytes; not read"))
                    }
                    Err(ReadError::Io(e)) => {
                        Attempt::Retry(format!("reading the response: {}", error_chain(&e)))
                    }
                }
            }
            Err(e) if is_unreachable(&e) => Attempt::Unreachable(error_chain(&e)),
            Err(e) => Attempt::Retry(error_chain(&e)),
        }
    }

    /// Sends the request built by `make` until it gets a final answer or runs out of retries.
    async fn send<F>(&self, url: &str, limit: usize, make: F) -> Result<(u16, Vec<u8>), Error>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let mut last = String::new();
        for attempt in 0..=self.settings.retries {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt - 1)).await;
            }
            match self.send_once(make(), limit).await {
                Attempt::Done(status, body) => return Ok((status, body)),
                Attempt::Retry(reason) => {
                    tracing::debug!(%url, attempt, %reason, "retrying");
                    last = reason;
                }
                Attempt::Fail(reason) => {
                    return Err(Error::Protocol {
                        url: url.to_string(),
                        reason,
                    })
                }
                Attempt::Unreachable(reason) => {
                    return Err(Error::Unreachable {
                        url: url.to_string(),
                        reason,
                    })
                }
            }
        }
        Err(Error::Network {
            url: url.to_string(),
            reason: format!(
                "gave up after {} attempts: {last}",
                self.settings.retries + 1
            ),
        })
    }

    /// `POST /api/v1/authentication/login` with `x-client-id` and `x-api-key`. Exactly one login
    /// unless the answer is 429, 5xx or a network error, which are retried with backoff.
    pub async fn login(&self, client_id: &str, api_key: &Secret<String>) -> LoginOutcome {
        crate::redact::hold(api_key.expose());
        let url = format!("{}{}", self.settings.base_url, LOGIN_PATH);
        let limit = MAX_LOGIN_BYTES.min(self.settings.max_response_bytes);
        let result = self
            .send(&url, limit, || {
                self.http
                    .post(&url)
                    .header("x-client-id", client_id)
                    .header("x-api-key", api_key.expose())
                    .header("content-type", "application/json")
                    .body("{}")
            })
            .await;
        match result {
            Err(e @ Error::Unreachable { .. }) => LoginOutcome::Unreachable {
                reason: e.to_string(),
            },
            Err(e) => LoginOutcome::Unknown {
                reason: e.to_string(),
            },
            Ok((status, body)) => classify_login(status, &body),
        }
    }

    /// `GET path` with a bearer token; 429/5xx retried. Returns the JSON body of a 2xx answer,
    /// or a typed error naming the URL, status and Airwallex error code.
    pub async fn get_json(
        &self,
        token: &Secret<String>,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<serde_json::Value, Error> {
        let url = format!("{}{}", self.settings.base_url, path);
        let (status, body) = self
            .send(&url, self.settings.max_response_bytes, || {
                self.http.get(&url).bearer_auth(token.expose()).query(query)
            })
            .await?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                url,
                reason: format!("body is not JSON: {e}"),
            })
        } else {
            let b: ApiErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            Err(Error::Api {
                url,
                status,
                code: b.code,
                message: b.message,
            })
        }
    }
}

fn classify_login(status: u16, body: &[u8]) -> LoginOutcome {
    let err = || serde_json::from_slice::<ApiErrorBody>(body).unwrap_or_default();
    match status {
        200 | 201 => match serde_json::from_slice::<LoginBody>(body) {
            Ok(b) => LoginOutcome::Live(Box::new(Token {
                // A bearer credential: held by the redaction gate from here on.
                token: {
                    crate::redact::hold(&b.token);
                    Secret::new(b.token.clone())
                },
                claims: Claims::decode(&b.token),
                expires_at: b.expires_at.as_deref().and_then(parse_timestamp),
            })),
            Err(e) => LoginOutcome::Unknown {
                reason: format!("login answered {status} without a token: {e}"),
            },
        },
        401 => {
            let b = err();
            LoginOutcome::Revoked {
                code: b.code,
                message: b.message,
            }
        }
        403 => {
            let b = err();
            LoginOutcome::Forbidden {
                code: b.code,
                message: b.message,
            }
        }
        other => {
            let b = err();
            LoginOutcome::Unknown {
                reason: format!("login answered HTTP {other} {} {}", b.code, b.message)
                    .trim()
                    .to_string(),
            }
        }
    }
}

/// An error with its causes, without the URL's query (which never holds a secret here, but
/// reqwest repeats the URL in every layer).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
