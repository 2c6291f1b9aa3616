use super::*;
use crate::store::SCHEMA_VERSION;

#[test]
fn the_steps_are_sqlites_steps() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/postgres/migrations");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let sqlite: Vec<String> = crate::store::migrations::MIGRATIONS
        .iter()
        .map(|m| format!("{:04}_{}.sql", m.version, m.name))
        .collect();
    let pg: Vec<String> = MIGRATIONS
        .iter()
        .map(|m| format!("{:04}_{}.sql", m.version, m.name))
        .collect();
    assert_eq!(
        pg, sqlite,
        "every SQLite schema step needs its PostgreSQL twin (src/store/postgres/migrations)"
    );
    assert_eq!(
        files, pg,
        "src/store/postgres/migrations/ and MIGRATIONS differ"
    );
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(&pg[i])).unwrap();
        assert_eq!(text, m.sql);
    }
}

#[test]
fn urls_are_shown_without_their_password() {
    let c: postgres::Config = "postgres://awx:s3cret-pw@db.internal:6543/awxguard"
        .parse()
        .unwrap();
    assert_eq!(shown(&c), "postgres://awx@db.internal:6543/awxguard");
    let c: postgres::Config = "postgresql:///awx?host=/tmp/pg&user=postgres"
        .parse()
        .unwrap();
    assert_eq!(shown(&c), "postgres://postgres@/tmp/pg/awx");
    assert!(is_url("postgres://x") && is_url("postgresql://x") && !is_url("a.db"));
    assert_eq!(
        with_dbname("postgres:///postgres?host=/tmp/p&user=u", "t_1"),
        "postgres:///t_1?host=/tmp/p&user=u"
    );
    assert_eq!(
        with_dbname("postgres://a@h:1/db", "x"),
        "postgres://a@h:1/x"
    );
    assert_eq!(with_dbname("postgres://a@h", "x"), "postgres://a@h/x");
}

#[test]
fn a_newer_or_foreign_database_is_refused_and_steps_run_once() {
    let Some(url) = test_database("refusals") else {
        return;
    };
    let s = PgStore::open(&url, false, true).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    // Two more opens (one read-only) skip what is done.
    PgStore::open(&url, false, true).unwrap();
    let ro = PgStore::open(&url, true, true).unwrap();
    let err = ro
        .run(|c| {
            c.batch_execute("DELETE FROM findings")
                .map_err(ro.q("delete"))
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("read-only"), "{err}");
    s.run(|c| {
        c.batch_execute("UPDATE awxguard_meta SET value = '99' WHERE name = 'schema_version'")
            .map_err(s.q("bump"))
    })
    .unwrap();
    let err = PgStore::open(&url, false, true).unwrap_err().to_string();
    assert!(err.contains("schema version 99"), "{err}");
    assert!(!err.contains("password"), "{err}");
    let other = test_database("foreign").unwrap();
    let c = PgStore::open(&other, false, true);
    drop(c);
    let foreign = test_database("foreign2").unwrap();
    let cfg: postgres::Config = foreign.parse().unwrap();
    let mut c = cfg.connect(NoTls).unwrap();
    c.batch_execute("CREATE TABLE invoices (id int)").unwrap();
    let err = PgStore::open(&foreign, false, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another application"), "{err}");
}
