//! The database the jobs record into: findings and their lifecycle (`new` → `open` →
//! `resolved`), acknowledgements with expiry, and the runs that judged them.
//!
//! `Store` is the interface the jobs use; `SqliteStore` is its only backend for now. Methods are
//! synchronous and take `&self` (the backend keeps its connection behind a mutex), so a job holds
//! an `Arc<dyn Store>` and calls it from a blocking thread. One area per file, each a trait with
//! its SQLite implementation beside it: `findings` (what is stored, looked up by id),
//! `lifecycle` (recording a run), `acks` (acknowledgements), `runs` (the runs recorded),
//! `outbox` (alerts queued by the recording transaction, their messages and deliveries),
//! `proxy` (the recording proxy's token attributions and objects), `watch` (the money-movement
//! watch's cursors and objects), `daemon` (the daemon lock, job runs, the refs of scanned
//! repositories), `keys` (the keys as the last audit saw them, for the report).
//!
//! Adding an area: a file `store/<area>.rs` with a trait and `impl <Trait> for SqliteStore`, its
//! tables in the next migration (`migrations.rs`), the trait added to `Store`'s supertraits
//! (methods of a `dyn Store` need no import).
//!
//! Schema: ordered steps in `migrations/NNNN_name.sql`, version = `PRAGMA user_version`, checked
//! on open (a newer database is refused with advice); WAL; one transaction per batch; prepared
//! statements cached.

pub mod acknowledge;
pub mod acks;
pub mod daemon;
pub mod findings;
pub mod keys;
pub mod lifecycle;
pub mod migrations;
pub mod outbox;
pub mod postgres;
pub mod proxy;
pub mod runs;
pub mod sqlite;
pub mod usage;
pub mod usage_series;
pub mod watch;

pub use acks::{AckRecord, Acknowledgements};
pub use daemon::{
    DaemonHolder, DaemonRecords, JobCounts, JobOutcome, JobRun, LockOutcome, StoreStats,
};
pub use findings::{Findings, StoredFinding};
pub use keys::{KeyRecord, KeyRecords};
pub use lifecycle::{Lifecycle, NotRechecked, Observation, RecordSummary, Recorded};
pub use migrations::SCHEMA_VERSION;
pub use outbox::{AlertKind, AlertPlanner, Delivery, NewMessage, Outbox, QueueRow, QueuedAlert};
pub use postgres::PgStore;
pub use proxy::ProxyRecords;
pub use runs::{RunRecord, Runs};
pub use sqlite::{OpenOptions, SqliteStore};
pub use usage::{
    Appended, KeyHoldings, Pruned, SampleQuery, SourceCursor, UsageEvent, UsageRecords,
};
pub use watch::{PendingRead, Seen, StoredObject, WatchCursor, WatchObject, WatchState};

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every area of the store: what a job may hold (`Arc<dyn Store>`).
pub trait Store:
    Findings
    + Lifecycle
    + Acknowledgements
    + Runs
    + Outbox
    + ProxyRecords
    + WatchState
    + DaemonRecords
    + KeyRecords
    + UsageRecords
    + Send
    + Sync
{
}

impl<
        T: Findings
            + Lifecycle
            + Acknowledgements
            + Runs
            + Outbox
            + ProxyRecords
            + WatchState
            + DaemonRecords
            + KeyRecords
            + UsageRecords
            + Send
            + Sync,
    > Store for T
{
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot open database: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{path}: the directory for the database does not exist; create it, or choose another \
         --db / AWXGUARD_DB"
    )]
    NoDir { path: PathBuf },
    #[error("{path}: cannot create the database directory: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: database schema version {found} is newer than this awxguard understands \
         ({SCHEMA_VERSION}); upgrade awxguard or point --db / AWXGUARD_DB at another file"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error(
        "{path}: cannot upgrade the database to schema version {version} ({name}): {source}; \
         the database is unchanged, restore a backup or point --db / AWXGUARD_DB at another file"
    )]
    Migration {
        path: PathBuf,
        version: i64,
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error("{path}: {what}: {source}")]
    Query {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "{path}: no database there: nothing was recorded at this path (check --db, \
         AWXGUARD_DB or [store] path; `awxguard audit` and `awxguard scan --record` create it)"
    )]
    Missing { path: PathBuf },
    #[error(
        "{path}: database schema version {found} is older than this awxguard's \
         ({SCHEMA_VERSION}); a read-only command does not upgrade it: run a recording command \
         (`awxguard audit`, `awxguard scan --record`) once"
    )]
    TooOld { path: PathBuf, found: i64 },
    #[error("{path}: not an awxguard database: {why}; point --db / AWXGUARD_DB at another file")]
    NotADatabase { path: PathBuf, why: String },
    #[error("no finding with id {0:?} in the database (see `awxguard findings list`)")]
    UnknownFinding(String),
    #[error("finding id prefix {0:?} is ambiguous: {1}")]
    AmbiguousFinding(String, String),
    #[error("{0}")]
    BadUrl(String),
    #[error("{url}: {what}: {}", postgres::describe(source))]
    Pg {
        url: String,
        what: &'static str,
        source: ::postgres::Error,
    },
    #[error(
        "{url}: cannot upgrade the database to schema version {version} ({name}): {}; \
         the database is unchanged (each step is one transaction)",
        postgres::describe(source)
    )]
    PgMigration {
        url: String,
        version: i64,
        name: &'static str,
        source: ::postgres::Error,
    },
}

/// The default database: `$XDG_DATA_HOME/awxguard/awxguard.db` (or `~/.local/share/...`).
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("awxguard").join("awxguard.db")
}

/// The `postgres://` URL `target` names, if it names one (`--db`, `AWXGUARD_DB`, `[store] url`).
pub fn postgres_url(target: &Path) -> Option<&str> {
    target.to_str().filter(|t| postgres::is_url(t))
}

/// Opens the database `target` names, schema brought up to date: a SQLite file, or a
/// PostgreSQL database (`postgres://…`).
pub fn open(target: &Path) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(url) = postgres_url(target) {
        return Ok(Arc::new(PgStore::open(url, false, true)?));
    }
    Ok(Arc::new(SqliteStore::open(target)?))
}

/// A database opened with options, and what the run should say about it (a database readable
/// by other users).
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub notes: Vec<String>,
}

/// Opens the database at `path` as `opts` say (read-only; creating the default directory).
pub fn open_with(path: &Path, opts: OpenOptions) -> Result<Opened, StoreError> {
    if let Some(url) = postgres_url(path) {
        return Ok(Opened {
            store: Arc::new(PgStore::open(url, opts.read_only, opts.create)?),
            notes: Vec::new(),
        });
    }
    let s = SqliteStore::open_with(path, opts)?;
    let notes = s.notes();
    Ok(Opened {
        store: Arc::new(s),
        notes,
    })
}

/// What `awxguard store migrate` did: the schema version the database had and has now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Migrated {
    /// The database as it may be shown (a path, or a URL without its password).
    pub database: String,
    pub backend: &'static str,
    pub from: i64,
    pub to: i64,
}

/// Brings the database `target` names up to this build's schema, explicitly (every recording
/// command does it too); idempotent: a database already up to date is left as it is. A database
/// newer than this build is refused.
pub fn migrate(target: &Path) -> Result<Migrated, StoreError> {
    if let Some(url) = postgres_url(target) {
        let from = postgres::peek_version(url)?;
        let s = PgStore::open(url, false, true)?;
        return Ok(Migrated {
            database: s.shown().to_string(),
            backend: "postgresql",
            from,
            to: s.schema_version()?,
        });
    }
    let from = if target.is_file() {
        rusqlite::Connection::open_with_flags(target, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .map_err(|source| StoreError::Open {
                path: target.to_path_buf(),
                source,
            })?
    } else {
        0
    };
    let s = SqliteStore::open_with(
        target,
        OpenOptions {
            read_only: false,
            create_dir: false,
            create: true,
        },
    )?;
    Ok(Migrated {
        database: target.display().to_string(),
        backend: "sqlite",
        from,
        to: s.schema_version()?,
    })
}

/// A value bound to a statement, its text passed through the redaction gate on the way in: no
/// row, and so no page of the database or its WAL, ever holds a key in clear. Bind with this
/// module's [`params!`] (every store area imports `super::params`, never `rusqlite::params`; a
/// test checks).
pub struct Clean<'a>(pub &'a dyn rusqlite::ToSql);

impl rusqlite::ToSql for Clean<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        use std::borrow::Cow;
        let out = self.0.to_sql()?;
        let text = match &out {
            ToSqlOutput::Borrowed(ValueRef::Text(b)) => std::str::from_utf8(b).ok(),
            ToSqlOutput::Owned(Value::Text(s)) => Some(s.as_str()),
            _ => None,
        };
        if let Some(Cow::Owned(clean)) = text.map(crate::redact::scrub) {
            return Ok(ToSqlOutput::Owned(Value::Text(clean)));
        }
        Ok(out)
    }
}

/// `rusqlite::params!` with every value bound through the redaction gate ([`Clean`]).
macro_rules! params {
    () => {
        &[] as &[&dyn rusqlite::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$crate::store::Clean(&$p) as &dyn rusqlite::ToSql),+] as &[&dyn rusqlite::ToSql]
    };
}
pub(crate) use params;

/// How times are stored: RFC 3339, seconds, `Z`.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Finding, Resolution, Severity, Status};
    use rusqlite::Connection;

    fn f(id_part: &str) -> Finding {
        Finding::new("privilege.test", Severity::High, "m", &[id_part])
    }

    /// A fresh store on each backend: SQLite in `dir`, and PostgreSQL when the tests have a
    /// server (`AWXGUARD_TEST_PG_URL`; always in CI).
    pub(crate) fn backends(dir: &Path, label: &str) -> Vec<Arc<dyn Store>> {
        let mut out: Vec<Arc<dyn Store>> = vec![open(&dir.join(format!("{label}.db"))).unwrap()];
        if let Some(url) = postgres::test_database(label) {
            out.push(Arc::new(PgStore::open(&url, false, true).unwrap()));
        }
        out
    }

    #[test]
    fn lifecycle_new_open_resolved_and_back() {
        let dir = tempfile::tempdir().unwrap();
        for s in backends(dir.path(), "lifecycle") {
            let t0 = Utc::now();
            let mut run1 = vec![f("a"), f("b")];
            let Recorded {
                summary: sum,
                resolved,
                ..
            } = s.record("audit", &mut run1, t0).unwrap();
            assert_eq!((sum.new, sum.open, sum.resolved), (2, 0, 0));
            assert!(resolved.is_empty());
            assert_eq!(run1[0].status, Some(Status::New));
            let mut run2 = vec![f("a")];
            let Recorded {
                summary: sum,
                resolved,
                ..
            } = s.record("audit", &mut run2, t0).unwrap();
            assert_eq!((sum.new, sum.open, sum.resolved), (0, 1, 1));
            assert_eq!(run2[0].status, Some(Status::Open));
            assert_eq!(resolved[0].id, f("b").id);
            assert_eq!(resolved[0].status, Some(Status::Resolved));
            // Another scope does not resolve audit findings.
            s.record("scan", &mut [], t0).unwrap();
            let mut run3 = vec![f("a"), f("b")];
            let sum = s.record("audit", &mut run3, t0).unwrap().summary;
            assert_eq!((sum.new, sum.open), (1, 1), "b came back: new again");
            assert_eq!(s.runs(Some("audit")).unwrap().len(), 3);
            assert_eq!(s.runs(None).unwrap().len(), 4);
        }
    }

    #[test]
    fn a_finding_resolves_only_when_a_run_looked_where_it_was_seen() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let t0 = Utc::now();
        let mut leak = f("leak");
        leak.observed_by = vec!["scan:tree:/srv/app".into(), "secret:env:K".into()];
        let mut other = f("other");
        other.observed_by = vec!["config:/etc/awxguard.toml".into()];
        let everything = Observation::of(
            [
                "scan:tree:/srv/app",
                "secret:env:K",
                "config:/etc/awxguard.toml",
            ]
            .map(String::from),
        );
        s.record_observed("audit", &everything, &mut [leak.clone(), other.clone()], t0)
            .unwrap();
        // A run that did not scan and could not read the secret: the leak stays open.
        let partial = Observation::of(["config:/etc/awxguard.toml".to_string()]);
        let r = s
            .record_observed("audit", &partial, &mut [other.clone()], t0)
            .unwrap();
        assert!(r.resolved.is_empty());
        assert_eq!(r.summary.not_rechecked, 1);
        assert_eq!(r.not_rechecked[0].finding.id, leak.id);
        assert_eq!(
            r.not_rechecked[0].unseen,
            ["scan:tree:/srv/app", "secret:env:K"]
        );
        assert_eq!(r.not_rechecked[0].finding.status, Some(Status::Open));
        let stored = s.list(None, t0).unwrap();
        let l = stored.iter().find(|x| x.finding.id == leak.id).unwrap();
        assert_eq!(l.finding.status, Some(Status::Open));
        assert_eq!(l.finding.observed_by, leak.observed_by);
        // A run over the same inputs that no longer sees it: resolved, fixed.
        let r = s
            .record_observed("audit", &everything, &mut [other.clone()], t0)
            .unwrap();
        assert_eq!(r.resolved.len(), 1);
        assert_eq!(r.resolved[0].resolution, Some(Resolution::Fixed));
        let stored = s.list(None, t0).unwrap();
        let l = stored.iter().find(|x| x.finding.id == leak.id).unwrap();
        assert_eq!(l.finding.status, Some(Status::Resolved));
        assert_eq!(l.finding.resolution, Some(Resolution::Fixed));
        // Incidents age out.
        let mut spike = Finding::new("anomaly.rate-spike", Severity::High, "m", &["k", "t"]);
        spike.observed_by = vec!["usage:/var/log/awx".into()];
        s.record("usage", std::slice::from_mut(&mut spike), t0)
            .unwrap();
        let r = s.record("usage", &mut [], t0).unwrap();
        assert_eq!(r.resolved[0].resolution, Some(Resolution::AgedOut));
    }

    #[test]
    fn the_config_acknowledges_what_it_accepts_and_stops_when_it_no_longer_does() {
        let dir = tempfile::tempdir().unwrap();
        for s in backends(dir.path(), "config_ack") {
            let t0 = Utc::now();
            let accepted = || {
                let mut x = f("literal");
                x.status = Some(Status::Acknowledged);
                x.evidence = Some(serde_json::json!({"accepted": "allow_literal = true at a:3"}));
                x
            };
            let mut run = vec![accepted()];
            let r = s.record("audit", &mut run, t0).unwrap();
            assert_eq!(run[0].status, Some(Status::Acknowledged));
            assert_eq!(r.summary.acknowledged, 1);
            let acks = s.acknowledgements().unwrap();
            assert_eq!(acks.len(), 1);
            assert_eq!(
                (acks[0].origin.as_str(), acks[0].reason.as_str()),
                ("config", "allow_literal = true at a:3")
            );
            assert_eq!(
                s.list(None, t0).unwrap()[0].finding.status,
                Some(Status::Acknowledged)
            );
            // allow_literal removed: the finding comes plain, the config's acknowledgement goes.
            let mut run = vec![f("literal")];
            s.record("audit", &mut run, t0).unwrap();
            assert_eq!(run[0].status, Some(Status::Open));
            assert!(s.acknowledgements().unwrap().is_empty());
            // A person's acknowledgement is never the config's to remove.
            s.acknowledge(
                &run[0].id,
                "accepted until the migration",
                Some("sec"),
                None,
                t0,
            )
            .unwrap();
            let mut run = vec![f("literal")];
            s.record("audit", &mut run, t0).unwrap();
            assert_eq!(run[0].status, Some(Status::Acknowledged));
            assert_eq!(s.acknowledgements().unwrap()[0].origin, "person");
        }
    }

    #[test]
    fn a_missing_database_is_refused_for_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope.db");
        let reading = OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        };
        let existing = OpenOptions {
            create: false,
            ..OpenOptions::default()
        };
        for opts in [reading, existing] {
            let err = open_with(&p, opts).err().unwrap().to_string();
            assert!(err.contains("no database there"), "{err}");
            assert!(!p.exists());
        }
        open(&p).unwrap();
        assert!(open_with(&p, reading).is_ok());
        assert!(open_with(&p, existing).is_ok());
    }

    #[test]
    fn acknowledgements_suppress_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        for s in backends(dir.path(), "acks") {
            let t0 = Utc::now();
            let mut run = vec![f("a")];
            s.record("audit", &mut run, t0).unwrap();
            let id = run[0].id.clone();
            s.acknowledge(
                &id[..6],
                "accepted risk",
                Some("sec"),
                Some(t0 + chrono::Duration::days(1)),
                t0,
            )
            .unwrap();
            let mut run = vec![f("a")];
            let sum = s.record("audit", &mut run, t0).unwrap().summary;
            assert_eq!(run[0].status, Some(Status::Acknowledged));
            assert_eq!(sum.acknowledged, 1);
            let mut run = vec![f("a")];
            let sum = s
                .record("audit", &mut run, t0 + chrono::Duration::days(2))
                .unwrap()
                .summary;
            assert_eq!(run[0].status, Some(Status::Open));
            assert_eq!(sum.expired_acknowledgements.len(), 1);
            assert!(matches!(
                s.resolve_id("zzzz"),
                Err(StoreError::UnknownFinding(_))
            ));
            assert!(s.unacknowledge(&id).unwrap());
            assert!(!s.unacknowledge(&id).unwrap());
            let listed = s.list(Some("audit"), t0).unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].times_seen, 3);
            assert!(s.list(Some("scan"), t0).unwrap().is_empty());
        }
    }

    #[test]
    fn newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch("PRAGMA user_version = 99;").unwrap();
        }
        let err = SqliteStore::open(&p).err().unwrap().to_string();
        assert!(err.contains("schema version 99"), "{err}");
        assert!(err.contains("AWXGUARD_DB"), "{err}");
    }

    #[test]
    fn an_empty_file_gets_every_step_and_runs_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        std::fs::write(&p, b"").unwrap();
        let s = SqliteStore::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        s.record("audit", &mut [f("a")], Utc::now()).unwrap();
        let runs = s.runs(None).unwrap();
        assert_eq!((runs.len(), runs[0].new), (1, 1));
        drop(s);
        // Opening again applies nothing and keeps the data.
        let s = SqliteStore::open(&p).unwrap();
        assert_eq!(s.runs(Some("audit")).unwrap().len(), 1);
    }

    #[test]
    fn the_store_is_shared_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        for s in backends(dir.path(), "threads") {
            let t0 = Utc::now();
            std::thread::scope(|sc| {
                for scope in ["audit", "scan:a", "scan:b"] {
                    let s = s.clone();
                    sc.spawn(move || s.record(scope, &mut [f(scope)], t0).unwrap());
                }
            });
            assert_eq!(s.list(None, t0).unwrap().len(), 3);
        }
    }
}
