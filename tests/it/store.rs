//! The database's ordered migrations: a database made by an older awxguard opens, is upgraded to
//! this build's schema, and keeps its findings, acknowledgements and runs; an empty file gets
//! every step; a newer database is refused (unit test in `src/store`).
//!
//! `data/awxguard-v1.db` was made by awxguard at commit 52bbab6 (schema version 1, before ordered
//! migrations), in a directory holding `app/.env` with a client ID and `key("fixture-v1-leaked")`
//! and an `awxguard.toml` declaring `payvy-ap` (admin, `env:FIXTURE_PAYVY_KEY` =
//! `key("fixture-v1-declared")`):
//!
//! ```sh
//! AWXGUARD_NOW=2026-11-24T12:00:00Z awxguard scan --record app
//! AWXGUARD_NOW=2026-11-24T12:00:00Z awxguard audit --no-verify
//! awxguard findings ack 4169f8aff0c1ceb6 --reason "egress IPs change weekly; tracked in SEC-12" \
//!     --by sec-team --expires 2030-01-01
//! # owner and purpose added to the key, then a day later:
//! AWXGUARD_NOW=2026-11-25T12:00:00Z awxguard audit --no-verify
//! AWXGUARD_NOW=2026-11-25T12:00:00Z awxguard scan --record app
//! ```
//!
//! It holds fingerprints and previews only, never a key.

use crate::common::*;
use awxguard::finding::Status;
use awxguard::store::{Findings, Lifecycle, Runs};
use awxguard::store::{SqliteStore, SCHEMA_VERSION};
use std::path::{Path, PathBuf};

/// A copy of a fixture database in `dir` (opening upgrades it in place).
fn fixture_copy(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/data")
        .join(name);
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    dst
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
        .unwrap()
        .to_utc()
}

#[test]
fn a_version_1_database_is_upgraded_and_keeps_its_findings_acks_and_runs() {
    let d = tempdir();
    let db = fixture_copy(d.path(), "awxguard-v1.db");
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let mut found: Vec<(String, String, Status)> = store
        .list(None, now())
        .unwrap()
        .into_iter()
        .map(|s| (s.finding.rule, s.finding.id, s.finding.status.unwrap()))
        .collect();
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        found,
        [
            (
                "leak.airwallex.api-key".into(),
                "ceb5178075311c8b".into(),
                Status::Open
            ),
            (
                "privilege.admin-key".into(),
                "2e25e9d7a0839269".into(),
                Status::Open
            ),
            (
                "privilege.missing-owner".into(),
                "ed0df80bbd3b71fb".into(),
                Status::Resolved
            ),
            (
                "privilege.no-ip-whitelist".into(),
                "4169f8aff0c1ceb6".into(),
                Status::Acknowledged
            ),
            (
                "privilege.not-judged".into(),
                "c0d18d4d3cd96d7f".into(),
                Status::Open
            ),
        ]
    );
    let leak = store
        .list(None, now())
        .unwrap()
        .into_iter()
        .find(|s| s.finding.rule == "leak.airwallex.api-key")
        .unwrap();
    assert_eq!(
        leak.finding.secret.unwrap().fingerprint,
        fingerprint(&key("fixture-v1-leaked"))
    );
    let runs = store.runs(None).unwrap();
    let shape: Vec<(bool, u64, u64, u64)> = runs
        .iter()
        .map(|r| (r.scope == "audit", r.findings, r.new, r.resolved))
        .collect();
    assert_eq!(
        shape,
        [
            (false, 1, 1, 0),
            (true, 4, 4, 0),
            (true, 3, 0, 1),
            (false, 1, 0, 0)
        ]
    );
    // The acknowledgement still suppresses its finding when the next audit reports it.
    let mut again = vec![awxguard::finding::Finding::new(
        "privilege.no-ip-whitelist",
        awxguard::finding::Severity::Medium,
        "no whitelist",
        &["payvy-ap"],
    )];
    assert_eq!(again[0].id, "4169f8aff0c1ceb6");
    let recorded = store.record("audit", &mut again, now()).unwrap();
    assert_eq!(again[0].status, Some(Status::Acknowledged));
    assert_eq!(
        recorded.summary.resolved, 2,
        "admin-key and not-judged are gone"
    );
}

#[test]
fn the_binary_reads_an_upgraded_database_and_an_empty_file() {
    let d = tempdir();
    let db = fixture_copy(d.path(), "awxguard-v1.db");
    let o = awxguard(d.path())
        .env("AWXGUARD_DB", &db)
        .args([
            "findings",
            "list",
            "--format",
            "json",
            "--status",
            "acknowledged",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["findings"][0]["id"], "4169f8aff0c1ceb6");
    let empty = d.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let o = awxguard(d.path())
        .env("AWXGUARD_DB", &empty)
        .args(["findings", "list", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["summary"]["findings"], 0);
    let store = SqliteStore::open(&empty).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn store_path_comes_from_the_config_unless_db_is_given() {
    let d = tempdir();
    write(
        d.path(),
        "awxguard.toml",
        "[store]\npath = \"state/findings.db\"\n",
    );
    write(d.path(), "src/readme.txt", "nothing\n");
    // Listing reads: nothing is created, and a path without a database is said (issue 16).
    let o = awxguard(d.path())
        .env_remove("AWXGUARD_DB")
        .args(["findings", "list"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("state/findings.db: no database there"),
        "{}",
        stderr(&o)
    );
    assert!(!d.path().join("state").exists());
    // A path the user chose must be in a directory that exists (issue 17).
    let record = |extra: &[&str]| {
        awxguard(d.path())
            .env_remove("AWXGUARD_DB")
            .args(extra)
            .args(["scan", "src", "--record"])
            .output()
            .unwrap()
    };
    let o = record(&[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("state: the directory for the database does not exist"));
    std::fs::create_dir(d.path().join("state")).unwrap();
    assert_eq!(code(&record(&[])), 0);
    assert!(d.path().join("state/findings.db").exists());
    let o = awxguard(d.path())
        .env_remove("AWXGUARD_DB")
        .args(["findings", "list"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(code(&record(&["--db", "other.db"])), 0);
    assert!(d.path().join("other.db").exists());
}

/// Issue 16: a read-only command refuses a database path where there is none (a mistyped
/// `--db`) instead of creating an empty database there and saying "no findings".
#[test]
fn a_mistyped_db_for_a_read_only_command_is_refused() {
    let d = tempdir();
    std::fs::create_dir_all(d.path().join("empty")).unwrap();
    let o = awxguard(d.path())
        .args(["--db", "findings.db", "scan", "--record", "empty"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for args in [
        &["findings", "list"][..],
        &["findings", "ack", "0011", "--reason", "x"],
        &["findings", "unack", "0011"],
    ] {
        let o = awxguard(d.path())
            .args(["--db", "findngs.db"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{args:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains("findngs.db: no database there"), "{err}");
        assert!(err.contains("--db"), "{err}");
        assert!(!d.path().join("findngs.db").exists(), "{args:?} created it");
    }
    // the right path still lists
    let o = awxguard(d.path())
        .args(["--db", "findings.db", "findings", "list"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
