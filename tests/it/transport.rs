//! The one transport and host rule, for every caller that logs in: `scan --verify`, `inventory
//! verify` and `audit` refuse a non-loopback `http://` base URL and a host that is neither
//! Airwallex's nor listed in `[airwallex] allow_hosts` before any key leaves the process. Every
//! request awxguard makes to another host goes through a recording proxy on loopback (the
//! tripwire), so a key that left would be seen there; `.invalid` hosts never resolve, and no test
//! reaches the internet. A listed host is used, and every report that used it names it.

use crate::common::*;
use std::path::Path;

/// The base URLs the rule refuses (with an empty allow list).
const REFUSED: &[(&str, &str)] = &[
    (
        "http://example.invalid",
        "refusing to send API keys over plain HTTP",
    ),
    (
        "http://10.0.0.5:8080",
        "refusing to send API keys over plain HTTP",
    ),
    (
        "https://example.invalid",
        "add \"example.invalid\" to [airwallex] allow_hosts",
    ),
    (
        "https://api.airwallex.com.example.invalid",
        "is neither an Airwallex API host",
    ),
];

/// A directory with one leaked key (client ID beside it) and one declared key.
fn fixture(dir: &Path, airwallex: &str) {
    let cid = client_id("transport");
    write(
        dir,
        "src/.env",
        format!(
            "AIRWALLEX_CLIENT_ID={cid}\nAIRWALLEX_API_KEY={}\n",
            key("transport-leaked")
        ),
    );
    write(
        dir,
        "awxguard.toml",
        format!(
            "{airwallex}\n[[key]]\nname = \"payvy\"\nclient_id = \"{cid}\"\napi_key = \
             \"env:TRANSPORT_KEY\"\nenvironment = \"production\"\nkind = \"admin\"\n"
        ),
    );
}

/// Runs awxguard in `dir` behind the tripwire with `base_url`; returns its output.
fn run_behind(dir: &Path, wire: &Tripwire, base_url: &str, args: &[&str]) -> std::process::Output {
    behind_tripwire(dir, wire)
        .env("AWXGUARD_AIRWALLEX_URL", base_url)
        .env("TRANSPORT_KEY", key("transport-declared"))
        .args(args)
        .output()
        .unwrap()
}

/// Each caller, as its command line.
const CALLERS: &[&[&str]] = &[
    &["scan", "--verify", "--format", "json", "src"],
    &["inventory", "verify", "--format", "json"],
    &["audit", "--format", "json", "--no-store"],
];

#[test]
fn every_login_caller_refuses_plain_http_and_unlisted_hosts_before_sending_a_key() {
    let d = tempdir();
    fixture(d.path(), "[airwallex]\nretries = 0\n");
    let wire = tripwire();
    for args in CALLERS {
        for (url, says) in REFUSED {
            let o = run_behind(d.path(), &wire, url, args);
            assert_eq!(code(&o), 2, "{args:?} {url}: {}", stderr(&o));
            assert!(stderr(&o).contains(says), "{args:?} {url}: {}", stderr(&o));
            let seen = wire.seen.lock().unwrap().clone();
            assert!(seen.is_empty(), "{args:?} {url}: a request left: {seen:?}");
            for k in ["transport-leaked", "transport-declared"] {
                assert_no_secret(&stderr(&o), &key(k), "the refusal");
                assert_no_secret(&stdout(&o), &key(k), "the refusal");
            }
        }
    }
    // A loopback server that records connections: plain http is fine there, and it is asked.
    let (url, counts) = counting_server(0);
    for args in CALLERS {
        let o = run_behind(d.path(), &wire, &url, args);
        assert!(code(&o) <= 1, "{args:?}: {}", stderr(&o));
    }
    assert_eq!(counts.lock().unwrap().2, 3, "one login per caller");
    assert!(wire.seen.lock().unwrap().is_empty());
}

#[test]
fn a_listed_host_receives_keys_and_every_report_that_used_it_names_it() {
    let d = tempdir();
    fixture(
        d.path(),
        "[airwallex]\nretries = 0\nallow_hosts = [\"gateway.invalid\"]\n",
    );
    let wire = tripwire();
    for args in CALLERS {
        let o = run_behind(d.path(), &wire, "https://gateway.invalid", args);
        assert!(code(&o) <= 1, "{args:?}: {}", stderr(&o));
        let j = json(&o);
        let notes = j["summary"]["notes"].to_string();
        assert!(
            notes.contains("keys were sent to https://gateway.invalid"),
            "{args:?}: {notes}"
        );
        let allowed = if args[0] == "audit" {
            &j["summary"]["audit"]["verification"]["allowed_hosts"]
        } else {
            &j["summary"]["verification"]["allowed_hosts"]
        };
        assert_eq!(allowed[0], "https://gateway.invalid", "{args:?}: {j}");
    }
    // The tripwire saw the logins (through the proxy variables): the host was really used.
    let seen = wire.seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 3 && seen.iter().all(|l| l.contains("gateway.invalid")),
        "{seen:?}"
    );
    // The human inventory table names it too.
    let o = run_behind(
        d.path(),
        &wire,
        "https://gateway.invalid",
        &["inventory", "verify"],
    );
    assert!(
        stdout(&o).contains("keys were sent to https://gateway.invalid"),
        "{}",
        stdout(&o)
    );
}
