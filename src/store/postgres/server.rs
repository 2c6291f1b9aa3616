//! PostgreSQL URLs and databases: which `--db` values name one, a URL as it may be shown,
//! creating a database (per test, per benchmark, per `store copy` target), and a driver error
//! in the server's words.

use super::{connect, off_runtime, shown};
use crate::store::StoreError;

/// Whether `target` (a `--db` value) names a PostgreSQL database.
pub fn is_url(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// `url` as it may be shown (no password), or a note that it does not parse.
pub fn redacted(url: &str) -> String {
    url.parse::<postgres::Config>()
        .map(|c| shown(&c))
        .unwrap_or_else(|_| "a postgres:// URL that does not parse".into())
}

/// `url` with its database name replaced by `name` (the rest, host and options, kept).
pub fn with_dbname(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (base, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = base.split_once('/').map_or(base, |(a, _)| a);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Creates the empty database `name` on the server `admin_url` reaches (whose user may create
/// databases) and returns its URL: a fresh database per test, per benchmark, per `store copy`
/// target. Refuses a name that is not a plain identifier.
pub fn create_database(admin_url: &str, name: &str) -> Result<String, StoreError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::BadUrl(format!(
            "{name:?} is not a database name awxguard creates (lower-case letters, digits, _)"
        )));
    }
    let config: postgres::Config = admin_url
        .parse()
        .map_err(|e: postgres::Error| StoreError::BadUrl(format!("not a PostgreSQL URL: {e}")))?;
    let shown = shown(&config);
    off_runtime(move || -> Result<(), StoreError> {
        let mut c = connect(&config, &shown)?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|source| StoreError::Pg {
                url: shown.clone(),
                what: "create database",
                source,
            })
    })?;
    Ok(with_dbname(admin_url, name))
}

/// For tests: a fresh database on the server `AWXGUARD_TEST_PG_URL` names (`.ci/pg-cluster
/// start` exports it), or `None` when it is not set. Under CI (`CI` set) a missing server is a
/// failure, not a skip.
pub fn test_database(label: &str) -> Option<String> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let Some(admin) = std::env::var("AWXGUARD_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: AWXGUARD_TEST_PG_URL is not set; .ci/run starts a PostgreSQL cluster \
             (.ci/pg-cluster start) for the tests"
        );
        return None;
    };
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    let name = format!("t_{label}_{}_{n}_{nanos}", std::process::id());
    Some(create_database(&admin, &name).expect("create a test database on AWXGUARD_TEST_PG_URL"))
}

/// What went wrong, in the server's words when it answered (the driver's own `Display` says only
/// "db error").
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}
