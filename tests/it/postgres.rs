//! The PostgreSQL store from the command line: `[store] url` with its credentials behind an
//! `env:` reference, a password written in the config refused, `store migrate` explicit and
//! idempotent, a scan recorded and listed, the watch's state stored. Runs when
//! the tests have a server (`AWXGUARD_TEST_PG_URL`; always in CI).

use crate::common::*;

fn server() -> Option<String> {
    awxguard::store::postgres::test_database("cli")
}

#[test]
fn store_url_by_reference_migrate_record_and_list() {
    let Some(url) = server() else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "awxguard.toml",
        "[store]\nurl = \"env:AWX_TEST_DB_URL\"\n",
    );
    write(
        d,
        "src/a.env",
        format!("AIRWALLEX_API_KEY={}\n", key("pg-cli")),
    );
    let cmd = |args: &[&str]| {
        awxguard(d)
            .env_remove("AWXGUARD_DB")
            .env("AWX_TEST_DB_URL", &url)
            .args(["--config", "awxguard.toml"])
            .args(args)
            .output()
            .unwrap()
    };
    // Nothing there yet: a read-only command says so instead of reading "no findings".
    let o = cmd(&["findings", "list"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no database there"), "{}", stderr(&o));
    let o = cmd(&["store", "migrate"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = awxguard::store::SCHEMA_VERSION;
    assert!(
        stdout(&o).contains(&format!("schema version 0 -> {v}")),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("(postgresql)"), "{}", stdout(&o));
    let o = cmd(&["store", "migrate"]);
    assert!(
        stdout(&o).contains(&format!("schema version {v}, up to date")),
        "{}",
        stdout(&o)
    );
    let o = cmd(&["scan", "src", "--record", "--format", "json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let o = cmd(&["findings", "list", "--format", "json"]);
    assert!(code(&o) <= 1, "{}", stderr(&o));
    let listed = json(&o)["findings"].as_array().unwrap().len();
    assert_eq!(listed, 1, "{}", stdout(&o));
    let store = awxguard::store::open(std::path::Path::new(&url)).unwrap();
    assert_eq!(store.list(None, chrono::Utc::now()).unwrap().len(), 1);
    assert_no_secret(
        &String::from_utf8_lossy(&db_contents_of(&url)),
        &key("pg-cli"),
        "database",
    );
    // The watch's state is on PostgreSQL too: a page and its cursor in one transaction.
    let page = awxguard::store::WatchCursor {
        high_water: Some(chrono::Utc::now()),
        pending: None,
    };
    let obj = awxguard::store::WatchObject {
        kind: "transfer".into(),
        id: "t_1".into(),
        version: "v1".into(),
        at: chrono::Utc::now(),
        changed_at: None,
        data: serde_json::json!({"amount": 5}),
    };
    let seen = store
        .watch_save_page(
            "w",
            "transfers",
            std::slice::from_ref(&obj),
            Some(&page),
            chrono::Utc::now(),
        )
        .unwrap();
    assert_eq!(seen, vec![awxguard::store::Seen::New]);
    let again = store
        .watch_save_page("w", "transfers", &[obj], None, chrono::Utc::now())
        .unwrap();
    assert_eq!(again, vec![awxguard::store::Seen::Unchanged]);
    assert!(store
        .watch_cursor("w", "transfers")
        .unwrap()
        .high_water
        .is_some());
    // The reference not set: the error names it.
    let o = awxguard(d)
        .env_remove("AWXGUARD_DB")
        .env_remove("AWX_TEST_DB_URL")
        .args(["--config", "awxguard.toml", "findings", "list"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("AWX_TEST_DB_URL"), "{}", stderr(&o));
}

#[test]
fn a_password_in_the_config_is_refused_without_showing_it() {
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "awxguard.toml",
        "[store]\nurl = \"postgres://awx:hunter2-pw@db.internal/awxguard\"\n",
    );
    let o = awxguard(d)
        .env_remove("AWXGUARD_DB")
        .args(["--config", "awxguard.toml", "findings", "list"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("store.url") && err.contains("holds a password"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// Every row of the database at `url`, as text.
fn db_contents_of(url: &str) -> Vec<u8> {
    let cfg: postgres::Config = url.parse().unwrap();
    let mut c = cfg.connect(postgres::NoTls).unwrap();
    let mut out = Vec::new();
    for t in ["findings", "runs", "acknowledgements", "alert_queue"] {
        for r in c.query(&format!("SELECT t::text FROM {t} t"), &[]).unwrap() {
            out.extend(r.get::<_, String>(0).into_bytes());
        }
    }
    out
}
