//! `[alerts]` as written (serde, unknown keys refused).

use serde::Deserialize;
use toml::Spanned;

/// `[alerts]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// Immediate at or above this severity; the rest go to the daily digest.
    pub min_severity: Option<Spanned<String>>,
    /// Local time of the daily digest, `HH:MM` in `timezone`.
    pub digest_at: Option<Spanned<String>>,
    /// IANA zone shown beside UTC in alerts and used for the digest time.
    pub timezone: Option<Spanned<String>>,
    /// Repeat an open, unacknowledged finding after this long (`24h`); `off` never repeats.
    pub repeat_interval: Option<Spanned<String>>,
    /// Send a notice when an alerted finding is resolved.
    pub resolved_notice: Option<bool>,
    /// Sender address of emails (`awxguard <awxguard@example.com>`).
    pub from: Option<Spanned<String>>,
    /// Where alerts go when no route matches.
    #[serde(default)]
    pub fallback: Vec<Spanned<String>>,
    /// First retry delay while a sink is down (doubles per attempt up to `retry_max`).
    pub retry_base: Option<Spanned<String>>,
    pub retry_max: Option<Spanned<String>>,
    /// Give a delivery up this long after its message was sealed (`24h`; `off`: never): it is
    /// then `dead`, listed by `alerts list`, counted in `/metrics` and logged as an error.
    pub give_up_after: Option<Spanned<String>>,
    /// Give a delivery up after this many failed attempts (default: no limit by count).
    pub max_attempts: Option<Spanned<i64>>,
    /// Routes by severity and key owner.
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
    pub email: Option<Spanned<RawEmail>>,
    pub webhook: Option<Spanned<RawWebhook>>,
    pub file: Option<Spanned<RawFileSink>>,
}

impl RawAlerts {
    pub(super) fn is_empty(&self) -> bool {
        self.min_severity.is_none()
            && self.digest_at.is_none()
            && self.timezone.is_none()
            && self.repeat_interval.is_none()
            && self.resolved_notice.is_none()
            && self.from.is_none()
            && self.fallback.is_empty()
            && self.retry_base.is_none()
            && self.retry_max.is_none()
            && self.give_up_after.is_none()
            && self.max_attempts.is_none()
            && self.route.is_empty()
            && self.email.is_none()
            && self.webhook.is_none()
            && self.file.is_none()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Matches keys whose inventory `owner` is this.
    pub owner: Option<String>,
    /// Matches alerts at or above this severity.
    pub min_severity: Option<Spanned<String>>,
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub host: Option<Spanned<String>>,
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `plain` (loopback only).
    pub security: Option<Spanned<String>>,
    pub username: Option<String>,
    /// `env:VAR` or `file:PATH`.
    pub password: Option<Spanned<String>>,
    /// PEM file of the CA that signed the server's certificate (else the public web roots).
    pub ca_file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// Name sent in EHLO (default: this host's name).
    pub hello_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// `https://...`, `http://` only to loopback, or `env:VAR` / `file:PATH` holding the URL
    /// (chat webhook URLs carry a token).
    pub url: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSink {
    /// Directory that receives one `.eml` and one `.json` per alert.
    pub dir: Option<Spanned<String>>,
}
