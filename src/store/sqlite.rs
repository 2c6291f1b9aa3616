//! The SQLite backend: one file, WAL, the connection behind a mutex so the store is `Sync` and
//! jobs can share it (`Arc<dyn Store>`) from blocking threads. Each area's queries live beside its
//! trait (`findings.rs`, `lifecycle.rs`, `acks.rs`, `runs.rs`).

use super::migrations::{MIGRATIONS, SCHEMA_VERSION};
use super::outbox::AlertPlanner;
use super::StoreError;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// The SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// What `record` asks which alerts to queue (`outbox`); none when alerts are off.
    pub(super) planner: RwLock<Option<Arc<dyn AlertPlanner>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path.display())
    }
}

/// How a database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Only read (`findings list`, `alerts list`, reports): the file is opened read-only (it may
    /// be a read-only file), nothing is created or upgraded; a missing database is refused
    /// (`StoreError::Missing`), never read as empty: a mistyped `--db` would say "no findings".
    pub read_only: bool,
    /// Create missing parent directories (owner-only). Only for the default location: a path
    /// the user gave must be in a directory that exists.
    pub create_dir: bool,
    /// Create the database when there is none (recording runs); else a missing one is refused.
    pub create: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            read_only: false,
            create_dir: true,
            create: true,
        }
    }
}

/// Whether an error of a read-only open means the WAL index cannot be made beside the file.
fn cannot_share(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    )
}

/// `file:<path>?immutable=1`, the path percent-encoded.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(b) {
            uri.push(*b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// `PRAGMA application_id` of an awxguard database ("awxg"): set on every database awxguard
/// creates, so another application's SQLite file is told apart.
pub const APPLICATION_ID: i32 = 0x6177_7867;

/// How long a statement waits for another process's write lock before failing.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens the database at `path` as `opts` say. A new database file is created owner-only
    /// (0600; SQLite gives its WAL the same mode), in an owner-only directory when it creates
    /// that too. A file that is not a regular file, or is another application's SQLite
    /// database, is refused before anything is written to it.
    pub fn open_with(path: &Path, opts: OpenOptions) -> Result<SqliteStore, StoreError> {
        let meta = std::fs::metadata(path).ok();
        if let Some(m) = &meta {
            if !m.is_file() {
                return Err(StoreError::NotADatabase {
                    path: path.to_path_buf(),
                    why: format!("it is {}", crate::files::kind_of(m)),
                });
            }
        }
        if meta.is_none() && (opts.read_only || !opts.create) {
            // Nothing recorded there: a wrong path, never an empty database (issue 16).
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        if meta.is_none() {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                if !opts.create_dir {
                    return Err(StoreError::NoDir {
                        path: dir.to_path_buf(),
                    });
                }
                crate::files::create_private_dir_all(dir).map_err(|source| StoreError::Dir {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            // Created owner-only before SQLite opens it (SQLite would use 0644 and the umask).
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            match o.open(path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(StoreError::Dir {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        }
        let flags = if opts.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let store = SqliteStore::with_connection(conn, path, opts.read_only);
        match store.refuse_foreign() {
            Err(StoreError::Query { source, .. }) if opts.read_only && cannot_share(&source) => {
                // A read-only directory: SQLite cannot make the WAL index beside the file. Read
                // the file as it is, as an immutable one.
                drop(store);
                let conn = Connection::open_with_flags(
                    immutable_uri(path),
                    flags | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(|source| StoreError::Open {
                    path: path.to_path_buf(),
                    source,
                })?;
                let store = SqliteStore::with_connection(conn, path, true);
                store.refuse_foreign()?;
                store.migrate(true)?;
                return Ok(store);
            }
            r => r?,
        }
        match store.migrate(opts.read_only) {
            // Made by an older awxguard: upgraded once (when the file can be written), then
            // read read-only like any other.
            Err(StoreError::TooOld { .. }) if opts.read_only => {
                drop(store);
                drop(SqliteStore::open_with(
                    path,
                    OpenOptions {
                        read_only: false,
                        create_dir: false,
                        create: false,
                    },
                )?);
                SqliteStore::open_with(path, opts)
            }
            r => r.map(|_| store),
        }
    }

    fn with_connection(mut conn: Connection, path: &Path, read_only: bool) -> SqliteStore {
        // Writers take the write lock when their transaction starts, and wait for it (busy
        // timeout): a second process waits its turn instead of failing with "database is
        // locked", which a deferred transaction upgrading to a write can get at once.
        if !read_only {
            conn.set_transaction_behavior(TransactionBehavior::Immediate);
        }
        SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            planner: RwLock::new(None),
        }
    }

    /// Refuses a database that belongs to another application: another `application_id`, or
    /// tables without awxguard's own (a database awxguard made has `findings`).
    fn refuse_foreign(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(self.q("set busy timeout"))?;
        let app: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(self.q("read application id"))?;
        if app != 0 && app != APPLICATION_ID {
            return Err(StoreError::NotADatabase {
                path: self.path.clone(),
                why: format!("it belongs to another application (application_id {app:#x})"),
            });
        }
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(self.q("list tables"))?;
        let ours: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'findings'",
                [],
                |r| r.get(0),
            )
            .map_err(self.q("list tables"))?;
        if tables > 0 && ours == 0 {
            return Err(StoreError::NotADatabase {
                path: self.path.clone(),
                why: format!(
                    "it is another application's SQLite database ({tables} tables, none of \
                     awxguard's); awxguard does not add its tables to it"
                ),
            });
        }
        Ok(())
    }

    /// Remarks about the database file a run should pass on: readable by group or others.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(m) = std::fs::metadata(&self.path) {
            if crate::files::readable_by_others(&m) {
                #[cfg(unix)]
                let mode = {
                    use std::os::unix::fs::PermissionsExt;
                    format!("{:o}", m.permissions().mode() & 0o777)
                };
                #[cfg(not(unix))]
                let mode = String::from("?");
                out.push(format!(
                    "the database {} is readable by other users (mode {mode}); it holds findings: \
                     chmod 600 {}",
                    self.path.display(),
                    self.path.display()
                ));
            }
        }
        out
    }

    /// The installed alert planner, if any.
    pub(super) fn alert_planner(&self) -> Option<Arc<dyn AlertPlanner>> {
        self.planner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for one area's queries.
    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: an open transaction
        // is rolled back when it is dropped.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Maps a SQLite error of the step `what` to a `StoreError` naming the file.
    pub(super) fn q(&self, what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path.clone(),
            what,
            source,
        }
    }

    /// The schema version of the database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.q("read schema version"))
    }

    /// Switches a new database to WAL. The switch needs the database to itself and SQLite does
    /// not wait for it through the busy handler: when several processes open a new database at
    /// once, all but one are told "locked". They wait here instead (up to the busy timeout) until
    /// the database is in WAL mode, whoever switched it.
    fn enable_wal(&self, conn: &Connection) -> Result<(), StoreError> {
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            let mode: Result<String, _> = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0));
            if mode.as_deref().is_ok_and(|m| m.eq_ignore_ascii_case("wal")) {
                return Ok(());
            }
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Ok(_) => return Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(self.q("enable WAL")(e)),
            }
        }
    }

    /// Applies the steps the database has not had, each in its own transaction, in order. Read
    /// only, it only checks the version: an older database is upgraded by the next run that
    /// records.
    fn migrate(&self, read_only: bool) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(self.q("set busy timeout"))?;
        let version = |c: &Connection| -> Result<i64, StoreError> {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(self.q("read schema version"))
        };
        let found = version(&conn)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
            });
        }
        if read_only {
            if found < SCHEMA_VERSION {
                return Err(StoreError::TooOld {
                    path: self.path.clone(),
                    found,
                });
            }
            return Ok(());
        }
        self.enable_wal(&conn)?;
        let app: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(self.q("read application id"))?;
        if app == 0 {
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(self.q("set application id"))?;
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > found) {
            // IMMEDIATE: a second process opening the same new database waits here, then sees
            // the step done and skips it.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(self.q("begin migration"))?;
            if version(&tx)? >= m.version {
                continue;
            }
            m.before
                .map_or(Ok(()), |f| f(&tx))
                .and_then(|()| tx.execute_batch(m.sql))
                .map_err(|source| StoreError::Migration {
                    path: self.path.clone(),
                    version: m.version,
                    name: m.name,
                    source,
                })?;
            tx.pragma_update(None, "user_version", m.version)
                .map_err(self.q("set schema version"))?;
            tx.commit().map_err(self.q("commit migration"))?;
            tracing::debug!(db = %self.path.display(), version = m.version, name = m.name, "migrated");
        }
        Ok(())
    }
}
