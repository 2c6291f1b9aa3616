//! The `[alerts]` section: when alerts go out (immediate at or above `min_severity`, a daily
//! digest for the rest, repeats while open), to whom (routes by severity and key owner, a
//! fallback), and through which sinks (email over SMTP, a webhook, a directory of files).
//! Credentials are `env:`/`file:` references, never literals.

use super::{ConfigProblem, Source};
use crate::finding::Severity;
use crate::secret::Secret;
use chrono::NaiveTime;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
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
    fn is_empty(&self) -> bool {
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

/// A credential named by reference, read when it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    Env(String),
    File(PathBuf),
}

impl CredentialRef {
    /// Reads the credential. The error names where it was looked for, never the value.
    pub fn resolve(&self) -> Result<Secret<String>, String> {
        let value = match self {
            CredentialRef::Env(var) => std::env::var(var)
                .map_err(|_| format!("environment variable {var} is not set (or not UTF-8)"))?,
            CredentialRef::File(p) => {
                crate::files::read_text_capped(p, crate::files::cap::SECRET_FILE, "secret files")
                    .map_err(|e| match e {
                        crate::files::FileError::Io { source, .. } => {
                            format!("cannot read {}: {source}", p.display())
                        }
                        e => e.to_string(),
                    })?
            }
        };
        let value = value.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(format!("{self} is empty"));
        }
        crate::redact::hold(&value);
        Ok(Secret::new(value))
    }
}

impl std::fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialRef::Env(v) => write!(f, "env:{v}"),
            CredentialRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

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

pub(crate) fn parse_credential(value: &str, base: &Path) -> Result<CredentialRef, String> {
    if let Some(var) = value.strip_prefix("env:") {
        let ok = !var.is_empty()
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !var.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(format!(
                "env:{var} is not an environment variable name; e.g. \"env:SMTP_PASSWORD\""
            ));
        }
        return Ok(CredentialRef::Env(var.to_string()));
    }
    if let Some(file) = value.strip_prefix("file:") {
        if file.is_empty() {
            return Err("file: needs a path, e.g. \"file:secrets/smtp-password\"".into());
        }
        return Ok(CredentialRef::File(base.join(file)));
    }
    Err("must be a reference, \"env:VAR\" or \"file:PATH\", never the value itself".into())
}

fn valid_address(a: &str) -> Result<(), String> {
    a.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| format!("{a:?} is not an email address ({e}); e.g. \"oncall@example.com\""))
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

/// Validates `[alerts]`, adding every problem to `problems`.
/// An empty `[alerts]` means alerts are not configured (`None`).
pub(super) fn validate(
    src: &Source<'_>,
    raw: &Spanned<RawAlerts>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<AlertsConfig> {
    let section = raw.span();
    let raw = raw.get_ref();
    if raw.is_empty() {
        return None;
    }
    let base = src.base();
    let mut push = |span: std::ops::Range<usize>, field: &str, message: String| {
        problems.push(src.problem(span, &format!("alerts.{field}"), message))
    };
    let mut cfg = AlertsConfig::with_sinks(None, None, None);
    cfg.fallback.clear();
    let severity = |s: &Spanned<String>, field: &str, push: &mut dyn FnMut(_, &str, String)| match s
        .get_ref()
        .parse::<Severity>()
    {
        Ok(v) => Some(v),
        Err(e) => {
            push(s.span(), field, e);
            None
        }
    };
    let duration = |s: &Spanned<String>, field: &str, push: &mut dyn FnMut(_, &str, String)| {
        match parse_duration(s.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                push(s.span(), field, e);
                None
            }
        }
    };
    if let Some(s) = &raw.min_severity {
        if let Some(v) = severity(s, "min_severity", &mut push) {
            cfg.min_severity = v;
        }
    }
    if let Some(s) = &raw.digest_at {
        match NaiveTime::parse_from_str(s.get_ref(), "%H:%M") {
            Ok(t) => cfg.digest_at = t,
            Err(_) => push(
                s.span(),
                "digest_at",
                format!(
                    "{:?} is not a time of day; write HH:MM, e.g. \"08:00\"",
                    s.get_ref()
                ),
            ),
        }
    }
    if let Some(s) = &raw.timezone {
        match s.get_ref().parse::<chrono_tz::Tz>() {
            Ok(tz) => cfg.timezone = tz,
            Err(_) => push(
                s.span(),
                "timezone",
                format!(
                    "{:?} is not an IANA time zone; e.g. \"Europe/Zurich\" or \"UTC\"",
                    s.get_ref()
                ),
            ),
        }
    }
    if let Some(s) = &raw.repeat_interval {
        if matches!(s.get_ref().as_str(), "off" | "0" | "never") {
            cfg.repeat_interval = None;
        } else if let Some(d) = duration(s, "repeat_interval", &mut push) {
            cfg.repeat_interval = Some(d).filter(|d| !d.is_zero());
        }
    }
    cfg.resolved_notice = raw.resolved_notice.unwrap_or(false);
    if let Some(s) = &raw.retry_base {
        if let Some(d) = duration(s, "retry_base", &mut push) {
            cfg.retry_base = d;
        }
    }
    if let Some(s) = &raw.retry_max {
        if let Some(d) = duration(s, "retry_max", &mut push) {
            cfg.retry_max = d;
        }
    }
    if cfg.retry_max < cfg.retry_base {
        if let Some(s) = raw.retry_max.as_ref().or(raw.retry_base.as_ref()) {
            push(
                s.span(),
                if raw.retry_max.is_some() {
                    "retry_max"
                } else {
                    "retry_base"
                },
                "retry_max must not be shorter than retry_base".into(),
            );
        }
    }
    if let Some(s) = &raw.give_up_after {
        if matches!(s.get_ref().as_str(), "off" | "never") {
            cfg.give_up_after = None;
        } else if let Some(d) = duration(s, "give_up_after", &mut push) {
            if d < cfg.retry_base {
                push(
                    s.span(),
                    "give_up_after",
                    format!(
                        "{:?} is shorter than retry_base: a failed delivery would give up \
                         before its first retry; write a longer duration or \"off\"",
                        s.get_ref()
                    ),
                );
            }
            cfg.give_up_after = Some(d);
        }
    }
    if let Some(n) = &raw.max_attempts {
        match u32::try_from(*n.get_ref()) {
            Ok(v) if v >= 1 => cfg.max_attempts = Some(v),
            _ => push(
                n.span(),
                "max_attempts",
                format!("{} is not a number of attempts (1 or more)", n.get_ref()),
            ),
        }
    }
    match &raw.from {
        Some(f) => {
            if let Err(e) = valid_address(f.get_ref()) {
                push(f.span(), "from", e);
            }
            cfg.from = f.get_ref().clone();
        }
        None if raw.email.is_some() => push(
            raw.email.as_ref().map(|e| e.span()).unwrap_or(0..0),
            "from",
            "missing: the sender address of alert emails, e.g. from = \"awxguard <awxguard@example.com>\"".into(),
        ),
        None => {}
    }
    for a in &raw.fallback {
        if let Err(e) = valid_address(a.get_ref()) {
            push(a.span(), "fallback", e);
        }
        cfg.fallback.push(a.get_ref().clone());
    }
    if raw.email.is_some() && cfg.fallback.is_empty() {
        push(
            raw.email.as_ref().map(|e| e.span()).unwrap_or(0..0),
            "fallback",
            "missing: the address alerts go to when no route matches, e.g. fallback = [\"security@example.com\"]".into(),
        );
    }
    for r in &raw.route {
        let rr = r.get_ref();
        let mut route = Route {
            owner: rr.owner.clone(),
            min_severity: None,
            to: Vec::new(),
        };
        if let Some(s) = &rr.min_severity {
            route.min_severity = severity(s, "route.min_severity", &mut push);
        }
        if rr.to.is_empty() {
            push(
                r.span(),
                "route.to",
                "a route needs at least one address, e.g. to = [\"payments-oncall@example.com\"]"
                    .into(),
            );
        }
        for a in &rr.to {
            if let Err(e) = valid_address(a.get_ref()) {
                push(a.span(), "route.to", e);
            }
            route.to.push(a.get_ref().clone());
        }
        cfg.routes.push(route);
    }
    if let Some(e) = &raw.email {
        let span = e.span();
        let e = e.get_ref();
        let host = match &e.host {
            Some(h) if !h.get_ref().trim().is_empty() => h.get_ref().trim().to_string(),
            _ => {
                push(
                    span.clone(),
                    "email.host",
                    "missing: the SMTP server, e.g. host = \"smtp.example.com\"".into(),
                );
                String::new()
            }
        };
        let security = match e.security.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "starttls")) => SmtpSecurity::StartTls,
            Some((_, "tls")) => SmtpSecurity::Tls,
            Some((s, "plain")) => {
                if !host.is_empty() && !is_loopback_host(&host) {
                    push(
                        s.span(),
                        "email.security",
                        format!(
                            "\"plain\" sends mail unencrypted and is allowed only to a loopback \
                             relay, not {host}; use \"starttls\" (port 587) or \"tls\" (port 465)"
                        ),
                    );
                }
                SmtpSecurity::Plain
            }
            Some((s, other)) => {
                push(
                    s.span(),
                    "email.security",
                    format!("{other:?} is not one of \"starttls\", \"tls\", \"plain\""),
                );
                SmtpSecurity::StartTls
            }
        };
        let port = e.port.unwrap_or(match security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Plain => 25,
        });
        let password = e.password.as_ref().and_then(|p| {
            parse_credential(p.get_ref(), base)
                .map_err(|m| push(p.span(), "email.password", m))
                .ok()
        });
        if password.is_some() && e.username.is_none() {
            push(
                span.clone(),
                "email.username",
                "missing: a password is given without a username".into(),
            );
        }
        let ca_file = e.ca_file.as_ref().map(|c| {
            let p = base.join(c.get_ref());
            if !p.is_file() {
                push(
                    c.span(),
                    "email.ca_file",
                    format!("{} is not a file (a PEM certificate)", p.display()),
                );
            }
            p
        });
        let timeout = e
            .timeout
            .as_ref()
            .and_then(|t| duration(t, "email.timeout", &mut push))
            .unwrap_or(Duration::from_secs(30));
        cfg.email = Some(EmailSink {
            host,
            port,
            security,
            username: e.username.clone(),
            password,
            ca_file,
            timeout,
            hello_name: e.hello_name.clone(),
        });
    }
    if let Some(w) = &raw.webhook {
        let span = w.span();
        let w = w.get_ref();
        let url = match &w.url {
            None => {
                push(
                    span,
                    "webhook.url",
                    "missing: e.g. url = \"env:ALERT_WEBHOOK_URL\" or \"https://...\"".into(),
                );
                UrlSpec::Literal(String::new())
            }
            Some(u) if u.get_ref().starts_with("env:") || u.get_ref().starts_with("file:") => {
                match parse_credential(u.get_ref(), base) {
                    Ok(c) => UrlSpec::Ref(c),
                    Err(m) => {
                        push(u.span(), "webhook.url", m);
                        UrlSpec::Literal(String::new())
                    }
                }
            }
            Some(u) => {
                if let Err(m) = check_webhook_url(u.get_ref()) {
                    push(u.span(), "webhook.url", format!("{:?} {m}", u.get_ref()));
                }
                UrlSpec::Literal(u.get_ref().clone())
            }
        };
        let timeout = w
            .timeout
            .as_ref()
            .and_then(|t| duration(t, "webhook.timeout", &mut push))
            .unwrap_or(Duration::from_secs(10));
        cfg.webhook = Some(WebhookSink { url, timeout });
    }
    if let Some(f) = &raw.file {
        match &f.get_ref().dir {
            Some(d) => {
                cfg.file = Some(FileSink {
                    dir: base.join(d.get_ref()),
                })
            }
            None => push(
                f.span(),
                "file.dir",
                "missing: the directory alerts are written to, e.g. dir = \"alerts\"".into(),
            ),
        }
    }
    if cfg.email.is_none() && cfg.webhook.is_none() && cfg.file.is_none() {
        problems.push(src.problem(
            section,
            "alerts",
            "no sink: add [alerts.email], [alerts.webhook] or [alerts.file]".into(),
        ));
    }
    Some(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("3y").is_err());
    }

    #[test]
    fn the_commented_example_is_valid_once_uncommented() {
        let example = include_str!("../../examples/awxguard.toml");
        let start = example
            .find("# [alerts]")
            .expect("the example documents [alerts]");
        let setting = regex::Regex::new(r"^(\[|[a-z_]+ = )").unwrap();
        let text: String = example[start..]
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| setting.is_match(l))
            .map(|l| format!("{l}\n"))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("internal-ca.pem"), "").unwrap();
        let cfg = crate::config::Config::parse(&dir.path().join("awxguard.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let a = cfg.alerts.expect("configured");
        assert_eq!(a.routes.len(), 2);
        assert!(a.email.is_some() && a.webhook.is_some() && a.file.is_some());
        assert_eq!(a.timezone.name(), "Europe/Zurich");
    }

    #[test]
    fn an_empty_section_is_no_alerting_and_a_sinkless_one_is_an_error() {
        let p = Path::new("c.toml");
        assert!(crate::config::Config::parse(p, "[alerts]\n")
            .unwrap()
            .alerts
            .is_none());
        let msg = crate::config::Config::parse(p, "[scan]\n[alerts]\nmin_severity = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("c.toml:3: alerts.min_severity: unknown severity"),
            "{msg}"
        );
        assert!(msg.contains("c.toml:2: alerts: no sink"), "{msg}");
    }

    #[test]
    fn webhook_urls() {
        assert!(check_webhook_url("https://hooks.example.com/x").is_ok());
        assert!(check_webhook_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_webhook_url("http://[::1]:8080/x").is_ok());
        assert!(check_webhook_url("http://hooks.example.com/x").is_err());
        assert!(check_webhook_url("ftp://x").is_err());
    }
}
