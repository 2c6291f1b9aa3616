//! `awxguard audit`: inventory, login check, discovery, usage evidence, rules, store, report,
//! against the local Airwallex simulator over real HTTP.

use crate::common::*;
use crate::inventory::{fleet, logins, row};

const FLEET: [&str; 6] = ["payvy", "old", "whitelisted", "busy", "disguised", "scoped"];

#[test]
fn audit_reports_every_key_and_names_each_problem() {
    let dir = tempdir();
    let (sim, mut cmd) = fleet(dir.path());
    let out = cmd
        .args(["audit", "--format", "json", "-vv"])
        .output()
        .unwrap();
    assert!(code(&out) <= 1, "{}", stderr(&out));
    let r = json(&out);
    let a = &r["summary"]["audit"];
    assert_eq!(a["keys"], 8);
    assert_eq!(a["declared"], 8);
    assert_eq!(a["verification"]["logins"], 6);
    assert_eq!(row(&r, "disguised")["status"], "live");
    assert_eq!(row(&r, "whitelisted")["status"], "forbidden");
    let notes: Vec<String> = r["summary"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let has = |s: &str| notes.iter().any(|n| n.contains(s));
    assert!(has("key \"nosecret\": secret not resolvable: environment variable NOT_SET_ANYWHERE is not set; not verified"), "{notes:?}");
    assert!(
        has("key \"dirsecret\": secret not resolvable:"),
        "{notes:?}"
    );
    assert!(
        has(&format!(
            "key \"busy\" ({}): login outcome unknown",
            fingerprint(&key("busy"))
        )),
        "{notes:?}"
    );
    assert!(has("no usage evidence given"), "{notes:?}");
    for k in FLEET {
        if k != "busy" {
            assert_eq!(logins(&sim, k), 1, "{k}");
        }
    }
}

#[test]
fn no_verify_never_logs_in() {
    let dir = tempdir();
    let (sim, mut cmd) = fleet(dir.path());
    let out = cmd
        .args(["audit", "--no-verify", "--format", "json"])
        .output()
        .unwrap();
    assert!(code(&out) <= 1, "{}", stderr(&out));
    assert_eq!(row(&json(&out), "payvy")["status"], "unverified");
    assert!(sim.requests().is_empty());
}

#[test]
fn the_secret_never_appears_in_output_logs_database_or_errors() {
    let dir = tempdir();
    let (_sim, mut cmd) = fleet(dir.path());
    let out = cmd
        .args(["audit", "--format", "json", "-vv", "--discover", "secrets"])
        .output()
        .unwrap();
    assert!(code(&out) <= 1, "{}", stderr(&out));
    let human = fleet(dir.path()).1.args(["audit", "-vv"]).output().unwrap();
    let mut db = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".awxguard-test.db")
        {
            db.extend(std::fs::read(&p).unwrap());
        }
    }
    assert!(!db.is_empty(), "the audit recorded to the database");
    let db = String::from_utf8_lossy(&db);
    for k in FLEET {
        let secret = key(k);
        for (what, text) in [
            ("json stdout", stdout(&out)),
            ("stderr -vv", stderr(&out)),
            ("human stdout", stdout(&human)),
            ("human stderr", stderr(&human)),
            ("database", db.to_string()),
        ] {
            assert_no_secret(&text, &secret, what);
        }
    }
}

#[test]
fn audit_discovery_verifies_shadow_keys_found_with_their_client_id() {
    use crate::inventory::{airwallex_section, key_table, sim_key, spawn};
    use awxguard::airwallex::simulator::Behaviour;
    let dir = tempdir();
    let sim = spawn(vec![
        sim_key("payvy", "payvy", Behaviour::Live),
        sim_key("legacy", "legacy", Behaviour::Live),
    ]);
    write(
        dir.path(),
        "etc/legacy.env",
        format!(
            "AIRWALLEX_CLIENT_ID={}\nAIRWALLEX_API_KEY={}\n",
            client_id("legacy"),
            key("legacy")
        ),
    );
    let config = [
        airwallex_section(&sim.url()),
        key_table("payvy", "env:PAYVY_KEY", "production", "admin", ""),
    ]
    .concat();
    write(dir.path(), "awxguard.toml", config);
    let out = awxguard(dir.path())
        .env("PAYVY_KEY", key("payvy"))
        .args(["audit", "--discover", "etc", "--format", "json"])
        .output()
        .unwrap();
    assert!(code(&out) <= 1, "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["summary"]["audit"]["undeclared"], 1);
    let shadow = row(&r, &fingerprint(&key("legacy")));
    assert_eq!(shadow["declared"], false);
    assert_eq!(shadow["status"], "live");
    assert_eq!(logins(&sim, "legacy"), 1);
    assert_no_secret(&stdout(&out), &key("legacy"), "audit with a shadow key");
}
