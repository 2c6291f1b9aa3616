//! `awxguard findings`: the stored lifecycle and acknowledgements, through the binary, on a real
//! SQLite file.

use crate::common::*;
use awxguard::finding::{Finding, Severity};
use awxguard::store::Store;

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
    let mut store = Store::open(&dir.join(".awxguard-test.db")).unwrap();
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
