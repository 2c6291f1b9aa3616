//! Alerts (issue 12): a real SMTP server on loopback (aiosmtpd, STARTTLS required), a loopback
//! webhook receiver and a file sink; messages parsed and checked; no secret anywhere.

#[path = "alerts/servers.rs"]
pub(crate) mod servers;

/// Giving up (dead deliveries) and sinks that do not wait for each other.
#[path = "alerts/retry.rs"]
mod retry;

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

// ---------------------------------------------------------------------------------------------
// The outbox: alerts queued by the run that records their findings, delivered once.

const NOW: &str = "2026-11-24T12:00:00Z";

/// Two declared keys: `payvy-prod` (admin, production, old: five findings, one critical) and
/// `reports` (read-only sandbox: only low and info findings), then `[alerts]` from `alerts`.
fn keys_config(alerts: &str) -> String {
    format!(
        "[[key]]\nname = \"payvy-prod\"\nclient_id = \"{}\"\napi_key = \"env:PAYVY_KEY\"\n\
         environment = \"production\"\nkind = \"admin\"\nowner = \"payments\"\n\
         integration = \"Payvy\"\ncreated = 2024-01-01\n\n\
         [[key]]\nname = \"reports\"\nclient_id = \"{}\"\napi_key = \"env:REPORTS_KEY\"\n\
         environment = \"sandbox\"\nkind = \"read_only\"\nowner = \"finance\"\n\
         ip_whitelist = [\"203.0.113.7\"]\n\n{alerts}",
        common::client_id("alerts-payvy"),
        common::client_id("alerts-reports"),
    )
}

fn payvy_key() -> String {
    common::key("alerts-payvy")
}

/// The binary in `dir` with the keys' variables, the SMTP password and the clock at `now`.
fn cmd(dir: &Path, now: &str) -> std::process::Command {
    let mut c = common::awxguard(dir);
    c.env("PAYVY_KEY", payvy_key())
        .env("REPORTS_KEY", common::key("alerts-reports"))
        .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
        .env("AWXGUARD_NOW", now)
        .args(["--config", "awxguard.toml"]);
    c
}

fn run_at(dir: &Path, now: &str, args: &[&str]) -> std::process::Output {
    cmd(dir, now).args(args).output().unwrap()
}

fn audit(dir: &Path, now: &str) -> std::process::Output {
    let o = run_at(dir, now, &["audit", "--no-verify", "--format", "json"]);
    assert_eq!(common::code(&o), 1, "{}", common::stderr(&o));
    o
}

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("a parsable message")
}

fn message_ids(msgs: &[Vec<u8>]) -> Vec<String> {
    msgs.iter()
        .map(|m| parse(m).message_id().unwrap().to_string())
        .collect()
}

/// The alert documents the file sink wrote, oldest first by name is not time order: by
/// `created_at`.
fn file_docs(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut docs: Vec<serde_json::Value> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    docs.sort_by_key(|d| d["created_at"].as_str().unwrap().to_string());
    docs
}

#[test]
fn one_key_with_five_findings_gives_one_message_on_call_can_act_on() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let certs = Certs::make(t.path());
    let smtp = Smtp::start(&certs, &t.path().join("smtp"), &smtp_opts());
    let hook = Hook::start(vec![]);
    let mut alerts = alerts_config(Some((smtp.port, "starttls")), Some(&hook.url), true);
    alerts.push_str("");
    common::write(t.path(), "awxguard.toml", keys_config(&alerts));
    let o = audit(t.path(), NOW);
    let report = common::json(&o);
    let stderr = common::stderr(&o);
    let payvy: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["key"] == "payvy-prod")
        .collect();
    assert_eq!(payvy.len(), 5, "{report}");
    assert!(
        stderr.contains("sent by email: 250 2.0.0 OK queued as"),
        "{stderr}"
    );

    // One message for payvy-prod (immediate); reports' findings wait for the digest.
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "one key, one run, one message");
    let m = parse(&msgs[0]);
    let preview = awxguard::secret::preview(&payvy_key());
    assert_eq!(
        m.subject().unwrap(),
        format!(
            "[CRITICAL] awxguard: Admin key in use (+4 more) - key payvy-prod ({preview}) - \
             production"
        )
    );
    let to: Vec<&str> = m.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, vec!["payments-oncall@example.test"], "routed by owner");
    let text = m.body_text(0).unwrap().replace("\r\n", "\n");
    for want in [
        "Owner        payments",
        "Environment  production",
        "Kind         admin",
        &format!("Fingerprint  {}", common::fingerprint(&payvy_key())),
        "Observed:  declared admin",
        "Expected:  a scoped key with the scopes its calls need",
        "declared_scopes: 69",
        "Status:      new",
        "First seen:  2026-11-24 12:00 UTC (2026-11-24 13:00 CET, Europe/Zurich)",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // Every finding: its steps exactly as the report writes them, its id, its ack command.
    for f in &payvy {
        let id = f["id"].as_str().unwrap();
        assert!(text.contains(&format!("Finding id:  {id}")), "{id}");
        assert!(text.contains(&format!(
            "awxguard findings ack {id} --reason \"...\" --expires 30d"
        )));
        for (n, step) in f["recommendation"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let line = format!("  {}. {}", n + 1, step.as_str().unwrap());
            assert!(text.contains(&line), "missing step {line:?}");
        }
    }
    let html = m.body_html(0).unwrap();
    assert!(html.contains("<h4>What to do</h4><ol><li>"), "{html}");
    let mid = m.message_id().unwrap().to_string();
    assert!(
        mid.starts_with("awxguard.") && mid.ends_with("@example.test"),
        "{mid}"
    );

    // The webhook and the file sink carry the same alert.
    let hooks = hook.received();
    assert_eq!(hooks.len(), 1);
    let j = hooks[0].json();
    assert_eq!(j["subject"], m.subject().unwrap());
    assert_eq!(j["message_id"], format!("<{mid}>"));
    assert_eq!(j["groups"][0]["findings"].as_array().unwrap().len(), 5);
    assert_eq!(
        j["text"].as_str().unwrap().trim_end(),
        text.trim_end(),
        "Slack text is the email's text"
    );
    let docs = file_docs(&t.path().join("alerts-out"));
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["message_id"], j["message_id"]);
    let eml = std::fs::read(
        t.path()
            .join("alerts-out")
            .join(format!("{}.eml", j["id"].as_str().unwrap())),
    )
    .unwrap();
    assert_eq!(parse(&eml).message_id(), Some(mid.as_str()));

    // No secret anywhere: messages, webhook body, files, outputs, the database.
    let key = payvy_key();
    assert_no_secret(&String::from_utf8_lossy(&msgs[0]), &key, "email");
    assert_no_secret(
        &String::from_utf8_lossy(&hooks[0].body),
        &key,
        "webhook body",
    );
    assert_no_secret(&String::from_utf8_lossy(&eml), &key, "eml file");
    assert_no_secret(&common::stdout(&o), &key, "stdout");
    assert_no_secret(&stderr, &key, "stderr");
    let db = common::db_contents(t.path());
    assert_no_secret(&String::from_utf8_lossy(&db), &key, "database");
    for out in [&String::from_utf8_lossy(&msgs[0]).into_owned(), &stderr] {
        assert!(!out.contains(SMTP_PASSWORD));
    }

    // The next run sees the same findings open: nothing new, nothing sent again.
    audit(t.path(), "2026-11-24T13:00:00Z");
    let o = run_at(t.path(), "2026-11-24T13:00:00Z", &["alerts", "deliver"]);
    assert_eq!(common::stdout(&o).trim(), "nothing due");
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(hook.received().len(), 1);
    assert_eq!(file_docs(&t.path().join("alerts-out")).len(), 1);
}

#[test]
fn sinks_down_then_up_deliver_each_alert_once_with_one_message_id() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let certs = Certs::make(t.path());
    let port = free_port();
    // The webhook answers 503 first; the file sink's directory is blocked by a file.
    let hook = Hook::start(vec![503, 503]);
    common::write(t.path(), "alerts-out", "not a directory");
    common::write(
        t.path(),
        "awxguard.toml",
        keys_config(&alerts_config(
            Some((port, "starttls")),
            Some(&hook.url),
            true,
        )),
    );
    let o = audit(t.path(), NOW);
    let err = common::stderr(&o);
    assert!(err.contains("NOT sent by email (attempt 1"), "{err}");
    assert!(err.contains("NOT sent by webhook (attempt 1"), "{err}");
    assert!(err.contains("HTTP 503"), "{err}");
    assert!(err.contains("NOT sent by file (attempt 1"), "{err}");
    assert!(
        !err.contains("T0KEN"),
        "the webhook URL's path is never printed: {err}"
    );
    let list = common::stdout(&run_at(t.path(), NOW, &["alerts", "list"]));
    assert!(list.contains("failing  email"), "{list}");
    assert!(
        list.contains("1 attempt(s), next at 2026-11-24T12:00:01Z"),
        "{list}"
    );

    // Still down a minute later: attempt 2, backoff doubles.
    let o = run_at(t.path(), "2026-11-24T12:01:00Z", &["alerts", "deliver"]);
    assert_eq!(common::code(&o), 2);
    assert!(
        common::stdout(&o)
            .contains("NOT sent by email (attempt 2, next at 2026-11-24 12:01:02 UTC)"),
        "{}",
        common::stdout(&o)
    );

    // Up again.
    let smtp = Smtp::start(
        &certs,
        &t.path().join("smtp"),
        &SmtpOptions {
            port,
            ..smtp_opts()
        },
    );
    std::fs::remove_file(t.path().join("alerts-out")).unwrap();
    // Not due yet (backoff): nothing is attempted.
    let o = run_at(t.path(), "2026-11-24T12:01:01Z", &["alerts", "deliver"]);
    assert_eq!(common::stdout(&o).trim(), "nothing due");
    let o = run_at(t.path(), "2026-11-24T12:05:00Z", &["alerts", "deliver"]);
    assert_eq!(common::code(&o), 0, "{}", common::stdout(&o));
    let out = common::stdout(&o);
    assert_eq!(out.matches(" sent by ").count(), 3, "{out}");
    // And never again.
    for at in ["2026-11-24T12:10:00Z", "2026-11-24T13:00:00Z"] {
        let o = run_at(t.path(), at, &["alerts", "deliver"]);
        assert_eq!(common::stdout(&o).trim(), "nothing due");
    }
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    let hooks = hook.received();
    assert_eq!(hooks.len(), 1);
    assert_eq!(*hook.seen.lock().unwrap(), 3, "503, 503 (attempt 2), 200");
    let docs = file_docs(&t.path().join("alerts-out"));
    assert_eq!(docs.len(), 1);
    let mid = message_ids(&msgs)[0].clone();
    assert_eq!(hooks[0].json()["message_id"], format!("<{mid}>"));
    assert_eq!(docs[0]["message_id"], format!("<{mid}>"));
    let list = common::stdout(&run_at(
        t.path(),
        "2026-11-24T13:00:00Z",
        &["alerts", "list"],
    ));
    assert!(list.contains("sent     email"), "{list}");
    assert!(
        list.contains("after 3 attempt(s): 250 2.0.0 OK queued as"),
        "{list}"
    );
}

#[test]
fn killed_between_queueing_and_sending_the_alert_goes_out_after_restart() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let certs = Certs::make(t.path());
    let stalled = Smtp::start(
        &certs,
        &t.path().join("stalled"),
        &SmtpOptions {
            stall: true,
            ..smtp_opts()
        },
    );
    let port = stalled.port;
    common::write(
        t.path(),
        "awxguard.toml",
        keys_config(&alerts_config(Some((port, "starttls")), None, false)),
    );
    // The audit records and queues, then hangs in DATA; SIGKILL it there.
    let mut child = cmd(t.path(), NOW)
        .args(["audit", "--no-verify"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "DATA at the stalling server",
        std::time::Duration::from_secs(30),
        || stalled.stalled(),
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stalled.stop();
    let list = common::stdout(&run_at(t.path(), NOW, &["alerts", "list"]));
    assert!(
        list.contains("queued   email"),
        "claimed, never answered: {list}"
    );

    // Restarted, same clock: the dead process's claim is void, the alert goes out once.
    let smtp = Smtp::start(
        &certs,
        &t.path().join("smtp"),
        &SmtpOptions {
            port,
            ..smtp_opts()
        },
    );
    let o = run_at(t.path(), NOW, &["alerts", "deliver"]);
    assert_eq!(common::code(&o), 0, "{}", common::stdout(&o));
    let o = run_at(t.path(), "2026-11-24T12:05:00Z", &["alerts", "deliver"]);
    assert_eq!(common::stdout(&o).trim(), "nothing due");
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    assert!(parse(&msgs[0])
        .subject()
        .unwrap()
        .starts_with("[CRITICAL] awxguard: Admin key in use"));
}

#[test]
fn a_crash_after_the_server_accepted_resends_once_with_the_same_message_id() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let certs = Certs::make(t.path());
    let smtp = Smtp::start(&certs, &t.path().join("smtp"), &smtp_opts());
    common::write(
        t.path(),
        "awxguard.toml",
        keys_config(&alerts_config(Some((smtp.port, "starttls")), None, false)),
    );
    let o = cmd(t.path(), NOW)
        .env("AWXGUARD_TEST_CRASH_AFTER_ACCEPT", "1")
        .args(["audit", "--no-verify"])
        .output()
        .unwrap();
    assert!(o.status.code().is_none(), "aborted after acceptance");
    assert_eq!(smtp.messages().len(), 1);
    let o = run_at(t.path(), NOW, &["alerts", "deliver"]);
    assert_eq!(common::code(&o), 0);
    let o = run_at(t.path(), "2026-11-24T12:05:00Z", &["alerts", "deliver"]);
    assert_eq!(common::stdout(&o).trim(), "nothing due");
    let ids = message_ids(&smtp.messages());
    assert_eq!(ids.len(), 2, "one resend");
    assert_eq!(ids[0], ids[1], "recognisably the same message");
}

#[test]
fn digest_repeat_and_resolved_notice_follow_the_injected_clock() {
    // File sink only: the timing is the outbox's, whatever the sink.
    let t = common::tempdir();
    let alerts = "[alerts]\nfrom = \"awxguard <awxguard@example.test>\"\nfallback = \
                  [\"secops@example.test\"]\nmin_severity = \"critical\"\ndigest_at = \
                  \"08:00\"\ntimezone = \"Europe/Zurich\"\nrepeat_interval = \"24h\"\n\
                  resolved_notice = true\n[alerts.file]\ndir = \"out\"\n";
    common::write(t.path(), "awxguard.toml", keys_config(alerts));
    let out = t.path().join("out");
    let kinds = |docs: &[serde_json::Value]| -> Vec<String> {
        docs.iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["kind"].as_str().unwrap(),
                    d["groups"][0]["key"]["name"].as_str().unwrap_or("-")
                )
            })
            .collect()
    };
    audit(t.path(), NOW);
    assert_eq!(kinds(&file_docs(&out)), vec!["immediate payvy-prod"]);
    let list = common::stdout(&run_at(t.path(), NOW, &["alerts", "list"]));
    // 08:00 in Zurich (CET) is 07:00 UTC.
    assert!(
        list.contains("digest    key reports  2 findings (low)  due 2026-11-25 07:00 UTC"),
        "{list}"
    );

    // One minute before the digest: nothing; at 08:00 Zurich: the digest.
    run_at(t.path(), "2026-11-25T06:59:00Z", &["alerts", "deliver"]);
    assert_eq!(file_docs(&out).len(), 1);
    run_at(t.path(), "2026-11-25T07:00:00Z", &["alerts", "deliver"]);
    let docs = file_docs(&out);
    assert_eq!(kinds(&docs), vec!["immediate payvy-prod", "digest reports"]);
    assert_eq!(
        docs[1]["subject"],
        "[DIGEST] awxguard: 2 findings on 1 key - 2026-11-25"
    );

    // 24 h after the first alert, still open and not acknowledged: a repeat.
    run_at(t.path(), "2026-11-25T11:59:00Z", &["alerts", "deliver"]);
    assert_eq!(file_docs(&out).len(), 2);
    run_at(t.path(), "2026-11-25T12:00:00Z", &["alerts", "deliver"]);
    let docs = file_docs(&out);
    assert_eq!(kinds(&docs)[2], "repeat payvy-prod");
    let subject = docs[2]["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[CRITICAL] awxguard: still open: Admin key in use"),
        "{subject}"
    );
    assert!(docs[2]["text"]
        .as_str()
        .unwrap()
        .contains("Status:      open for 1 day"));
    run_at(t.path(), "2026-11-25T18:00:00Z", &["alerts", "deliver"]);
    assert_eq!(file_docs(&out).len(), 3, "not again within the interval");

    // Acknowledged: no more repeats for that finding (the others of the key still repeat).
    let admin = docs[2]["groups"][0]["findings"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = run_at(
        t.path(),
        "2026-11-25T18:00:00Z",
        &[
            "findings",
            "ack",
            &admin,
            "--reason",
            "migrating",
            "--expires",
            "30d",
        ],
    );
    assert_eq!(common::code(&o), 0, "{}", common::stderr(&o));
    run_at(t.path(), "2026-11-26T12:30:00Z", &["alerts", "deliver"]);
    let docs = file_docs(&out);
    let last = docs.last().unwrap();
    let repeated: Vec<&str> = last["groups"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(!repeated.contains(&admin.as_str()), "{repeated:?}");

    // `reports` leaves the config: its alerted findings resolve, and a notice says so.
    common::write(
        t.path(),
        "awxguard.toml",
        keys_config(alerts)
            .split("[[key]]\nname = \"reports\"")
            .next()
            .unwrap()
            .to_string()
            + alerts,
    );
    let before = file_docs(&out).len();
    audit(t.path(), "2026-11-26T13:00:00Z");
    let docs = file_docs(&out);
    assert_eq!(docs.len(), before + 1);
    let notice = docs.last().unwrap();
    assert_eq!(notice["kind"], "resolved");
    assert!(notice["subject"]
        .as_str()
        .unwrap()
        .starts_with("[RESOLVED] awxguard:"));
    assert_eq!(notice["groups"][0]["key"]["name"], "reports");
}

#[test]
fn a_recorded_scan_alerts_on_a_leaked_declared_key_by_its_name() {
    // Every run that records findings queues alerts: here `scan --record`, whose finding names
    // the key by fingerprint; the alert finds the declared key with that fingerprint.
    let t = common::tempdir();
    common::write(
        t.path(),
        "awxguard.toml",
        keys_config(
            "[alerts]\nfrom = \"awxguard <awxguard@example.test>\"\nfallback = \
             [\"secops@example.test\"]\n[alerts.file]\ndir = \"out\"\n",
        ),
    );
    common::write(
        t.path(),
        "repo/.env",
        format!("AIRWALLEX_API_KEY={}\n", payvy_key()),
    );
    let o = run_at(t.path(), NOW, &["scan", "--record", "repo"]);
    assert_eq!(common::code(&o), 1, "{}", common::stderr(&o));
    let docs = file_docs(&t.path().join("out"));
    assert_eq!(docs.len(), 1, "{}", common::stderr(&o));
    let subject = docs[0]["subject"].as_str().unwrap();
    let preview = awxguard::secret::preview(&payvy_key());
    assert!(
        subject.ends_with(&format!("- key payvy-prod ({preview}) - production")),
        "{subject}"
    );
    let text = docs[0]["text"].as_str().unwrap();
    assert!(text.contains("Where: repo/.env:1"), "{text}");
    assert_no_secret(
        &std::fs::read_to_string(
            t.path()
                .join("out")
                .join(format!("{}.eml", docs[0]["id"].as_str().unwrap())),
        )
        .unwrap(),
        &payvy_key(),
        "eml",
    );
    // Recorded again: open, no second alert.
    run_at(
        t.path(),
        "2026-11-24T13:00:00Z",
        &["scan", "--record", "repo"],
    );
    assert_eq!(file_docs(&t.path().join("out")).len(), 1);
}
