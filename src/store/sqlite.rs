//! The SQLite backend: one file, WAL, the connection behind a mutex so the store is `Sync` and
//! jobs can share it (`Arc<dyn Store>`) from blocking threads. Each area's queries live beside its
//! trait (`findings.rs`, `lifecycle.rs`, `acks.rs`, `runs.rs`).

use super::migrations::{MIGRATIONS, SCHEMA_VERSION};
use super::outbox::AlertPlanner;
use super::StoreError;
use rusqlite::{Connection, TransactionBehavior};
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

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            planner: RwLock::new(None),
        };
        store.migrate()?;
        Ok(store)
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

    /// Applies the steps the database has not had, each in its own transaction, in order.
    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(self.q("set busy timeout"))?;
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(self.q("enable WAL"))?;
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
        for m in MIGRATIONS.iter().filter(|m| m.version > found) {
            // IMMEDIATE: a second process opening the same new database waits here, then sees
            // the step done and skips it.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(self.q("begin migration"))?;
            if version(&tx)? >= m.version {
                continue;
            }
            tx.execute_batch(m.sql)
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
