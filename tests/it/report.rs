//! `awxguard report` over a store built through the library's own store calls (the same calls
//! the scan, audit, proxy and watch make): the JSON model, the human text (snapshots), the blast
//! radius timeline of a leaked key, `--key`, `--since`, and no key anywhere in any format.
//! The HTML page in a real browser: `report_browser.rs`.

use crate::common::*;
use awxguard::finding::{
    Action, Commit, Finding, Recommendation, SecretRef, Severity, Verification,
};
use awxguard::store::proxy::ObjectSighting;
use awxguard::store::{KeyRecord, UsageEvent, WatchObject};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The pinned clock of `common::awxguard`.
pub const NOW: &str = "2026-11-24T12:00:00Z";

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

pub fn payvy_key() -> String {
    key("report-payvy")
}

pub fn admin_key() -> String {
    key("report-legacy-admin")
}

/// The commit that leaked payvy-ap's key, and when.
pub const LEAK_COMMIT: &str = "4be1c0ffee5d2a9f8c7b6a5d4e3f2a1b0c9d8e7f";
pub const LEAK_DATE: &str = "2026-11-18T09:30:00+00:00";
/// The network the leaked key was used from after the leak.
pub const NEW_NETWORK: &str = "198.51.100.0/24";

/// A database and config telling the story: payvy-ap (custom, payee-and-pay) committed to a
/// repository on 2026-11-18, then used through the proxy from a network it never used, to
/// create a beneficiary and pay it at once (the watch saw both); legacy-admin, an admin key;
/// reporting, read-only, with a finding resolved since. Returns the directory's database.
pub fn scenario(dir: &Path) -> PathBuf {
    write(
        dir,
        "awxguard.toml",
        format!(
            r#"[[key]]
name = "payvy-ap"
client_id = "{}"
api_key = "env:PAYVY_KEY"
environment = "production"
kind = "custom"
scopes = ["transfer:write", "beneficiary:write", "balance:read"]
owner = "finance-platform@example.com"
integration = "Payvy accounts payable"
created = 2025-09-15
rotated = 2026-06-01
ip_whitelist = ["203.0.113.0/24"]

[[key]]
name = "legacy-admin"
client_id = "{}"
api_key = "env:ADMIN_KEY"
environment = "production"
kind = "admin"
created = 2024-03-01

[[key]]
name = "reporting"
client_id = "{}"
api_key = "env:REPORTING_KEY"
environment = "production"
kind = "read_only"
owner = "data-team@example.com"
created = 2026-02-01

[watch]
key = "reporting"
"#,
            client_id("payvy"),
            client_id("admin"),
            client_id("reporting")
        ),
    );
    let store = awxguard::store::open(&db_target(dir)).unwrap();
    let payvy_fp = fingerprint(&payvy_key());
    let admin_fp = fingerprint(&admin_key());

    // The scan of the repository's history (recorded two days after the commit).
    let mut leak = Finding::new(
        "leak.airwallex.api-key",
        Severity::Critical,
        "Airwallex API key in config/airwallex.yml",
        &["config/airwallex.yml", &payvy_fp],
    );
    leak.path = Some("config/airwallex.yml".into());
    leak.line = Some(3);
    leak.column = Some(12);
    leak.commit = Some(Commit {
        id: LEAK_COMMIT.into(),
        author: "Dana Developer <dana@example.com>".into(),
        date: LEAK_DATE.into(),
        also: Vec::new(),
    });
    leak.secret = Some(SecretRef {
        preview: awxguard::secret::preview(&payvy_key()),
        fingerprint: payvy_fp.clone(),
        client_id: None,
    });
    leak.verification = Some(Verification::Live);
    store
        .record(
            "scan:git:/srv/payments-service",
            &mut [leak],
            t("2026-11-20T08:00:00Z"),
        )
        .unwrap();

    // Audits: a stale finding on reporting resolved by the second one; a leaked payvy-ap, an
    // admin key.
    let mut stale = Finding::new(
        "privilege.never-rotated",
        Severity::Low,
        "reporting was never rotated",
        &["reporting"],
    );
    stale.key = Some("reporting".into());
    store
        .record("audit", &mut [stale], t("2026-11-10T06:00:00Z"))
        .unwrap();
    let mut leaked = Finding::new(
        "privilege.key-leaked",
        Severity::Critical,
        "payvy-ap is in clear text in 1 place: config/airwallex.yml:3",
        &["payvy-ap", &payvy_fp],
    );
    leaked.key = Some("payvy-ap".into());
    leaked.also = vec!["privilege.payee-and-pay".into()];
    leaked.recommendation = Some(Recommendation {
        action: Action::Revoke,
        steps: vec![
            "Revoke payvy-ap in the Airwallex web app (Settings > Developer > API keys)".into(),
            "Create payvy-ap-2 with the scopes below and deploy it".into(),
        ],
        replacement: Some(json!({
            "name": "payvy-ap-2", "scopes": ["balance:read", "transfer:write"],
            "ip_whitelist": ["203.0.113.0/24"], "environment": "production",
            "basis": "usage evidence: 1200 calls"
        })),
    });
    let mut admin = Finding::new(
        "privilege.admin-key",
        Severity::High,
        "legacy-admin is an admin key: it can do everything",
        &["legacy-admin"],
    );
    admin.key = Some("legacy-admin".into());
    admin.recommendation = Some(Recommendation {
        action: Action::Narrow,
        steps: vec!["Replace legacy-admin with a custom key".into()],
        replacement: None,
    });
    store
        .record("audit", &mut [leaked, admin], t("2026-11-24T06:00:00Z"))
        .unwrap();
    let audit_at = "2026-11-24T06:00:00Z";
    store
        .save_keys(
            "audit",
            &[
                KeyRecord {
                    name: "payvy-ap".into(),
                    fingerprint: Some(payvy_fp.clone()),
                    source: "audit".into(),
                    observed_at: audit_at.into(),
                    row: json!({"name": "payvy-ap", "declared": true, "status": "live",
                        "permissions": ["transfer:write", "beneficiary:write", "balance:read"],
                        "effective": "transfer:write, beneficiary:write, balance:read",
                        "fingerprint": payvy_fp, "storage": {"source": "env"}}),
                },
                KeyRecord {
                    name: "legacy-admin".into(),
                    fingerprint: Some(admin_fp.clone()),
                    source: "audit".into(),
                    observed_at: audit_at.into(),
                    row: json!({"name": "legacy-admin", "declared": true, "status": "live",
                        "permissions": ["r:awx:*:*", "w:awx:*:*"],
                        "effective": "every scope (admin)", "fingerprint": admin_fp}),
                },
            ],
        )
        .unwrap();

    // The proxy's record: a week of payvy-ap from its usual network, then the incident.
    let mut events = Vec::new();
    let mut objects = Vec::new();
    let mut n = 0;
    let mut ev = |ts: DateTime<Utc>,
                  method: &str,
                  path: &str,
                  status: u16,
                  ip: &str,
                  ua: &str,
                  ids: &[&str]| {
        n += 1;
        let ts_s = ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        events.push(UsageEvent {
            ts,
            key: "payvy-ap".into(),
            method: method.into(),
            path: path.into(),
            status,
            source_ip: Some(ip.into()),
            user_agent: Some(ua.into()),
            account_id: None,
            latency_ms: Some(n as f64),
            host: None,
            via: Some("proxy".into()),
            object_ids: ids.iter().map(|s| s.to_string()).collect(),
        });
        for id in ids {
            objects.push(ObjectSighting {
                object_id: id.to_string(),
                ts: ts_s.clone(),
                key: "payvy-ap".into(),
                method: method.into(),
                path: path.into(),
            });
        }
    };
    let start = t("2026-11-14T00:00:00Z");
    for h in 0..(10 * 24) {
        let at = start + Duration::hours(h);
        let hour = h % 24;
        // Office hours and a nightly batch at 02:00.
        let calls = match hour {
            2 => 12,
            8..=17 => 1 + (h % 3),
            _ => 0,
        };
        for c in 0..calls {
            let when = at + Duration::minutes(c * 4);
            if when > t(NOW) {
                break;
            }
            ev(
                when,
                "GET",
                "/api/v1/balances/current",
                200,
                "10.1.0.5",
                "payvy-worker/3.2",
                &[],
            );
        }
        if hour == 10 && h / 24 == 7 {
            ev(
                at + Duration::minutes(30),
                "POST",
                "/api/v1/transfers/create",
                201,
                "10.1.0.5",
                "payvy-worker/3.2",
                &["tr_usual"],
            );
        }
    }
    let incident = t("2026-11-22T03:10:00Z");
    for i in 0..3 {
        ev(
            incident - Duration::minutes(5) + Duration::seconds(i),
            "GET",
            "/api/v1/balances/current",
            if i == 0 { 403 } else { 200 },
            "198.51.100.23",
            "python-requests/2.31",
            &[],
        );
    }
    ev(
        incident,
        "POST",
        "/api/v1/beneficiaries/create",
        201,
        "198.51.100.23",
        "python-requests/2.31",
        &["ben_evil"],
    );
    ev(
        incident + Duration::minutes(4),
        "POST",
        "/api/v1/transfers/create",
        201,
        "198.51.100.23",
        "python-requests/2.31",
        &["tr_evil"],
    );
    store
        .append_usage(&events, awxguard::airwallex::Catalog::builtin_ref(), None)
        .unwrap();
    store.append_object_sightings(&objects).unwrap();

    // The watch saw the payee created and paid at once, and the integration's usual payout.
    let obj = |kind: &str, id: &str, at: DateTime<Utc>, data: Value| WatchObject {
        kind: kind.into(),
        id: id.into(),
        version: format!("v-{id}"),
        at,
        changed_at: None,
        data,
    };
    store
        .watch_save_page(
            "reporting",
            "beneficiaries",
            &[
                obj("beneficiary", "ben_old", t("2026-01-05T10:00:00Z"),
                    json!({"id": "ben_old", "created_at": "2026-01-05T10:00:00Z", "name": "Acme Supplies", "country": "GB", "currency": "GBP", "account": "…4411", "bank": "sha256:1111222233334444"})),
                obj("beneficiary", "ben_evil", incident,
                    json!({"id": "ben_evil", "created_at": "2026-11-22T03:10:00Z", "name": "Quick Trading Ltd", "country": "LT", "currency": "EUR", "account": "…9031", "bank": "sha256:5555666677778888"})),
            ],
            None,
            t("2026-11-22T04:00:00Z"),
        )
        .unwrap();
    store
        .watch_save_page(
            "reporting",
            "transfers",
            &[
                obj("transfer", "tr_usual", t("2026-11-21T10:30:00Z"),
                    json!({"id": "tr_usual", "beneficiary_id": "ben_old", "amount": 1250.0, "currency": "GBP", "created_at": "2026-11-21T10:30:00Z", "status": "PAID"})),
                obj("transfer", "tr_evil", incident + Duration::minutes(4),
                    json!({"id": "tr_evil", "beneficiary_id": "ben_evil", "amount": 9500.0, "currency": "EUR", "created_at": "2026-11-22T03:14:00Z", "status": "SCHEDULED"})),
            ],
            None,
            t("2026-11-22T04:00:00Z"),
        )
        .unwrap();
    let mut paid = Finding::new(
        "watch.new-payee-paid",
        Severity::Critical,
        "tr_evil paid 9,500.00 EUR to Quick Trading Ltd (ben_evil), created 4 minutes before — critical because payvy-ap is leaked",
        &["reporting", "tr_evil"],
    );
    paid.key = Some("payvy-ap".into());
    paid.start = Some("2026-11-22T03:10:00Z".into());
    paid.end = Some("2026-11-22T03:14:00Z".into());
    paid.evidence = Some(json!({
        "transfer": {"id": "tr_evil", "beneficiary_id": "ben_evil", "amount": 9500.0, "currency": "EUR"},
        "beneficiary": {"id": "ben_evil", "name": "Quick Trading Ltd", "country": "LT"},
        "paid_after_seconds": 240,
        "made_by": [{"who": "payvy-ap (proxied POST /api/v1/transfers/create)"}]
    }));
    paid.recommendation = Some(Recommendation {
        action: Action::Investigate,
        steps: vec!["Cancel tr_evil if you did not make it".into()],
        replacement: None,
    });
    store
        .record("watch:reporting", &mut [paid], t("2026-11-22T04:00:00Z"))
        .unwrap();
    db_target(dir)
}

/// The report of `dir`'s scenario.
pub fn report(dir: &Path, args: &[&str]) -> std::process::Output {
    awxguard(dir)
        .args(["--config", "awxguard.toml", "report"])
        .args(args)
        .output()
        .unwrap()
}

fn no_key_in(text: &str, what: &str) {
    assert_no_secret(text, &payvy_key(), what);
    assert_no_secret(text, &admin_key(), what);
}

/// Paths of the temporary directory vary: the snapshots hold none.
fn stable(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "[dir]")
}

#[test]
fn json_is_the_model_and_its_snapshot_holds() {
    let d = tempdir();
    scenario(d.path());
    let o = report(d.path(), &["--format", "json"]);
    assert_eq!(
        code(&o),
        1,
        "open findings at or above low: exit 1\n{}",
        stderr(&o)
    );
    no_key_in(&stdout(&o), "json report");
    let v = json(&o);
    assert_eq!(
        (v["version"].as_u64(), v["kind"].as_str()),
        (Some(1), Some("state"))
    );
    // Keys by risk: the leaked one first.
    let risk: Vec<&str> = v["overview"]["keys_by_risk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(risk, ["payvy-ap", "legacy-admin", "reporting"]);
    assert_eq!(
        v["overview"]["resolved_since"][0]["rule"],
        "privilege.never-rotated"
    );
    // The hourly series are checked point by point in the browser test; here, their shape.
    let mut v = v;
    for k in v["keys"].as_array_mut().unwrap() {
        if let Some(hours) = k["usage"]["hours"].as_array() {
            let calls: u64 = hours.iter().map(|h| h["calls"].as_u64().unwrap()).sum();
            let first = hours[0]["at"].clone();
            k["usage"]["hours"] = json!({"hours": hours.len(), "calls": calls, "first": first});
        }
    }
    insta::assert_json_snapshot!("report_json", v);
}

#[test]
fn human_text_snapshot() {
    let d = tempdir();
    scenario(d.path());
    let o = report(d.path(), &["--format", "human"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = stdout(&o);
    no_key_in(&out, "human report");
    insta::assert_snapshot!("report_human", stable(&out, d.path()));
}

/// Issue 14: a key committed on a date, then used from a new network and to create and pay a
/// beneficiary after that date, appears in order with the ids.
#[test]
fn blast_radius_timeline_runs_from_the_commit_to_the_payment_in_order() {
    let d = tempdir();
    scenario(d.path());
    let o = report(d.path(), &["--format", "json", "--key", "payvy-ap"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(
        v["keys"].as_array().unwrap().len(),
        1,
        "--key keeps one key"
    );
    let b = &v["blast_radius"][0];
    assert_eq!(b["key"], "payvy-ap");
    assert_eq!(b["exposure"]["at"], "2026-11-18T09:30:00Z");
    assert_eq!(b["exposure"]["commit"]["id"], LEAK_COMMIT);
    assert_eq!(b["exposure"]["days"], 6);
    assert_eq!(b["live"]["status"], "live");
    let tl = b["timeline"].as_array().unwrap();
    let times: Vec<&str> = tl.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");
    let pos = |pred: &dyn Fn(&Value) -> bool, what: &str| {
        tl.iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no {what} in the timeline: {tl:#?}"))
    };
    let has_id = |e: &Value, id: &str| e["ids"].as_array().unwrap().iter().any(|i| i == id);
    let exposed = pos(
        &|e| e["kind"] == "exposed" && has_id(e, &LEAK_COMMIT[..12]),
        "exposure",
    );
    let network = pos(
        &|e| e["kind"] == "calls" && e["title"].as_str().unwrap().contains(NEW_NETWORK),
        "calls from the new network",
    );
    let payee = pos(
        &|e| e["kind"] == "beneficiary" && has_id(e, "ben_evil"),
        "beneficiary",
    );
    let payment = pos(
        &|e| e["kind"] == "transfer" && has_id(e, "tr_evil"),
        "transfer",
    );
    assert!(
        exposed < network && network < payee && payee < payment,
        "{tl:#?}"
    );
    assert_eq!(exposed, 0, "the exposure comes first");
    assert_eq!(tl[network]["attention"], true);
    assert!(tl[network]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == "ben_evil"));
    assert!(
        tl[payee]["made_by"]
            .as_str()
            .unwrap()
            .contains("from a new network"),
        "{}",
        tl[payee]
    );
    // The usual payout through the proxy from the usual network is the integration's.
    let usual = pos(
        &|e| has_id(e, "tr_usual") && e["kind"] == "transfer",
        "usual payout",
    );
    assert_eq!(tl[usual]["attention"], false);
    // The watch's finding is in it, with its id.
    pos(
        &|e| {
            e["title"]
                .as_str()
                .unwrap()
                .starts_with("watch.new-payee-paid")
        },
        "the watch finding",
    );
    // What to do, in order, naming the transfer to check.
    let steps: Vec<&str> = b["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["revoke", "check-transfers", "rotate", "clean-history"]
    );
    let check = &b["steps"][1];
    assert!(check["ids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == "tr_evil"));
    assert!(!check["ids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == "tr_usual"));
    assert!(b["steps"][2]["text"]
        .as_str()
        .unwrap()
        .contains("payvy-ap-2"));
    assert!(b["steps"][3]["text"]
        .as_str()
        .unwrap()
        .contains("config/airwallex.yml"));

    // The same story in text.
    let o = report(d.path(), &["--key", "payvy-ap"]);
    let out = stdout(&o);
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} not in\n{out}"));
    assert!(at("payvy-ap exposed") < at(NEW_NETWORK));
    assert!(at(NEW_NETWORK) < at("Beneficiary ben_evil created"));
    assert!(at("Beneficiary ben_evil created") < at("Transfer tr_evil"));
}

#[test]
fn since_and_unknown_keys_and_every_format_without_a_key() {
    let d = tempdir();
    scenario(d.path());
    // Since after the audit that resolved it, the stale finding is not "resolved since".
    let o = report(
        d.path(),
        &["--format", "json", "--since", "2026-11-24T07:00:00Z"],
    );
    let v = json(&o);
    assert_eq!(v["overview"]["resolved_since"].as_array().unwrap().len(), 0);
    let o = report(d.path(), &["--format", "json", "--since", "30d"]);
    assert_eq!(json(&o)["since"], "2026-10-25T12:00:00Z");
    let o = report(d.path(), &["--since", "last week"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--since"), "{}", stderr(&o));
    let o = report(d.path(), &["--key", "nobody"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("payvy-ap, legacy-admin, reporting"),
        "{}",
        stderr(&o)
    );
    for format in ["human", "json", "html", "sarif"] {
        let o = report(d.path(), &["--format", format]);
        assert_eq!(code(&o), 1, "{format}: {}", stderr(&o));
        no_key_in(&stdout(&o), format);
        no_key_in(&stderr(&o), format);
    }
    // --fail-on critical with critical findings open: still 1.
    // The report only reads: a path with no database is refused (a mistyped --db must not
    // read as "nothing found", issue 16) and none is created for it.
    let e = tempdir();
    write(e.path(), "awxguard.toml", "");
    let o = report(e.path(), &["--format", "json"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no database there"), "{}", stderr(&o));
    assert!(!e.path().join(".awxguard-test.db").exists());
    // An empty store: 0, and the report records no run.
    drop(awxguard::store::open(&db_target(e.path())).unwrap());
    let o = report(e.path(), &["--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let store = awxguard::store::open(&db_target(d.path())).unwrap();
    let runs = store.runs(None).unwrap().len();
    report(d.path(), &["--format", "json"]);
    assert_eq!(store.runs(None).unwrap().len(), runs);
}

#[test]
fn html_is_self_contained_and_holds_the_ids_without_a_key() {
    let d = tempdir();
    scenario(d.path());
    let o = report(d.path(), &["--format", "html", "-o", "report.html"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let html = std::fs::read_to_string(d.path().join("report.html")).unwrap();
    no_key_in(&html, "html report");
    let lower = html.to_lowercase();
    for banned in ["<script", "https://", "src=", "@import", "<link", "<img"] {
        assert!(!lower.contains(banned), "{banned} in the HTML report");
    }
    // The only http:// is the SVG namespace.
    let external = lower
        .match_indices("http://")
        .filter(|(i, _)| !lower[*i..].starts_with("http://www.w3.org/2000/svg"))
        .count();
    assert_eq!(external, 0, "an external reference in the HTML");
    let v = json(&report(d.path(), &["--format", "json"]));
    for f in v["findings"].as_array().unwrap() {
        let id = f["id"].as_str().unwrap();
        assert!(html.contains(id), "finding {id} not in the HTML");
    }
    for id in ["ben_evil", "tr_evil", &LEAK_COMMIT[..12]] {
        assert!(html.contains(id), "{id} not in the HTML");
    }
    assert!(html.contains("@page { size: A4;"), "A4 by default");
    let o = report(d.path(), &["--format", "html", "--paper", "letter"]);
    assert!(stdout(&o).contains("@page { size: letter;"));
    // Any command's findings as HTML too.
    let o = run(d.path(), &["--format", "html", "findings", "list"]);
    assert!(stdout(&o).starts_with("<!DOCTYPE html>"), "{}", stderr(&o));
}
