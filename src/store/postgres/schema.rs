//! The schema steps of the PostgreSQL backend and their application.

use super::{connect, off_runtime, shown, PgStore};
use crate::store::migrations::{Migration, SCHEMA_VERSION};
use crate::store::StoreError;

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

impl PgStore {
    /// Refuses another application's database, then applies the steps the database has not had,
    /// each in its own transaction under an advisory lock (a second process waits, then skips
    /// what the first did).
    pub(super) fn migrate(&self, create: bool) -> Result<(), StoreError> {
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

/// `awxguard_meta.schema_version` (0 when absent).
pub(super) fn version(c: &mut impl postgres::GenericClient) -> Result<i64, postgres::Error> {
    let row = c.query_opt(
        "SELECT value FROM awxguard_meta WHERE name = 'schema_version'",
        &[],
    )?;
    Ok(row
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or(0))
}
