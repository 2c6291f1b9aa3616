//! Alerts (issue 12): a real SMTP server on loopback (aiosmtpd, STARTTLS required), a loopback
//! webhook receiver and a file sink; messages parsed and checked; no secret anywhere.

#[path = "alerts/servers.rs"]
mod servers;

use crate::common::{self, assert_no_secret};
use mail_parser::MessageParser;
use servers::*;
use std::path::Path;

const SMTP_PASSWORD: &str = "smtp-pass-6f1d2c9e8b7a";

/// `[alerts]` with the given sinks; `email` is `(port, security)`.
fn alerts_config(email: Option<(u16, &str)>, webhook: Option<&str>, file: bool) -> String {
    let mut c = String::from(
        "[alerts]\nfrom = \"awxguard <awxguard@example.test>\"\nfallback = \
         [\"secops@example.test\"]\ntimezone = \"Europe/Zurich\"\nretry_base = \"1s\"\n\n\
         [[alerts.route]]\nowner = \"payments\"\nto = [\"payments-oncall@example.test\"]\n\n",
    );
    if let Some((port, security)) = email {
        c.push_str(&format!(
            "[alerts.email]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\n\
             username = \"awxguard\"\npassword = \"env:TEST_SMTP_PASSWORD\"\nca_file = \
             \"ca.pem\"\ntimeout = \"5s\"\n\n"
        ));
    }
    if let Some(url) = webhook {
        c.push_str(&format!(
            "[alerts.webhook]\nurl = \"{url}\"\ntimeout = \"5s\"\n\n"
        ));
    }
    if file {
        c.push_str("[alerts.file]\ndir = \"alerts-out\"\n\n");
    }
    c
}

fn run_alerts(dir: &Path, args: &[&str]) -> std::process::Output {
    common::awxguard(dir)
        .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
        .args(["--config", "awxguard.toml"])
        .args(args)
        .output()
        .unwrap()
}

fn smtp_opts() -> SmtpOptions {
    SmtpOptions {
        auth: Some(("awxguard".into(), SMTP_PASSWORD.into())),
        ..SmtpOptions::default()
    }
}

#[test]
fn alerts_test_reaches_every_sink_and_prints_what_each_server_said() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let certs = Certs::make(t.path());
    let smtp = Smtp::start(&certs, &t.path().join("smtp"), &smtp_opts());
    let hook = Hook::start(vec![]);
    common::write(
        t.path(),
        "awxguard.toml",
        alerts_config(Some((smtp.port, "starttls")), Some(&hook.url), true),
    );
    let o = run_alerts(t.path(), &["alerts", "test"]);
    let out = common::stdout(&o);
    assert_eq!(common::code(&o), 0, "{out}\n{}", common::stderr(&o));
    assert!(out.contains("email    smtp://127.0.0.1:"), "{out}");
    assert!(
        out.contains("(STARTTLS): accepted: 250 2.0.0 OK queued as "),
        "{out}"
    );
    assert!(out.contains("webhook  http://127.0.0.1:"), "{out}");
    assert!(out.contains("accepted: HTTP 200 ok"), "{out}");
    assert!(
        !out.contains("T0KEN"),
        "the webhook URL's path is never printed: {out}"
    );
    assert!(out.contains("file     directory "), "{out}");
    for text in [&out, &common::stderr(&o)] {
        assert!(!text.contains(SMTP_PASSWORD));
    }
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    let m = MessageParser::default().parse(&msgs[0]).unwrap();
    assert_eq!(
        m.subject(),
        Some("[TEST] awxguard: test alert - no action needed")
    );
    let mid = m.message_id().unwrap().to_string();
    assert!(out.contains(&format!("<{mid}>")), "{out} / {mid}");
    let to: Vec<String> = m
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address().map(str::to_string))
        .collect();
    assert_eq!(
        to,
        vec!["secops@example.test", "payments-oncall@example.test"]
    );
    assert!(m.body_text(0).unwrap().contains("awxguard alerts test"));
    assert!(m.body_html(0).is_some());
    let hooks = hook.received();
    assert_eq!(hooks.len(), 1);
    let j = hooks[0].json();
    assert_eq!(j["kind"], "test");
    assert!(j["text"].as_str().unwrap().contains("[TEST] awxguard"));
    assert_eq!(
        hooks[0].header("idempotency-key"),
        j["id"].as_str(),
        "the receiver can fold a resend"
    );
    let files: Vec<String> = std::fs::read_dir(t.path().join("alerts-out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[test]
fn implicit_tls_works_and_a_down_server_is_reported_with_exit_2() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let certs = Certs::make(t.path());
    let smtp = Smtp::start(
        &certs,
        &t.path().join("smtp"),
        &SmtpOptions {
            implicit_tls: true,
            ..smtp_opts()
        },
    );
    common::write(
        t.path(),
        "awxguard.toml",
        alerts_config(Some((smtp.port, "tls")), None, false),
    );
    let o = run_alerts(t.path(), &["alerts", "test"]);
    assert_eq!(common::code(&o), 0, "{}", common::stdout(&o));
    assert!(common::stdout(&o).contains("(TLS): accepted: 250"));
    assert_eq!(smtp.messages().len(), 1);
    smtp.stop();
    let o = run_alerts(t.path(), &["alerts", "test"]);
    assert_eq!(common::code(&o), 2);
    assert!(
        common::stdout(&o).contains("FAILED"),
        "{}",
        common::stdout(&o)
    );
}

#[test]
fn an_untrusted_certificate_is_refused() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let certs = Certs::make(t.path());
    let smtp = Smtp::start(&certs, &t.path().join("smtp"), &smtp_opts());
    // Trust another CA than the one that signed the server's certificate.
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other = Certs::make(&other);
    std::fs::copy(&other.ca, t.path().join("ca.pem")).unwrap();
    common::write(
        t.path(),
        "awxguard.toml",
        alerts_config(Some((smtp.port, "starttls")), None, false),
    );
    let o = run_alerts(t.path(), &["alerts", "test"]);
    assert_eq!(common::code(&o), 2, "{}", common::stdout(&o));
    assert!(smtp.messages().is_empty());
}

#[test]
fn plain_smtp_only_to_loopback_and_credentials_only_by_reference() {
    let t = common::tempdir();
    common::write(
        t.path(),
        "awxguard.toml",
        "[alerts]\nfrom = \"a@example.test\"\nfallback = [\"b@example.test\"]\n\
         [alerts.email]\nhost = \"smtp.example.test\"\nsecurity = \"plain\"\n\
         username = \"u\"\npassword = \"hunter2hunter2\"\n",
    );
    let o = run_alerts(t.path(), &["alerts", "test"]);
    assert_eq!(common::code(&o), 2);
    let err = common::stderr(&o);
    assert!(
        err.contains("awxguard.toml:6: alerts.email.security:"),
        "{err}"
    );
    assert!(err.contains("allowed only to a loopback relay"), "{err}");
    assert!(
        err.contains("awxguard.toml:8: alerts.email.password:"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert_no_secret(&err, "hunter2hunter2hunter2hunter2", "config error");
}
