//! Retries are bounded (issue 12, like Alertmanager): a delivery backs off exponentially up to
//! `retry_max` and gives up after `give_up_after` (or `max_attempts`): `dead`, listed by `alerts
//! list`, logged as an error, never sent again, even when the server comes back. Sinks go side by
//! side: a stalled SMTP server does not hold up the webhook or the files.

use super::*;

#[test]
fn a_sink_down_too_long_gives_up_visibly_and_the_other_sinks_deliver() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let certs = Certs::make(t.path());
    let port = free_port();
    let hook = Hook::start(vec![]);
    let mut alerts = alerts_config(Some((port, "starttls")), Some(&hook.url), true);
    alerts = alerts.replace(
        "retry_base = \"1s\"\n",
        "retry_base = \"1s\"\nretry_max = \"4s\"\ngive_up_after = \"30s\"\nmax_attempts = 10\n",
    );
    common::write(t.path(), "awxguard.toml", keys_config(&alerts));
    // The SMTP server is down: email fails, the webhook and the file sink deliver.
    let o = audit(t.path(), NOW);
    let err = common::stderr(&o);
    assert!(err.contains("NOT sent by email (attempt 1"), "{err}");
    assert_eq!(hook.received().len(), 1, "{err}");
    assert_eq!(file_docs(&t.path().join("alerts-out")).len(), 1);

    // Backoff doubles up to retry_max: 1 s, 2 s, 4 s, 4 s.
    for (now, attempt, next) in [
        ("2026-11-24T12:00:01Z", 2, "12:00:03"),
        ("2026-11-24T12:00:03Z", 3, "12:00:07"),
        ("2026-11-24T12:00:07Z", 4, "12:00:11"),
    ] {
        let o = run_at(t.path(), now, &["alerts", "deliver"]);
        assert_eq!(common::code(&o), 2);
        let want = format!("NOT sent by email (attempt {attempt}, next at 2026-11-24 {next} UTC)");
        assert!(common::stdout(&o).contains(&want), "{}", common::stdout(&o));
    }

    // 30 s after the message was sealed, the next failure gives up: dead, and said loudly.
    let o = run_at(t.path(), "2026-11-24T12:00:40Z", &["alerts", "deliver"]);
    assert_eq!(common::code(&o), 2);
    let out = common::stdout(&o);
    assert!(
        out.contains("NOT sent by email: GAVE UP after 5 attempt(s), not retried"),
        "{out}"
    );
    let err = common::stderr(&o);
    assert!(
        err.contains("ALERT NOT DELIVERED: gave up after 5 attempt(s)"),
        "{err}"
    );
    assert!(
        err.contains("[CRITICAL] awxguard: Admin key in use"),
        "{err}"
    );
    let list = common::stdout(&run_at(
        t.path(),
        "2026-11-24T12:00:41Z",
        &["alerts", "list"],
    ));
    assert!(list.contains("dead     email"), "{list}");
    assert!(
        list.contains("GAVE UP 2026-11-24T12:00:40Z after 5 attempt(s), not retried:"),
        "{list}"
    );
    assert!(list.contains("sent     webhook"), "{list}");
    let j = common::json(&run_at(
        t.path(),
        "2026-11-24T12:00:41Z",
        &["alerts", "list", "--format", "json"],
    ));
    let email = j["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["sink"] == "email")
        .unwrap()
        .clone();
    assert_eq!(email["state"], "dead");
    assert_eq!(email["dead_at"], "2026-11-24T12:00:40Z");

    // The server comes back: a dead delivery is never sent again.
    let smtp = Smtp::start(
        &certs,
        &t.path().join("smtp"),
        &SmtpOptions {
            port,
            ..smtp_opts()
        },
    );
    for now in ["2026-11-24T12:01:00Z", "2026-11-24T13:00:00Z"] {
        let o = run_at(t.path(), now, &["alerts", "deliver"]);
        assert_eq!(common::code(&o), 0, "{}", common::stdout(&o));
        assert_eq!(common::stdout(&o).trim(), "nothing due");
    }
    assert!(smtp.messages().is_empty());
    assert_eq!(hook.received().len(), 1, "the webhook got it once");
}

#[test]
fn max_attempts_gives_up_by_count() {
    if !smtp_available() {
        return;
    }
    let t = common::tempdir();
    let port = free_port();
    let mut alerts = alerts_config(Some((port, "starttls")), None, false);
    alerts = alerts.replace(
        "retry_base = \"1s\"\n",
        "retry_base = \"1s\"\nmax_attempts = 2\n",
    );
    common::write(t.path(), "awxguard.toml", keys_config(&alerts));
    Certs::make(t.path());
    let o = audit(t.path(), NOW);
    assert!(common::stderr(&o).contains("NOT sent by email (attempt 1"));
    let o = run_at(t.path(), "2026-11-24T12:00:05Z", &["alerts", "deliver"]);
    assert!(
        common::stdout(&o).contains("GAVE UP after 2 attempt(s)"),
        "{}",
        common::stdout(&o)
    );
}

#[test]
fn a_stalled_smtp_server_does_not_hold_up_the_webhook() {
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
    let hook = Hook::start(vec![]);
    // Email first in the outbox's order; it waits 60 s for DATA's answer.
    let alerts = alerts_config(Some((stalled.port, "starttls")), Some(&hook.url), false).replace(
        "timeout = \"5s\"\n\n[alerts.webhook]",
        "timeout = \"60s\"\n\n[alerts.webhook]",
    );
    common::write(t.path(), "awxguard.toml", keys_config(&alerts));
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
    // While email hangs in DATA, the webhook has its alert.
    wait_until(
        "the webhook's alert while email stalls",
        std::time::Duration::from_secs(30),
        || hook.received().len() == 1,
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run is still waiting for the SMTP server"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
