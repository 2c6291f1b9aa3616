//! Issue 16, trust in the audit: it never learns from abuse, resolves a finding only when a run
//! that could see it no longer does, reports one incident as one finding, audits a config with a
//! literal key instead of refusing it, and its lifecycle is usable (short ids, acknowledgement
//! details, no empty database made by a mistyped path).

use crate::common::*;
use crate::inventory::key_table;
use serde_json::Value;

const WELL_KEPT: &str =
    "owner = \"finance\"\npurpose = \"AP\"\nrotated = 2026-10-01\ncreated = 2025-01-01";

/// A usage event in the contract's format, `days_ago` before the pinned clock.
fn event(days_ago: i64, key: &str, method: &str, path: &str, status: u16, ip: &str) -> String {
    let ts = chrono::DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z").unwrap()
        - chrono::Duration::days(days_ago);
    serde_json::json!({
        "ts": ts.to_rfc3339(), "key": key, "method": method, "path": path, "status": status,
        "source_ip": ip, "user_agent": "erp/1.0", "host": "api.airwallex.com",
    })
    .to_string()
}

/// Reads of transfers every five days over 100 days, from `ip`.
fn steady(key: &str, ip: &str) -> Vec<String> {
    (1..=100)
        .step_by(5)
        .map(|d| event(d, key, "GET", "/api/v1/transfers", 200, ip))
        .collect()
}

fn findings(r: &Value) -> &Vec<Value> {
    r["findings"].as_array().expect("findings")
}

fn one<'a>(r: &'a Value, rule: &str, key: &str) -> &'a Value {
    findings(r)
        .iter()
        .find(|f| f["rule"] == rule && f["key"] == key)
        .unwrap_or_else(|| panic!("no {rule} on {key} in {r:#}"))
}

/// The audit never learns from abuse: calls from outside a key's whitelist, calls needing a
/// scope it does not declare and calls inside an open anomaly are reported, and neither the
/// replacement key's scopes nor the suggested whitelist come from them.
#[test]
fn an_audit_with_attacker_traffic_recommends_no_new_scope_and_no_attacker_address() {
    let dir = tempdir();
    let d = dir.path();
    let config = [
        // an admin key with a whitelist, abused from outside it
        key_table(
            "ap",
            "env:AP_KEY",
            "production",
            "admin",
            &format!("ip_whitelist = [\"198.51.100.0/24\"]\n{WELL_KEPT}"),
        ),
        // a scoped key without a whitelist, used to add a beneficiary it should not
        key_table(
            "reports",
            "env:REPORTS_KEY",
            "production",
            "custom",
            &format!("scopes = [\"transfer:read\"]\n{WELL_KEPT}"),
        ),
    ]
    .concat();
    write(d, "awxguard.toml", config);
    let mut lines = steady("ap", "198.51.100.7");
    lines.extend(steady("reports", "198.51.100.8"));
    let attacker = "203.0.113.66";
    lines.push(event(
        2,
        "ap",
        "POST",
        "/api/v1/beneficiaries/create",
        201,
        attacker,
    ));
    lines.push(event(
        2,
        "ap",
        "POST",
        "/api/v1/transfers/create",
        201,
        attacker,
    ));
    lines.push(event(
        3,
        "reports",
        "POST",
        "/api/v1/beneficiaries/create",
        201,
        attacker,
    ));
    // calls inside an open anomaly of reports (recorded by the usage detectors): an address the
    // integration never uses
    lines.push(event(
        4,
        "reports",
        "GET",
        "/api/v1/transfers",
        200,
        "192.0.2.50",
    ));
    write(d, "usage/events.jsonl", lines.join("\n") + "\n");
    let at = |days: i64| {
        (chrono::DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z").unwrap()
            - chrono::Duration::days(days))
        .to_utc()
    };
    let store = awxguard::store::open(&db_target(d)).unwrap();
    let mut anomaly = awxguard::finding::Finding::new(
        "anomaly.new-network",
        awxguard::finding::Severity::High,
        "reports called from a network it never used",
        &["reports", "2026-11-20T12:00:00Z"],
    );
    anomaly.key = Some("reports".into());
    anomaly.start = Some((at(4) - chrono::Duration::minutes(30)).to_rfc3339());
    anomaly.end = Some((at(4) + chrono::Duration::minutes(30)).to_rfc3339());
    store
        .record("usage", std::slice::from_mut(&mut anomaly), at(1))
        .unwrap();
    drop(store);

    let out = awxguard(d)
        .env("AP_KEY", key("ap"))
        .env("REPORTS_KEY", key("reports"))
        .args([
            "audit",
            "--no-verify",
            "--usage",
            "usage",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = json(&out);

    // Both abuses are reported, critical (they wrote).
    let outside = one(&r, "usage.outside-whitelist", "ap");
    assert_eq!(outside["severity"], "critical");
    assert!(outside["message"].as_str().unwrap().contains(attacker));
    assert_eq!(outside["evidence"]["network"], "203.0.113.0/24");
    let undeclared = one(&r, "usage.undeclared-scope", "reports");
    assert_eq!(undeclared["severity"], "critical");
    assert_eq!(undeclared["evidence"]["scope"], "beneficiary:write");

    // The admin key's replacement: what the integration reads, from where it reads it.
    let admin = one(&r, "privilege.admin-key", "ap");
    let rep = &admin["recommendation"]["replacement"];
    assert_eq!(
        rep["scopes"],
        serde_json::json!(["transfer:read"]),
        "{rep:#}"
    );
    assert_eq!(rep["ip_whitelist"], serde_json::json!(["198.51.100.7/32"]));
    assert!(
        rep["basis"]
            .as_str()
            .unwrap()
            .contains("not evidence of need"),
        "{rep:#}"
    );
    // The suggested whitelist of the key without one: its integration's address only.
    let wl = one(&r, "privilege.no-ip-whitelist", "reports");
    assert_eq!(
        wl["evidence"]["suggested"],
        serde_json::json!(["198.51.100.8/32"])
    );

    // Nothing recommended grants a scope or an address the abuse showed.
    for f in findings(&r) {
        let rule = f["rule"].as_str().unwrap();
        if rule.starts_with("usage.") {
            continue; // the reports of the abuse name it, as they should
        }
        let rec = f["recommendation"].to_string();
        for bad in [
            attacker,
            "192.0.2.50",
            "beneficiary:write",
            "transfer:write",
        ] {
            assert!(!rec.contains(bad), "{rule} recommends {bad}: {rec}");
        }
        if let Some(s) = f["recommendation"]["replacement"]["scopes"].as_array() {
            assert!(
                s.iter().all(|s| s.as_str().unwrap().ends_with(":read")),
                "{f:#}"
            );
        }
    }
    // The inventory still shows the key as used.
    assert!(crate::inventory::row(&r, "reports")["last_used"].is_string());
    for k in ["ap", "reports"] {
        assert_no_secret(&stdout(&out), &key(k), "audit report");
    }
}

/// A finding resolves only when a run that could see it no longer does: a leak stays open
/// across an audit without `--scan` and one where the key's variable is unset, and resolves
/// (`fixed`) when an audit over the same roots no longer finds it.
#[test]
fn a_leak_stays_open_until_a_run_over_the_same_roots_no_longer_finds_it() {
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "awxguard.toml",
        key_table(
            "payvy",
            "env:PAYVY_KEY",
            "production",
            "custom",
            &format!(
                "scopes = [\"transfer:read\"]\nip_whitelist = [\"198.51.100.7\"]\n{WELL_KEPT}"
            ),
        ),
    );
    write(
        d,
        "app/settings.py",
        format!("AIRWALLEX_API_KEY = \"{}\"\n", key("payvy")),
    );
    let audit = |args: &[&str], var: bool| {
        let mut c = awxguard(d);
        if var {
            c.env("PAYVY_KEY", key("payvy"));
        } else {
            c.env_remove("PAYVY_KEY");
        }
        let out = c
            .args(["audit", "--no-verify", "--format", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(code(&out) <= 1, "{}", stderr(&out));
        assert_no_secret(&stdout(&out), &key("payvy"), "audit");
        json(&out)
    };
    let leak_of = |r: &Value| -> Option<Value> {
        findings(r)
            .iter()
            .find(|f| f["rule"] == "privilege.key-leaked" && f["key"] == "payvy")
            .cloned()
    };
    let first = audit(&["--scan", "app"], true);
    let leak = leak_of(&first).expect("leaked");
    assert_eq!(leak["status"], "new");
    let id = leak["id"].as_str().unwrap().to_string();

    let unchecked = |r: &Value| -> Vec<Value> {
        r["summary"]["not_rechecked"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    // No --scan: this audit did not look where the leak was seen.
    let second = audit(&[], true);
    assert!(leak_of(&second).is_none());
    assert!(second["summary"]["resolved"].is_null(), "{second:#}");
    let u = unchecked(&second);
    assert_eq!(u.len(), 1, "{second:#}");
    assert_eq!(u[0]["id"], id.as_str());
    assert_eq!(u[0]["status"], "open");
    assert!(u[0]["not_looked_at"].to_string().contains("scan:tree:"));
    let notes = second["summary"]["notes"].to_string();
    assert!(
        notes.contains("not re-checked, still open: privilege.key-leaked payvy"),
        "{notes}"
    );
    assert!(notes.contains("audit --scan"), "{notes}");
    assert_eq!(second["summary"]["audit"]["store"]["not_rechecked"], 1);

    // The same roots, but the key's variable unset: the key cannot be recognised there (the
    // leak is reported under its fingerprint, a key nobody declared), so payvy's leak is not
    // re-checked.
    let third = audit(&["--scan", "app"], false);
    assert!(leak_of(&third).is_none());
    assert!(findings(&third)
        .iter()
        .any(|f| f["rule"] == "privilege.key-leaked"
            && f["key"] == fingerprint(&key("payvy")).as_str()));
    let u = unchecked(&third);
    assert_eq!(u.len(), 1, "{third:#}");
    assert!(u[0]["not_looked_at"]
        .to_string()
        .contains("secret:env:PAYVY_KEY"));
    assert!(third["summary"]["notes"]
        .to_string()
        .contains("PAYVY_KEY set"));
    let open = run(
        d,
        &["findings", "list", "--status", "open", "--format", "json"],
    );
    assert!(
        findings(&json(&open))
            .iter()
            .any(|f| f["id"] == id.as_str()),
        "still open in the database"
    );

    // Fixed: the same roots, the key readable, the leak gone.
    write(
        d,
        "app/settings.py",
        "AIRWALLEX_API_KEY = os.environ[\"K\"]\n",
    );
    let fourth = audit(&["--scan", "app"], true);
    assert!(leak_of(&fourth).is_none());
    let resolved = fourth["summary"]["resolved"].as_array().expect("resolved");
    let gone = resolved.iter().find(|f| f["id"] == id.as_str()).unwrap();
    assert_eq!(gone["status"], "resolved");
    assert_eq!(gone["resolution"], "fixed");
    let listed = run(
        d,
        &[
            "findings", "list", "--status", "resolved", "--format", "json",
        ],
    );
    let l = json(&listed);
    let stored = findings(&l)
        .iter()
        .find(|f| f["id"] == id.as_str())
        .unwrap();
    assert_eq!(stored["resolution"], "fixed");
    let human = run(d, &["findings", "list", "--status", "resolved"]);
    assert!(
        stdout(&human).contains(&format!("id {}  |  status: resolved (fixed)", &id[..8])),
        "{}",
        stdout(&human)
    );
}

/// An audit audits: a literal key is a finding (critical in production), every key is audited,
/// and the literal appears nowhere; `allow_literal = true` only acknowledges the finding.
#[test]
fn a_literal_key_is_a_finding_and_every_key_is_audited() {
    let dir = tempdir();
    let d = dir.path();
    let literal = key("literal-in-config");
    let config = |accept: &str| {
        [
            key_table(
                "legacy",
                &literal,
                "production",
                "custom",
                &format!("scopes = [\"transfer:read\"]\n{accept}"),
            ),
            key_table(
                "erp",
                "env:ERP_KEY",
                "production",
                "admin",
                "owner = \"finance\"",
            ),
        ]
        .concat()
    };
    write(d, "awxguard.toml", config(""));
    let audit = |format: &str| {
        awxguard(d)
            .env("ERP_KEY", key("erp"))
            .args(["audit", "--no-verify", "--format", format])
            .output()
            .unwrap()
    };
    let out = audit("json");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = json(&out);
    let lit = one(&r, "privilege.secret-literal", "legacy");
    assert_eq!(lit["severity"], "critical");
    assert_eq!(lit["status"], "new");
    assert_eq!(r["summary"]["audit"]["keys"], 2);
    assert!(findings(&r).iter().any(|f| f["key"] == "erp"));
    assert!(findings(&r)
        .iter()
        .any(|f| f["key"] == "legacy" && f["rule"] != "privilege.secret-literal"));
    let human = audit("human");
    let sarif = audit("sarif");
    let db = db_contents(d);
    for (what, text) in [
        ("json", stdout(&out)),
        ("json stderr", stderr(&out)),
        ("human", stdout(&human)),
        ("human stderr", stderr(&human)),
        ("sarif", stdout(&sarif)),
        ("database", String::from_utf8_lossy(&db).into_owned()),
    ] {
        assert_no_secret(&text, &literal, what);
    }

    // Accepted: still reported, acknowledged by the config, no longer failing the run.
    write(d, "awxguard.toml", config("allow_literal = true"));
    let out = awxguard(d)
        .env("ERP_KEY", key("erp"))
        .args([
            "audit",
            "--no-verify",
            "--format",
            "json",
            "--fail-on",
            "critical",
        ])
        .output()
        .unwrap();
    let r = json(&out);
    let lit = one(&r, "privilege.secret-literal", "legacy");
    assert_eq!(lit["status"], "acknowledged");
    assert!(lit["evidence"]["accepted"]
        .as_str()
        .unwrap()
        .contains("allow_literal = true"));
    let listed = run(d, &["findings", "list", "--status", "acknowledged"]);
    assert!(
        stdout(&listed).contains(
            "acknowledged by the config on 2026-11-24 with no expiry: allow_literal = true"
        ),
        "{}",
        stdout(&listed)
    );
    // No longer accepted: open again.
    write(d, "awxguard.toml", config(""));
    let r = json(&audit("json"));
    assert_eq!(
        one(&r, "privilege.secret-literal", "legacy")["status"],
        "open"
    );
}

/// One incident, one finding: a key in a source file of a repository (nobody declared it, the
/// file is world-readable, inside a git work tree) is one `key-leaked` carrying those facts in
/// `also`; the audit looks at the repository's history too.
#[test]
fn a_key_leaked_in_a_source_file_gives_one_finding_carrying_its_storage_facts() {
    use std::os::unix::fs::PermissionsExt;
    let repo = crate::git::Repo::new();
    let stray = key("stray-in-source");
    let declared = key("declared-in-history");
    repo.write(
        "src/settings.py",
        format!("AIRWALLEX_API_KEY = \"{stray}\"\n"),
    );
    std::fs::set_permissions(
        repo.dir.join("src/settings.py"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    // a declared key committed once and removed since: only the history holds it
    repo.write("deploy/old.env", format!("AIRWALLEX_API_KEY={declared}\n"));
    let commit = repo.commit("settings");
    std::fs::remove_file(repo.dir.join("deploy/old.env")).unwrap();
    repo.commit("remove the key");
    let cfg = tempdir();
    write(
        cfg.path(),
        "awxguard.toml",
        key_table(
            "payouts",
            "env:PAYOUTS_KEY",
            "production",
            "custom",
            &format!(
                "scopes = [\"transfer:read\"]\nip_whitelist = [\"198.51.100.7\"]\n{WELL_KEPT}"
            ),
        ),
    );
    let mut c = awxguard(cfg.path());
    repo.env(&mut c);
    let out = c
        .env("PAYOUTS_KEY", &declared)
        .args(["audit", "--no-verify", "--format", "json", "--scan"])
        .arg(&repo.dir)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = json(&out);
    let fp = fingerprint(&stray);
    let of_stray: Vec<&Value> = findings(&r)
        .iter()
        .filter(|f| f["key"] == fp.as_str())
        .collect();
    assert_eq!(of_stray.len(), 1, "{of_stray:#?}");
    let leak = of_stray[0];
    assert_eq!(leak["rule"], "privilege.key-leaked");
    assert_eq!(leak["severity"], "critical");
    let also: Vec<&str> = leak["also"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in [
        "privilege.shadow-key",
        "privilege.secret-file-readable",
        "privilege.secret-in-git-work-tree",
    ] {
        assert!(also.contains(&want), "{want} not carried: {also:?}");
    }
    let folded = leak["evidence"]["folded"].as_array().unwrap();
    assert_eq!(folded.len(), also.len());
    let steps = leak["recommendation"]["steps"].to_string();
    assert!(!steps.contains("chmod 600 src/settings.py"), "{steps}");
    assert!(
        steps.contains("declare the new key as a [[key]]"),
        "{steps}"
    );
    // the history was scanned: the declared key's leak is found in the commit that added it
    let hist = one(&r, "privilege.key-leaked", "payouts");
    assert!(
        hist["message"].as_str().unwrap().contains(&commit),
        "{hist:#}"
    );
    // the human report shows what the finding carries, and its short id
    let mut c = awxguard(cfg.path());
    repo.env(&mut c);
    let human = c
        .env("PAYOUTS_KEY", &declared)
        .args(["audit", "--no-verify", "--no-store", "--scan"])
        .arg(&repo.dir)
        .output()
        .unwrap();
    let text = stdout(&human);
    assert!(
        text.contains(&format!("id {}", &leak["id"].as_str().unwrap()[..8])),
        "{text}"
    );
    assert!(text.contains("also privilege.shadow-key: "), "{text}");
    for k in [&stray, &declared] {
        assert_no_secret(&stdout(&out), k, "audit json");
        assert_no_secret(&text, k, "audit human");
    }
}

/// A repository root's history is scanned; a root inside a repository says plainly that its
/// history is not, and how to scan it.
#[test]
fn audit_scan_inside_a_repository_says_how_to_check_its_history() {
    let repo = crate::git::Repo::new();
    repo.write("app/main.py", "print('hi')\n");
    repo.commit("app");
    let cfg = tempdir();
    write(
        cfg.path(),
        "awxguard.toml",
        key_table("erp", "env:ERP_KEY", "sandbox", "admin", "owner = \"x\""),
    );
    let mut c = awxguard(cfg.path());
    repo.env(&mut c);
    let out = c
        .env("ERP_KEY", key("erp"))
        .args([
            "audit",
            "--no-verify",
            "--no-store",
            "--format",
            "json",
            "--scan",
        ])
        .arg(repo.dir.join("app"))
        .output()
        .unwrap();
    assert!(code(&out) <= 1, "{}", stderr(&out));
    let notes = json(&out)["summary"]["notes"].to_string();
    assert!(notes.contains("not the repository's history"), "{notes}");
    assert!(notes.contains("awxguard scan --git"), "{notes}");
}
