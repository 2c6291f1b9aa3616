//! The `[alerts]` section: when alerts go out (immediate at or above `min_severity`, a daily
//! digest for the rest, repeats while open), to whom (routes by severity and key owner, a
//! fallback), and through which sinks (email over SMTP, a webhook, a directory of files).
//! Credentials are `env:`/`file:` references, never literals.

mod credential;
mod raw;
mod validate;

pub(crate) use credential::parse_credential;
pub use credential::CredentialRef;
pub use raw::RawAlerts;
pub(super) use validate::validate;

use crate::finding::Severity;
use chrono::NaiveTime;
use std::path::PathBuf;
use std::time::Duration;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required, never optional).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No TLS: only to a loopback relay.
    Plain,
}

#[derive(Debug, Clone)]
pub struct EmailSink {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<CredentialRef>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub hello_name: Option<String>,
}

/// The webhook's URL: written in the config, or read from a reference when used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSpec {
    Literal(String),
    Ref(CredentialRef),
}

#[derive(Debug, Clone)]
pub struct WebhookSink {
    pub url: UrlSpec,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct FileSink {
    pub dir: PathBuf,
}

/// One route: alerts matching every condition given go to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub owner: Option<String>,
    pub min_severity: Option<Severity>,
    pub to: Vec<String>,
}

/// The validated `[alerts]` section.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    pub min_severity: Severity,
    pub digest_at: NaiveTime,
    pub timezone: chrono_tz::Tz,
    pub repeat_interval: Option<Duration>,
    pub resolved_notice: bool,
    pub from: String,
    pub fallback: Vec<String>,
    pub routes: Vec<Route>,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// None: never give up by age.
    pub give_up_after: Option<Duration>,
    /// None: never give up by count.
    pub max_attempts: Option<u32>,
    pub email: Option<EmailSink>,
    pub webhook: Option<WebhookSink>,
    pub file: Option<FileSink>,
}

impl AlertsConfig {
    /// Defaults around the given sinks; for tests and the demo.
    pub fn with_sinks(
        email: Option<EmailSink>,
        webhook: Option<WebhookSink>,
        file: Option<FileSink>,
    ) -> AlertsConfig {
        AlertsConfig {
            min_severity: Severity::High,
            digest_at: NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"),
            timezone: chrono_tz::UTC,
            repeat_interval: Some(Duration::from_secs(24 * 3600)),
            resolved_notice: false,
            from: "awxguard <awxguard@localhost>".into(),
            fallback: vec!["security@localhost".into()],
            routes: Vec::new(),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            give_up_after: Some(Duration::from_secs(24 * 3600)),
            max_attempts: None,
            email,
            webhook,
            file,
        }
    }
}

/// Parses `250ms`, `30s`, `5m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; write e.g. 30s, 5m, 24h or 7d"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 30s, 5m, 24h or 7d"))?;
    let per = match unit {
        "ms" => 0,
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unit {unit:?} is not one of ms, s, m, h, d")),
    };
    // Ten years at most: longer is a typo, and a duration must stay addable to a time.
    const MAX_SECS: u64 = 3650 * 86_400;
    let secs = if per == 0 {
        n / 1000
    } else {
        n.saturating_mul(per)
    };
    if secs > MAX_SECS {
        return Err(format!("{s:?} is longer than ten years (3650d)"));
    }
    Ok(if per == 0 {
        Duration::from_millis(n)
    } else {
        Duration::from_secs(secs)
    })
}

/// Whether `host` names this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a webhook URL may be used: HTTPS anywhere, plain HTTP only to loopback.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        if is_loopback_host(host) {
            return Ok(());
        }
        return Err(
            "plain http:// is allowed only to loopback (127.0.0.1, ::1, localhost); use https://"
                .into(),
        );
    }
    Err("is not an http(s) URL; e.g. \"https://hooks.example.com/awxguard\"".into())
}
#[cfg(test)]
mod tests;
