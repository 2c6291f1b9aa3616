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
//! claim each job run under an advisory lock: `daemon.rs`), usage evidence (`usage/`).
//!
//! Here: the store, its connection and the redaction gate for bound values; the schema steps
//! and their application in `schema`; naming, creating and describing databases in `server`.

mod daemon;
mod findings;
mod outbox;
mod proxy;
mod schema;
mod server;
mod usage;
mod watch;

use super::outbox::AlertPlanner;
use super::StoreError;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls};
use schema::version;
pub use schema::{peek_version, MIGRATIONS};
pub use server::{create_database, describe, is_url, redacted, test_database, with_dbname};
use std::sync::{Arc, Mutex, RwLock};

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
}

fn connect(config: &postgres::Config, shown: &str) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|source| StoreError::Pg {
        url: shown.to_string(),
        what: "cannot connect",
        source,
    })
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
mod tests;
