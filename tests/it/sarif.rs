//! `--format sarif`: valid against the OASIS SARIF 2.1.0 schema (copied into `data/`), shaped for
//! GitHub code scanning, snapshotted; and the secret grep over every format, the logs and the
//! baseline file.

use crate::common::*;
use awxguard::airwallex::simulator::{Behaviour, SimState, Simulator};
use awxguard::finding::{Commit, Finding, SecretRef, Severity};
use awxguard::report::{render, Format, Report, Style};
use serde_json::Value;

fn schema_validator() -> jsonschema::Validator {
    let text = include_str!("data/sarif-schema-2.1.0.json");
    let schema: Value = serde_json::from_str(text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// Panics with every schema violation of `sarif`.
fn assert_valid_sarif(sarif: &Value) {
    let v = schema_validator();
    let errors: Vec<String> = v
        .iter_errors(sarif)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF schema violations:\n{}",
        errors.join("\n")
    );
}

struct Fixture {
    dir: TestDir,
    sim: SimHandle,
    live: String,
    revoked: String,
    lonely: String,
    cid: String,
}

/// A small repository: a live key with its client ID, a revoked one in a path with a space, a
/// key without a client ID; the simulator knows the first two.
fn fixture() -> Fixture {
    let dir = tempdir();
    let cid = client_id("sarif");
    let (live, revoked, lonely) = (key("sarif-live"), key("sarif-revoked"), key("sarif-lonely"));
    let sim = Simulator::spawn(
        SimState::default()
            .with_key(&cid, &live, Behaviour::Live)
            .with_key(&cid, &revoked, Behaviour::Revoked),
    )
    .unwrap();
    write(
        dir.path(),
        ".env",
        format!("# payouts\nAIRWALLEX_CLIENT_ID={cid}\nAIRWALLEX_API_KEY={live}\n"),
    );
    write(
        dir.path(),
        "config/old settings.env",
        format!("AIRWALLEX_CLIENT_ID={cid}\nAIRWALLEX_API_KEY={revoked}\n"),
    );
    write(
        dir.path(),
        "deploy/prod.env",
        format!("AIRWALLEX_API_KEY={lonely}\n"),
    );
    Fixture {
        dir,
        sim,
        live,
        revoked,
        lonely,
        cid,
    }
}

fn sarif_of(fx: &Fixture) -> Value {
    let o = awxguard(fx.dir.path())
        .env("AWXGUARD_AIRWALLEX_URL", fx.sim.url())
        .args(["scan", "--verify", "--format", "sarif", "."])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    json(&o)
}

#[test]
fn sarif_validates_against_the_oasis_schema_and_suits_github() {
    let fx = fixture();
    let sarif = sarif_of(&fx);
    assert_valid_sarif(&sarif);
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(run["tool"]["driver"]["name"], "awxguard");
    for r in rules {
        assert!(!r["shortDescription"]["text"].as_str().unwrap().is_empty());
        assert!(!r["fullDescription"]["text"].as_str().unwrap().is_empty());
        assert!(!r["help"]["text"].as_str().unwrap().is_empty());
        let s: f64 = r["properties"]["security-severity"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..=10.0).contains(&s));
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    // The live key comes first, as an error, with its verification.
    let first = &results[0];
    assert_eq!(first["level"], "error");
    assert_eq!(first["properties"]["verification"], "live");
    assert_eq!(first["properties"]["security-severity"], "9.5");
    for r in results {
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"]);
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.starts_with('/') && !uri.contains(':'), "{uri}");
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        let fp = r["partialFingerprints"]["awxguard/secret/v1"]
            .as_str()
            .unwrap();
        assert!(fp.starts_with("sha256:"), "{fp}");
    }
    let uris: Vec<&str> = results
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(uris.contains(&"config/old%20settings.env"), "{uris:?}");
    assert!(run["originalUriBaseIds"]["%SRCROOT%"].is_object());
}

#[test]
fn sarif_schema_check_rejects_a_broken_log() {
    // The validator is not vacuous: a wrong level and a missing message are caught.
    let fx = fixture();
    let mut sarif = sarif_of(&fx);
    sarif["runs"][0]["results"][0]["level"] = "fatal".into();
    sarif["runs"][0]["results"][1]
        .as_object_mut()
        .unwrap()
        .remove("message");
    let errors = schema_validator().iter_errors(&sarif).count();
    assert!(errors >= 2, "{errors} errors");
}

#[test]
fn sarif_snapshot() {
    let fx = fixture();
    let mut sarif = sarif_of(&fx);
    let driver = &mut sarif["runs"][0]["tool"]["driver"];
    driver["version"] = "[version]".into();
    driver["semanticVersion"] = "[version]".into();
    let base = &mut sarif["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"];
    assert!(base.as_str().unwrap().starts_with("file:///"), "{base}");
    *base = "[root]".into();
    let text = serde_json::to_string_pretty(&sarif).unwrap();
    for k in [&fx.live, &fx.revoked, &fx.lonely] {
        assert_no_secret(&text, k, "SARIF");
    }
    insta::assert_snapshot!("sarif_report", text);
}

#[test]
fn sarif_history_finding_points_at_the_file_and_carries_the_commit() {
    // History scans land on another branch; their findings carry a commit, and SARIF must place
    // them at the file (relative URI) with the commit in the message and properties.
    let k = key("sarif-history");
    let fp = fingerprint(&k);
    let mut f = Finding::new(
        "leak.airwallex.api-key",
        Severity::High,
        "Airwallex API key in deploy/app.env",
        &["deploy/app.env", &fp],
    );
    f.path = Some("deploy/app.env".into());
    f.line = Some(4);
    f.column = Some(19);
    f.secret = Some(SecretRef {
        preview: awxguard::secret::preview(&k),
        fingerprint: fp.clone(),
        client_id: None,
    });
    f.commit = Some(Commit {
        id: "0123456789abcdef0123456789abcdef01234567".into(),
        author: "Dev <dev@example.com>".into(),
        date: "2026-11-20T10:00:00Z".into(),
        also: vec![],
    });
    let report = Report::new("scan", vec![f]);
    let mut out = Vec::new();
    render(&report, Format::Sarif, Style { color: false }, &mut out).unwrap();
    let sarif: Value = serde_json::from_slice(&out).unwrap();
    assert_valid_sarif(&sarif);
    let r = &sarif["runs"][0]["results"][0];
    let loc = &r["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "deploy/app.env");
    assert_eq!(loc["region"]["startLine"], 4);
    assert_eq!(
        r["properties"]["commit"]["id"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert!(r["message"]["text"]
        .as_str()
        .unwrap()
        .contains("introduced in commit 0123456789abcdef"));
    assert_eq!(
        r["partialFingerprints"]["awxguard/secret/v1"],
        format!("{fp}:deploy/app.env")
    );
    // Rules come from the built-in leak rules when the report carries none.
    assert_eq!(
        sarif["runs"][0]["tool"]["driver"]["rules"][0]["shortDescription"]["text"],
        "Airwallex API key"
    );
    assert_no_secret(&String::from_utf8(out).unwrap(), &k, "SARIF");
}

#[test]
fn sarif_describes_rules_of_other_capabilities_and_findings_without_a_file() {
    // Audit and usage findings name a key, not a file: still a valid log, with a rule entry.
    let mut f = Finding::new(
        "privilege.admin-key",
        Severity::Medium,
        "payouts uses an admin key",
        &["payouts"],
    );
    f.key = Some("payouts".into());
    let report = Report::new("audit", vec![f]);
    let mut out = Vec::new();
    render(&report, Format::Sarif, Style { color: false }, &mut out).unwrap();
    let sarif: Value = serde_json::from_slice(&out).unwrap();
    assert_valid_sarif(&sarif);
    let rule = &sarif["runs"][0]["tool"]["driver"]["rules"][0];
    assert_eq!(rule["id"], "privilege.admin-key");
    assert_eq!(rule["properties"]["security-severity"], "5.5");
    let r = &sarif["runs"][0]["results"][0];
    assert_eq!(r["level"], "warning");
    assert_eq!(r["properties"]["key"], "payouts");
    assert!(r.get("locations").is_none());
}

fn assert_clean(text: &str, fx: &Fixture, what: &str) {
    for k in [&fx.live, &fx.revoked, &fx.lonely] {
        assert_no_secret(text, k, what);
    }
    assert!(
        !text.contains(&fx.cid),
        "{what} holds the client ID in clear"
    );
}

#[test]
fn secret_never_appears_in_any_format_log_report_file_or_baseline() {
    let fx = fixture();
    let out = tempdir();
    for format in ["human", "json", "sarif"] {
        let report = out.path().join(format!("report.{format}"));
        let baseline = out.path().join(format!("baseline-{format}.json"));
        let o = awxguard(fx.dir.path())
            .env("AWXGUARD_AIRWALLEX_URL", fx.sim.url())
            .args(["-vv", "scan", "--verify", "--format", format])
            .arg("--write-baseline")
            .arg(&baseline)
            .arg(".")
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(!stdout(&o).is_empty());
        assert!(stderr(&o).contains("verifying keys by login"), "-vv logs");
        assert_clean(&stdout(&o), &fx, &format!("{format} report"));
        assert_clean(&stderr(&o), &fx, &format!("{format} stderr (-vv)"));
        assert_clean(
            &std::fs::read_to_string(&baseline).unwrap(),
            &fx,
            "baseline file",
        );
        let o = awxguard(fx.dir.path())
            .env("AWXGUARD_AIRWALLEX_URL", fx.sim.url())
            .args(["-vv", "scan", "--verify", "--format", format, "-o"])
            .arg(&report)
            .arg("--baseline")
            .arg(&baseline)
            .arg(".")
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_clean(
            &std::fs::read_to_string(&report).unwrap(),
            &fx,
            &format!("{format} report file"),
        );
        assert_clean(&stderr(&o), &fx, &format!("{format} stderr"));
    }
    // The simulator only ever saw fingerprints, and only from the scans above.
    let log = serde_json::to_string(&fx.sim.requests()).unwrap();
    assert_no_secret(&log, &fx.live, "simulator log");
}
