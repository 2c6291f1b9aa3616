//! `awxguard inventory`, `inventory verify` and `inventory discover` against the local Airwallex
//! simulator over real HTTP.

use crate::common::*;
use awxguard::airwallex::simulator::{Behaviour, SimKey, SimState, Simulator};
use serde_json::Value;
use std::path::Path;

/// A `[[key]]` table.
pub fn key_table(name: &str, api_key: &str, env: &str, kind: &str, extra: &str) -> String {
    format!(
        "[[key]]\nname = \"{name}\"\nclient_id = \"{}\"\napi_key = \"{api_key}\"\nenvironment = \
         \"{env}\"\nkind = \"{kind}\"\n{extra}\n",
        client_id(name)
    )
}

/// The `[airwallex]` section pointing at `url`, with fast retries.
pub fn airwallex_section(url: &str) -> String {
    format!(
        "[airwallex]\nbase_url = \"{url}\"\nretries = 1\nretry_base_ms = 1\ntimeout_ms = 5000\n\n"
    )
}

/// A simulator key for `name`'s client ID and the key made from `seed`.
pub fn sim_key(name: &str, seed: &str, behaviour: Behaviour) -> SimKey {
    SimState::default()
        .with_key(&client_id(name), &key(seed), behaviour)
        .keys
        .remove(0)
}

pub fn spawn(keys: Vec<SimKey>) -> SimHandle {
    Simulator::spawn(SimState {
        keys,
        ..SimState::default()
    })
    .expect("simulator")
}

/// The row of `name` in a JSON listing's `summary.keys`.
pub fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["summary"]["keys"]
        .as_array()
        .expect("summary.keys")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {report:#}"))
}

/// Logins the simulator saw for the key made from `seed`.
pub fn logins(sim: &SimHandle, seed: &str) -> usize {
    let fp = fingerprint(&key(seed));
    sim.requests()
        .iter()
        .filter(|r| r.key_fingerprint.as_deref() == Some(fp.as_str()))
        .count()
}

/// Six keys, one per answer a login can give, plus a disguised admin and a scoped key.
pub fn fleet(dir: &Path) -> (SimHandle, std::process::Command) {
    let mut whitelisted = sim_key("whitelisted", "whitelisted", Behaviour::Live);
    whitelisted.ip_whitelist = vec!["10.0.0.0/24".into()];
    let mut scoped = sim_key("scoped", "scoped", Behaviour::Live);
    scoped.permissions = vec!["r:awx:transfer:*".into(), "w:awx:transfer:*".into()];
    let sim = spawn(vec![
        sim_key("payvy", "payvy", Behaviour::Live),
        sim_key("old", "old", Behaviour::Revoked),
        whitelisted,
        sim_key("busy", "busy", Behaviour::RateLimited),
        sim_key("disguised", "disguised", Behaviour::Live),
        scoped,
    ]);
    write(dir, "secrets/old.key", format!("{}\n", key("old")));
    let config = [
        airwallex_section(&sim.url()),
        key_table(
            "payvy",
            "env:PAYVY_KEY",
            "production",
            "admin",
            "owner = \"finance\"\ncreated = 2026-01-01\nrotated = 2026-10-25",
        ),
        key_table(
            "old",
            "file:secrets/old.key",
            "production",
            "read_write",
            "",
        ),
        key_table("whitelisted", "env:WL_KEY", "production", "read_write", ""),
        key_table("busy", "env:BUSY_KEY", "sandbox", "read_only", ""),
        key_table(
            "disguised",
            "env:DISGUISED_KEY",
            "production",
            "read_only",
            "",
        ),
        key_table(
            "scoped",
            "env:SCOPED_KEY",
            "production",
            "custom",
            "scopes = [\"transfer:write\", \"transfer:read\"]",
        ),
        key_table(
            "nosecret",
            "env:NOT_SET_ANYWHERE",
            "production",
            "admin",
            "",
        ),
        key_table("dirsecret", "file:secrets", "production", "admin", ""),
    ]
    .concat();
    write(dir, "awxguard.toml", config);
    let mut cmd = awxguard(dir);
    cmd.env("PAYVY_KEY", key("payvy"))
        .env("WL_KEY", key("whitelisted"))
        .env("BUSY_KEY", key("busy"))
        .env("DISGUISED_KEY", key("disguised"))
        .env("SCOPED_KEY", key("scoped"))
        .env_remove("NOT_SET_ANYWHERE");
    (sim, cmd)
}

#[test]
fn inventory_lists_keys_without_logging_in() {
    let dir = tempdir();
    let (sim, mut cmd) = fleet(dir.path());
    let out = cmd
        .args(["inventory", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = json(&out);
    let p = row(&r, "payvy");
    assert_eq!(p["status"], "unverified");
    assert_eq!(p["kind"], "admin");
    assert_eq!(p["environment"], "production");
    assert_eq!(p["fingerprint"], fingerprint(&key("payvy")).as_str());
    assert_eq!(p["age_days"], 327);
    assert_eq!(p["rotated_days_ago"], 30);
    assert!(p["last_used"].is_null());
    assert_eq!(
        row(&r, "scoped")["scopes"],
        serde_json::json!(["transfer:write", "transfer:read"])
    );
    assert!(sim.requests().is_empty(), "plain inventory never logs in");
    // The human table names every key and never the secret.
    let out = fleet(dir.path()).1.arg("inventory").output().unwrap();
    let text = stdout(&out);
    assert!(text.starts_with("NAME"), "{text}");
    for name in ["payvy", "old", "whitelisted", "busy", "disguised", "scoped"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
        assert_no_secret(&text, &key(name), "inventory table");
    }
    assert!(text.contains(
        "nosecret: secret not resolvable: environment variable NOT_SET_ANYWHERE is not set"
    ));
}

#[test]
fn verify_logs_in_once_per_key_and_reads_effective_permissions() {
    let dir = tempdir();
    let (sim, mut cmd) = fleet(dir.path());
    let out = cmd
        .args(["inventory", "verify", "--format", "json", "-vv"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(row(&r, "payvy")["status"], "live");
    assert_eq!(
        row(&r, "payvy")["permissions"],
        serde_json::json!(["r:awx:*:*", "w:awx:*:*"])
    );
    assert_eq!(row(&r, "old")["status"], "revoked");
    assert_eq!(row(&r, "whitelisted")["status"], "forbidden");
    assert!(row(&r, "whitelisted")["login_detail"]
        .as_str()
        .unwrap()
        .contains("whitelist"));
    assert_eq!(row(&r, "busy")["status"], "unknown");
    // The disguised admin: declared read_only, its token says full access.
    let d = row(&r, "disguised");
    assert_eq!(d["kind"], "read_only");
    assert_eq!(d["status"], "live");
    assert!(d["effective"]
        .as_str()
        .unwrap()
        .starts_with("full access (admin"));
    // Undocumented permission strings are unknown, never taken as least privilege.
    let s = row(&r, "scoped")["effective"].as_str().unwrap().to_string();
    assert!(
        s.starts_with("unknown: permission strings Airwallex does not document"),
        "{s}"
    );
    // Keys without a secret are reported and not verified; the others still are.
    assert_eq!(row(&r, "nosecret")["status"], "unverified");
    assert!(row(&r, "dirsecret")["problem"]
        .as_str()
        .unwrap()
        .ends_with("secrets is a directory, not a file holding the key"));
    let notes = r["summary"]["notes"].to_string();
    assert!(
        notes.contains("key \\\"nosecret\\\": secret not resolvable"),
        "{notes}"
    );
    assert!(notes.contains("key \\\"busy\\\""), "{notes}");
    // One login per key; the rate-limited one is retried once (retries = 1).
    for k in ["payvy", "old", "whitelisted", "disguised", "scoped"] {
        assert_eq!(logins(&sim, k), 1, "{k}");
    }
    assert_eq!(logins(&sim, "busy"), 2);
    assert_eq!(r["summary"]["verification"]["logins"], 6);
    for k in ["payvy", "old", "whitelisted", "busy", "disguised", "scoped"] {
        assert_no_secret(&stdout(&out), &key(k), "verify stdout");
        assert_no_secret(&stderr(&out), &key(k), "verify stderr (-vv)");
    }
}

#[test]
fn unreachable_airwallex_is_unknown_per_key_not_fatal() {
    let dir = tempdir();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let config = [
        airwallex_section(&url),
        key_table("a", "env:A_KEY", "production", "admin", ""),
        key_table("b", "env:B_KEY", "sandbox", "read_only", ""),
    ]
    .concat();
    write(dir.path(), "awxguard.toml", config);
    let out = awxguard(dir.path())
        .env("A_KEY", key("a"))
        .env("B_KEY", key("b"))
        .args(["inventory", "verify"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("  a: unknown ("), "{text}");
    assert!(text.contains("  b: unknown ("), "{text}");
    let out = awxguard(dir.path())
        .env("A_KEY", key("a"))
        .env("B_KEY", key("b"))
        .args(["inventory", "verify", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = json(&out);
    let notes = r["summary"]["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "key \\\"a\\\" ({}): login outcome unknown ({url})",
            fingerprint(&key("a"))
        )),
        "{notes}"
    );
    assert_eq!(row(&r, "b")["status"], "unknown");
    let text = row(&r, "a")["login_detail"].as_str().unwrap().to_string();
    assert!(text.contains("gave up after 2 attempts"), "{text}");
}

#[test]
fn discover_matches_declared_keys_and_finds_shadow_keys() {
    let dir = tempdir();
    let sim = spawn(vec![sim_key("payvy", "payvy", Behaviour::Live)]);
    // A declared key sitting in an env file, and a key nobody declared.
    write(
        dir.path(),
        "srv/payvy/.env",
        format!(
            "AIRWALLEX_CLIENT_ID={}\nAIRWALLEX_API_KEY={}\n",
            client_id("payvy"),
            key("payvy")
        ),
    );
    write(
        dir.path(),
        "srv/legacy/config.env",
        format!("AIRWALLEX_API_KEY={}\n", key("legacy")),
    );
    let config = [
        airwallex_section(&sim.url()),
        key_table("payvy", "env:PAYVY_KEY", "production", "admin", ""),
    ]
    .concat();
    write(dir.path(), "awxguard.toml", config);
    let out = awxguard(dir.path())
        .env("PAYVY_KEY", key("payvy"))
        .args(["inventory", "discover", "srv", "--format", "json"])
        .output()
        .unwrap();
    // Issue 5: a declared key in a plain-text file and a shadow key are findings: exit 1.
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = json(&out);
    let found = |rule: &str, key: &str| {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule && f["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no {rule} for {key} in {r:#}"))
    };
    let plain = found("privilege.secret-in-plaintext-file", "payvy");
    assert_eq!(plain["severity"], "high");
    assert!(
        plain["message"]
            .as_str()
            .unwrap()
            .contains("srv/payvy/.env:2"),
        "{plain:#}"
    );
    assert_eq!(plain["recommendation"]["action"], "move-secret");
    let steps = plain["recommendation"]["steps"].to_string();
    assert!(
        steps.contains("Delete the copies of the key from srv/payvy/.env"),
        "{steps}"
    );
    let shadow_finding = found("privilege.shadow-key", &fingerprint(&key("legacy")));
    assert!(shadow_finding["message"]
        .as_str()
        .unwrap()
        .contains("srv/legacy/config.env:1"));
    // only what discovery establishes: no rotation, whitelist or owner findings here
    assert_eq!(r["findings"].as_array().unwrap().len(), 2, "{r:#}");
    assert_eq!(
        row(&r, "payvy")["found_in"],
        serde_json::json!(["srv/payvy/.env:2"])
    );
    let shadow_fp = fingerprint(&key("legacy"));
    let shadow = row(&r, &shadow_fp);
    assert_eq!(shadow["declared"], false);
    assert_eq!(
        shadow["found_in"],
        serde_json::json!(["srv/legacy/config.env:1"])
    );
    assert_eq!(r["summary"]["discovery"]["shadow_keys"], 1);
    assert!(sim.requests().is_empty(), "discover alone never logs in");
    for k in ["payvy", "legacy"] {
        assert_no_secret(&stdout(&out), &key(k), "discover stdout");
    }
}

/// `inventory discover` in human form: the table, then the findings; exit 1.
#[test]
fn discover_human_output_lists_the_storage_finding_and_exits_1() {
    let dir = tempdir();
    write(
        dir.path(),
        "deploy/app.env",
        format!("AIRWALLEX_API_KEY={}\n", key("erp")),
    );
    write(
        dir.path(),
        "awxguard.toml",
        key_table("erp", "env:ERP_KEY", "production", "read_only", ""),
    );
    let out = awxguard(dir.path())
        .env("ERP_KEY", key("erp"))
        .args(["inventory", "discover", "deploy"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("erp: found in plain text at deploy/app.env:1"),
        "{text}"
    );
    assert!(
        text.contains("privilege.secret-in-plaintext-file  erp was found in plain text"),
        "{text}"
    );
    assert_no_secret(&text, &key("erp"), "discover human stdout");
    assert_no_secret(&stderr(&out), &key("erp"), "discover stderr");
    // With nothing found it stays 0.
    write(dir.path(), "deploy/app.env", "AIRWALLEX_API_KEY=\n");
    let out = awxguard(dir.path())
        .env("ERP_KEY", key("erp"))
        .args(["inventory", "discover", "deploy"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn storage_facts_show_mode_git_work_tree_and_literal() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
    write(dir.path(), "repo/conf/k.key", key("k"));
    let p = dir.path().join("repo/conf/k.key");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = [
        key_table("k", "file:repo/conf/k.key", "production", "admin", ""),
        key_table(
            "lit",
            &key("lit"),
            "sandbox",
            "admin",
            "allow_literal = true",
        ),
    ]
    .concat();
    write(dir.path(), "awxguard.toml", config);
    let out = run(dir.path(), &["inventory", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = json(&out);
    let s = &row(&r, "k")["storage"];
    assert_eq!(s["source"]["type"], "file");
    assert_eq!(s["file_mode"], 0o644);
    assert_eq!(s["world_readable"], true);
    assert_eq!(s["group_readable"], true);
    let top = dir.path().join("repo").canonicalize().unwrap();
    assert_eq!(s["in_git_work_tree"], top.to_str().unwrap());
    let l = &row(&r, "lit");
    assert_eq!(l["storage"]["source"]["type"], "literal");
    assert_eq!(l["fingerprint"], fingerprint(&key("lit")).as_str());
    assert!(
        l["storage"]["file_mode"].is_number(),
        "the config file's mode"
    );
    assert_no_secret(&stdout(&out), &key("lit"), "inventory with a literal");
}

#[test]
fn one_login_per_credential_even_when_declared_under_two_names() {
    let dir = tempdir();
    // The simulator allows one login a minute for this key: a second login would be refused.
    let sim = Simulator::spawn(SimState {
        keys: vec![sim_key("shared", "shared", Behaviour::Live)],
        login_limit_per_minute: 1,
        ..SimState::default()
    })
    .unwrap();
    let mut config = airwallex_section(&sim.url());
    for (name, var) in [("erp", "ERP_KEY"), ("erp-copy", "ERP_COPY_KEY")] {
        config.push_str(&format!(
            "[[key]]\nname = \"{name}\"\nclient_id = \"{}\"\napi_key = \"env:{var}\"\n\
             environment = \"production\"\nkind = \"admin\"\n\n",
            client_id("shared")
        ));
    }
    write(dir.path(), "awxguard.toml", config);
    let out = awxguard(dir.path())
        .env("ERP_KEY", key("shared"))
        .env("ERP_COPY_KEY", key("shared"))
        .args(["inventory", "verify", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(row(&r, "erp")["status"], "live");
    assert_eq!(row(&r, "erp-copy")["status"], "live");
    assert_eq!(logins(&sim, "shared"), 1);
}

#[test]
fn last_used_comes_from_usage_evidence_by_name_or_fingerprint() {
    let dir = tempdir();
    let config = [
        key_table("payvy", "env:PAYVY_KEY", "production", "admin", ""),
        key_table(
            "reporting",
            "env:REPORTING_KEY",
            "production",
            "read_only",
            "",
        ),
        key_table("idle", "env:IDLE_KEY", "sandbox", "read_only", ""),
    ]
    .concat();
    write(dir.path(), "awxguard.toml", config);
    let ev = |ts: &str, k: &str| {
        format!(
            "{{\"ts\":\"{ts}\",\"key\":\"{k}\",\"method\":\"GET\",\"path\":\"/api/v1/transfers\",\"status\":200}}\n"
        )
    };
    write(
        dir.path(),
        "usage.jsonl",
        [
            ev("2026-11-01T10:00:00Z", "payvy"),
            ev("2026-11-20T10:15:00Z", "payvy"),
            ev("2026-10-02T08:00:00Z", &fingerprint(&key("reporting"))),
        ]
        .concat(),
    );
    let out = awxguard(dir.path())
        .env("PAYVY_KEY", key("payvy"))
        .env("REPORTING_KEY", key("reporting"))
        .env("IDLE_KEY", key("idle"))
        .args(["inventory", "--usage", "usage.jsonl", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(row(&r, "payvy")["last_used"], "2026-11-20T10:15:00Z");
    assert_eq!(row(&r, "reporting")["last_used"], "2026-10-02T08:00:00Z");
    assert!(row(&r, "idle")["last_used"].is_null());
    let out = awxguard(dir.path())
        .env("PAYVY_KEY", key("payvy"))
        .env("REPORTING_KEY", key("reporting"))
        .env("IDLE_KEY", key("idle"))
        .args(["inventory", "--usage", "usage.jsonl"])
        .output()
        .unwrap();
    let text = stdout(&out);
    let idle = text.lines().find(|l| l.starts_with("idle ")).unwrap();
    assert!(idle.contains("no evidence"), "{text}");
    let payvy = text.lines().find(|l| l.starts_with("payvy ")).unwrap();
    assert!(payvy.contains("2026-11-20"), "{text}");
}

#[test]
fn discovery_does_not_count_a_keys_own_secret_file() {
    let dir = tempdir();
    write(
        dir.path(),
        "secrets/payvy.key",
        format!("{}\n", key("payvy")),
    );
    // An env file given as a `file:` secret is a problem named with its cause.
    write(
        dir.path(),
        "secrets/erp.env",
        format!("AIRWALLEX_API_KEY={}\n", key("erp")),
    );
    write(
        dir.path(),
        "awxguard.toml",
        [
            key_table("payvy", "file:secrets/payvy.key", "production", "admin", ""),
            key_table("erp", "file:secrets/erp.env", "production", "admin", ""),
        ]
        .concat(),
    );
    let out = run(
        dir.path(),
        &["inventory", "discover", "secrets", "--format", "json"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = json(&out);
    assert!(row(&r, "payvy").get("found_in").is_none(), "{r:#}");
    let rules: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["privilege.shadow-key"], "{r:#}");
    let problem = row(&r, "erp")["problem"].as_str().unwrap();
    assert!(
        problem.ends_with(
            "does not hold an Airwallex API key (expected exactly 96 lowercase hex characters, \
             found 114 characters; it looks like an env file: reference the variable with \
             env:VAR, or put only the key in the file)"
        ),
        "{problem}"
    );
    // Its key is still found by discovery, as a key nobody declared under that fingerprint.
    assert_eq!(r["summary"]["discovery"]["shadow_keys"], 1);
    assert_no_secret(&stdout(&out), &key("erp"), "discover stdout");
}

#[test]
fn verify_runs_at_most_eight_logins_at_once() {
    let dir = tempdir();
    let (url, counts) = counting_server(100);
    let mut config = airwallex_section(&url);
    let mut cmd = awxguard(dir.path());
    for i in 0..20 {
        let name = format!("svc{i}");
        config.push_str(&key_table(
            &name,
            &format!("env:SVC{i}_KEY"),
            "production",
            "admin",
            "",
        ));
        cmd.env(format!("SVC{i}_KEY"), key(&name));
    }
    write(dir.path(), "awxguard.toml", config);
    let out = cmd
        .args(["inventory", "verify", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["summary"]["verification"]["outcomes"]["revoked"], 20);
    let (_, max, total) = *counts.lock().unwrap();
    assert_eq!(total, 20, "one login per key");
    assert!((1..=8).contains(&max), "{max} logins at once");
}
