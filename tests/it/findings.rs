//! `awxguard findings`: the stored lifecycle and acknowledgements, through the binary, on a real
//! SQLite file.

use crate::common::*;
use awxguard::finding::{Finding, Severity};

fn seed(dir: &std::path::Path) -> Vec<Finding> {
    let mut findings = vec![
        Finding::new(
            "privilege.admin-key",
            Severity::Critical,
            "admin key in use",
            &["payvy"],
        ),
        Finding::new(
            "privilege.missing-owner",
            Severity::Low,
            "no owner",
            &["reports"],
        ),
    ];
    let store = awxguard::store::open(&db_target(dir)).unwrap();
    store
        .record("audit", &mut findings, chrono::Utc::now())
        .unwrap();
    findings
}

#[test]
fn list_ack_and_unack() {
    let d = tempdir();
    let findings = seed(d.path());
    let o = run(d.path(), &["findings", "list", "--format", "json"]);
    assert_eq!(
        code(&o),
        1,
        "open findings fail the listing: {}",
        stderr(&o)
    );
    let j = json(&o);
    assert_eq!(j["findings"].as_array().unwrap().len(), 2);
    assert_eq!(j["findings"][0]["status"], "new");
    assert_eq!(j["findings"][0]["rule"], "privilege.admin-key");

    let admin = &findings[0].id;
    let o = run(
        d.path(),
        &[
            "findings",
            "ack",
            &admin[..8],
            "--reason",
            "break-glass key, reviewed",
            "--expires",
            "30d",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains(admin.as_str()), "{}", stderr(&o));

    let o = run(
        d.path(),
        &[
            "findings",
            "list",
            "--format",
            "json",
            "--status",
            "acknowledged",
        ],
    );
    let j = json(&o);
    assert_eq!(j["findings"].as_array().unwrap().len(), 1);
    assert_eq!(j["findings"][0]["id"], admin.as_str());
    assert_eq!(code(&o), 0, "acknowledged findings do not fail a run");

    // The low finding still fails at the default threshold, not at --fail-on high.
    let o = run(d.path(), &["findings", "list", "--fail-on", "high"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("status: acknowledged"),
        "{}",
        stdout(&o)
    );

    let o = run(d.path(), &["findings", "unack", admin]);
    assert_eq!(code(&o), 0);
    let o = run(d.path(), &["findings", "list", "--fail-on", "high"]);
    assert_eq!(code(&o), 1);
}

#[test]
fn ack_errors_are_clear() {
    let d = tempdir();
    seed(d.path());
    let o = run(d.path(), &["findings", "ack", "ffffffff", "--reason", "x"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("no finding with id \"ffffffff\""),
        "{}",
        stderr(&o)
    );
    let o = run(d.path(), &["findings", "ack", "", "--reason", "x"]);
    assert_eq!(code(&o), 2, "an empty prefix matches both: ambiguous");
    let o = run(
        d.path(),
        &["findings", "ack", "0", "--reason", "x", "--expires", "soon"],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--expires"), "{}", stderr(&o));
}

#[test]
fn scan_record_tracks_a_leak_from_new_to_resolved_and_the_audit_links_it() {
    let d = tempdir();
    let repo = d.path().join("repo");
    let k = key("recorded-leak");
    write(&repo, ".env", format!("AIRWALLEX_API_KEY={k}\n"));
    let o = run(d.path(), &["scan", "--record", "--format", "json", "repo"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["findings"][0]["status"], "new");
    let o = run(d.path(), &["scan", "--record", "--format", "json", "repo"]);
    assert_eq!(json(&o)["findings"][0]["status"], "open");
    // Another target does not resolve it.
    std::fs::create_dir_all(d.path().join("other")).unwrap();
    let o = run(d.path(), &["scan", "--record", "other"]);
    assert_eq!(code(&o), 0);
    let o = run(
        d.path(),
        &["findings", "list", "--format", "json", "--status", "open"],
    );
    assert_eq!(json(&o)["findings"].as_array().unwrap().len(), 1);
    // Acknowledged: still reported, no longer fails the scan.
    let id = json(&o)["findings"][0]["id"].as_str().unwrap().to_string();
    let o = run(
        d.path(),
        &[
            "findings",
            "ack",
            &id,
            "--reason",
            "test fixture",
            "--expires",
            "7d",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(d.path(), &["scan", "--record", "--format", "json", "repo"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert_eq!(json(&o)["findings"][0]["status"], "acknowledged");
    // Fixed: resolved, reported in the summary.
    std::fs::remove_file(repo.join(".env")).unwrap();
    let o = run(d.path(), &["scan", "--record", "--format", "json", "repo"]);
    assert_eq!(code(&o), 0);
    let j = json(&o);
    assert_eq!(j["summary"]["resolved"][0]["id"], id.as_str());
    assert_eq!(j["summary"]["resolved"][0]["status"], "resolved");
    // Without --record nothing is written.
    let o = run(d.path(), &["findings", "list", "--format", "json"]);
    assert_eq!(json(&o)["findings"].as_array().unwrap().len(), 1);
    let db = db_contents(d.path());
    assert_no_secret(&String::from_utf8_lossy(&db), &k, "database");
}

/// Issue 16: the listing shows each finding's short id and, for an acknowledged one, why, by
/// whom, since when and until when (JSON: `summary.acknowledgements`).
#[test]
fn acknowledgement_details_and_short_ids_are_shown() {
    let d = tempdir();
    let findings = seed(d.path());
    let admin = &findings[0].id;
    let o = run(
        d.path(),
        &[
            "findings",
            "ack",
            &admin[..8],
            "--reason",
            "break-glass key, reviewed in SEC-12",
            "--by",
            "sec-team",
            "--expires",
            "2026-12-24",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(d.path(), &["findings", "list"]);
    let text = stdout(&o);
    assert!(
        text.contains(&format!("id {}  |  status: acknowledged", &admin[..8])),
        "{text}"
    );
    assert!(
        text.contains(
            "acknowledged by sec-team on 2026-11-24 until 2026-12-24: break-glass key, reviewed \
             in SEC-12"
        ),
        "{text}"
    );
    let low = &findings[1].id;
    assert!(
        text.contains(&format!("id {}  |  status: new", &low[..8])),
        "{text}"
    );
    let o = run(d.path(), &["findings", "list", "--format", "json"]);
    let j = json(&o);
    let acks = j["summary"]["acknowledgements"].as_array().unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["finding_id"], admin.as_str());
    assert_eq!(acks[0]["by"], "sec-team");
    assert_eq!(acks[0]["reason"], "break-glass key, reviewed in SEC-12");
    assert_eq!(acks[0]["expires_at"], "2026-12-24T00:00:00Z");
    assert_eq!(acks[0]["origin"], "person");
    // An expired acknowledgement is shown as such, and no longer suppresses.
    let o = awxguard(d.path())
        .env("AWXGUARD_NOW", "2027-01-05T00:00:00Z")
        .args(["findings", "list"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("acknowledgement by sec-team on 2026-11-24 expired 2026-12-24"),
        "{}",
        stdout(&o)
    );
}
