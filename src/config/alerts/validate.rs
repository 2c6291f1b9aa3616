//! Validating `[alerts]`: every problem reported at once, each with its file, line and field.

use super::super::{ConfigProblem, Source};
use super::{
    check_webhook_url, is_loopback_host, parse_credential, parse_duration, AlertsConfig, EmailSink,
    FileSink, RawAlerts, Route, SmtpSecurity, UrlSpec, WebhookSink,
};
use crate::finding::Severity;
use chrono::NaiveTime;
use std::time::Duration;
use toml::Spanned;

fn valid_address(a: &str) -> Result<(), String> {
    a.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| format!("{a:?} is not an email address ({e}); e.g. \"oncall@example.com\""))
}

/// Validates `[alerts]`, adding every problem to `problems`.
/// An empty `[alerts]` means alerts are not configured (`None`).
pub(in crate::config) fn validate(
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
