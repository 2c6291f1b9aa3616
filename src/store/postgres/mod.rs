//! The PostgreSQL backend: one database shared by every process on every host (CI runners,
//! daemons, proxies). Same trait, same schema steps (`postgres/migrations/NNNN_name.sql`, the
//! numbers and names of SQLite's), same lifecycle semantics; times stay RFC 3339 text so both
//! backends compare and copy them alike.
//!
//! Crate: `postgres` (the synchronous face of `tokio-postgres`, same maintainer, the standard
//! driver): the store's methods are synchronous and run on blocking threads, which is what it
//! is made for. It drives its own small runtime internally and panics if called on a thread that
//! is inside a tokio runtime, so every call goes through [`PgStore::run`], which moves it to a
//! scoped thread when the calling thread is inside one (the daemon, the proxy).
//!
//! Several writers at once: findings are upserted by id (`INSERT .. ON CONFLICT (id) DO
//! UPDATE`, one statement decides new/open), in id order so two runs never deadlock, and a run
//! that still meets a serialization failure or deadlock is retried; a delivery is claimed with
//! `SELECT .. FOR UPDATE SKIP LOCKED`; a queued alert is sealed only while it is still waiting,
//! its row locked. Every area is ported: findings, lifecycle, acknowledgements, runs, outbox, keys,
//! the proxy's records, the watch's state, the daemon's records (daemons share the database and
//! claim each job run under an advisory lock: `daemon.rs`), usage evidence (`usage.rs`).

mod daemon;
mod findings;
mod outbox;
mod proxy;
mod usage;
mod watch;

use super::migrations::{Migration, SCHEMA_VERSION};
use super::outbox::AlertPlanner;
use super::StoreError;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls};
use std::sync::{Arc, Mutex, RwLock};

/// Every step of the PostgreSQL schema: the same versions and names as SQLite's (a test checks).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
        before: None,
    },
    Migration {
        version: 2,
        name: "outbox",
        sql: include_str!("migrations/0002_outbox.sql"),
        before: None,
    },
    Migration {
        version: 3,
        name: "proxy",
        sql: include_str!("migrations/0003_proxy.sql"),
        before: None,
    },
    Migration {
        version: 4,
        name: "watch",
        sql: include_str!("migrations/0004_watch.sql"),
        before: None,
    },
    Migration {
        version: 5,
        name: "daemon",
        sql: include_str!("migrations/0005_daemon.sql"),
        before: None,
    },
    Migration {
        version: 6,
        name: "keys",
        sql: include_str!("migrations/0006_keys.sql"),
        before: None,
    },
    Migration {
        version: 7,
        name: "observed",
        sql: include_str!("migrations/0007_observed.sql"),
        before: None,
    },
    Migration {
        version: 8,
        name: "usage",
        sql: include_str!("migrations/0008_usage.sql"),
        before: None,
    },
    Migration {
        version: 9,
        name: "outbox_dead",
        sql: include_str!("migrations/0009_outbox_dead.sql"),
        before: None,
    },
    Migration {
        version: 10,
        name: "proxy_events",
        sql: include_str!("migrations/0010_proxy_events.sql"),
        before: None,
    },
];

/// The advisory lock key that serializes schema steps across processes ("awxg" + 1).
const MIGRATION_LOCK: i64 = 0x6177_7867_0001;

/// Whether `target` (a `--db` value) names a PostgreSQL database.
pub fn is_url(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// The schema version of the database at `url` without changing anything (0: none yet).
pub fn peek_version(url: &str) -> Result<i64, StoreError> {
    let config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| StoreError::BadUrl(format!("not a PostgreSQL URL: {e}")))?;
    let shown = shown(&config);
    off_runtime(move || {
        let mut c = connect(&config, &shown)?;
        let q = |source| StoreError::Pg {
            url: shown.clone(),
            what: "read schema version",
            source,
        };
        let ours: bool = c
            .query_one("SELECT to_regclass('awxguard_meta') IS NOT NULL", &[])
            .map_err(q)?
            .get(0);
        if !ours {
            return Ok(0);
        }
        version(&mut c).map_err(q)
    })
}

/// `url` as it may be shown (no password), or a note that it does not parse.
pub fn redacted(url: &str) -> String {
    url.parse::<postgres::Config>()
        .map(|c| shown(&c))
        .unwrap_or_else(|_| "a postgres:// URL that does not parse".into())
}

/// The PostgreSQL store.
pub struct PgStore {
    /// `None` only while dropping or after a lost connection could not be made again.
    client: Mutex<Option<Client>>,
    config: postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    read_only: bool,
    pub(super) planner: RwLock<Option<Arc<dyn AlertPlanner>>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the connection blocks: not on a runtime's thread.
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        off_runtime(move || drop(client));
    }
}

/// Runs `f` here, or on a scoped thread when this thread is inside a tokio runtime (the driver's
/// blocking calls, closing a connection included, panic there).
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
    } else {
        f()
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.shown)
    }
}

/// The URL as it may be shown: user, hosts, port, database; never the password.
fn shown(c: &postgres::Config) -> String {
    use postgres::config::Host;
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(s) => s.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = match c.get_ports() {
        [] | [5432] => String::new(),
        p => format!(":{}", p[0]),
    };
    let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    format!(
        "postgres://{user}{}{port}/{}",
        hosts.join(","),
        c.get_dbname().unwrap_or("")
    )
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date (read-only: checks
    /// the version; a database made by an older awxguard is upgraded first, as SQLite's is).
    /// Without `create`, a database with none of awxguard's tables is refused
    /// (`StoreError::Missing`), as a missing SQLite file is.
    pub fn open(url: &str, read_only: bool, create: bool) -> Result<PgStore, StoreError> {
        let config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::BadUrl(format!(
                "{}: not a PostgreSQL URL ({e}); e.g. postgres://user@host/db",
                crate::redact::scrub(url.split('?').next().unwrap_or(""))
            ))
        })?;
        let shown = shown(&config);
        let client = off_runtime(|| connect(&config, &shown))?;
        let store = PgStore {
            client: Mutex::new(Some(client)),
            config,
            shown,
            read_only,
            planner: RwLock::new(None),
        };
        store.migrate(create)?;
        if read_only {
            store.run(|c| {
                c.batch_execute("SET default_transaction_read_only = on")
                    .map_err(store.q("make the session read-only"))
            })?;
        }
        Ok(store)
    }

    /// The database, as it may be shown (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `f` with the connection (reconnecting if it was lost). When the calling thread is
    /// inside a tokio runtime, on a scoped thread of its own: the driver's blocking calls panic
    /// there.
    pub(super) fn run<R: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, StoreError> + Send,
    ) -> Result<R, StoreError> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let slot: &mut Option<Client> = &mut guard;
        off_runtime(move || {
            if slot.as_ref().is_none_or(|c| c.is_closed()) {
                let mut c = connect(&self.config, &self.shown)?;
                if self.read_only {
                    c.batch_execute("SET default_transaction_read_only = on")
                        .map_err(self.q("make the session read-only"))?;
                }
                *slot = Some(c);
            }
            f(slot.as_mut().expect("connected"))
        })
    }

    /// Maps a driver error of the step `what` to a `StoreError` naming the database.
    pub(super) fn q(&self, what: &'static str) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |source| StoreError::Pg {
            url: self.shown.clone(),
            what,
            source,
        }
    }

    /// The installed alert planner, if any.
    pub(super) fn alert_planner(&self) -> Option<Arc<dyn AlertPlanner>> {
        self.planner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The schema version of the database (0 before the first step).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|c| version(c).map_err(self.q("read schema version")))
    }

    /// Refuses another application's database, then applies the steps the database has not had,
    /// each in its own transaction under an advisory lock (a second process waits, then skips
    /// what the first did).
    fn migrate(&self, create: bool) -> Result<(), StoreError> {
        self.run(|c| {
            // One statement, one snapshot: another process may be creating the tables now.
            let row = c
                .query_one(
                    "SELECT to_regclass('awxguard_meta') IS NOT NULL, \
                     (SELECT count(*) FROM information_schema.tables \
                      WHERE table_schema = current_schema())",
                    &[],
                )
                .map_err(self.q("look for awxguard's tables"))?;
            let (ours, tables): (bool, i64) = (row.get(0), row.get(1));
            if !ours && tables == 0 && !create {
                return Err(StoreError::Missing {
                    path: self.shown.clone().into(),
                });
            }
            if !ours && tables > 0 {
                return Err(StoreError::NotADatabase {
                    path: self.shown.clone().into(),
                    why: format!(
                        "it holds another application's tables ({tables}, none of \
                         awxguard's); awxguard does not add its tables to it"
                    ),
                });
            }
            let found = if ours {
                version(c).map_err(self.q("read schema version"))?
            } else {
                0
            };
            if found > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    path: self.shown.clone().into(),
                    found,
                });
            }
            for m in MIGRATIONS.iter().filter(|m| m.version > found) {
                let mut tx = c.transaction().map_err(self.q("begin migration"))?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                    .map_err(self.q("lock the schema"))?;
                tx.batch_execute(
                    "CREATE TABLE IF NOT EXISTS awxguard_meta \
                     (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
                )
                .map_err(self.q("create awxguard_meta"))?;
                if version(&mut tx).map_err(self.q("read schema version"))? >= m.version {
                    continue;
                }
                tx.batch_execute(m.sql)
                    .map_err(|source| StoreError::PgMigration {
                        url: self.shown.clone(),
                        version: m.version,
                        name: m.name,
                        source,
                    })?;
                tx.execute(
                    "INSERT INTO awxguard_meta (name, value) VALUES ('schema_version', $1) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    &[&m.version.to_string()],
                )
                .map_err(self.q("set schema version"))?;
                tx.commit().map_err(self.q("commit migration"))?;
                tracing::debug!(db = %self.shown, version = m.version, name = m.name, "migrated");
            }
            Ok(())
        })
    }
}

fn connect(config: &postgres::Config, shown: &str) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|source| StoreError::Pg {
        url: shown.to_string(),
        what: "cannot connect",
        source,
    })
}

/// `awxguard_meta.schema_version` (0 when absent).
fn version(c: &mut impl postgres::GenericClient) -> Result<i64, postgres::Error> {
    let row = c.query_opt(
        "SELECT value FROM awxguard_meta WHERE name = 'schema_version'",
        &[],
    )?;
    Ok(row
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or(0))
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

/// Whether an error is worth retrying the whole transaction for (serialization failure,
/// deadlock).
pub(super) fn retryable(e: &StoreError) -> bool {
    use postgres::error::SqlState;
    match e {
        StoreError::Pg { source, .. } => matches!(
            source.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::UNIQUE_VIOLATION
        ),
        _ => false,
    }
}

/// A value bound to a statement, its text passed through the redaction gate on the way in (the
/// PostgreSQL twin of [`super::Clean`]). Bind with [`pg_params!`].
#[derive(Debug)]
pub struct PgClean<'a>(pub &'a (dyn ToSql + Sync));

impl ToSql for PgClean<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mut buf = bytes::BytesMut::new();
        let null = self.0.to_sql_checked(ty, &mut buf)?;
        if let IsNull::No = null {
            if matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME) {
                if let Ok(text) = std::str::from_utf8(&buf) {
                    if let std::borrow::Cow::Owned(clean) = crate::redact::scrub(text) {
                        out.extend_from_slice(clean.as_bytes());
                        return Ok(IsNull::No);
                    }
                }
            }
            out.extend_from_slice(&buf);
        }
        Ok(null)
    }

    fn accepts(_: &Type) -> bool {
        // The wrapped value's own check runs in `to_sql`.
        true
    }

    postgres::types::to_sql_checked!();
}

/// Statement parameters for the PostgreSQL backend, each bound through the redaction gate.
macro_rules! pg_params {
    () => {
        &[] as &[&(dyn postgres::types::ToSql + Sync)]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$crate::store::postgres::PgClean(&$p) as &(dyn postgres::types::ToSql + Sync)),+]
            as &[&(dyn postgres::types::ToSql + Sync)]
    };
}
pub(crate) use pg_params;

#[cfg(test)]
mod tests {
    use super::*;

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
}
