//! What the proxy needs from the store, as two small traits so the backend is one switch: the
//! writer's side (`ProxyStore`: append usage events, record findings, remember token
//! attributions) and the request path's lookups (`ProxyLookup`: which key a token belongs to,
//! when an object was last created or changed through a proxy, whether a finding is
//! acknowledged).
//!
//! `SqliteProxyStore` implements both over awxguard's SQLite database. Its tables are the
//! proxy's own store area: `proxy_token_attributions` (token fingerprint → key fingerprint until
//! the token expires; neither is secret) and `proxy_objects` (object ids the proxy saw a call
//! create or change, for the money guard). Usage events go to `proxy_usage_events` until the
//! usage evidence store (issue 9) offers its event-append call; deduplicated on the whole event.

use super::record::UsageEvent;
use crate::finding::Finding;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// A login the proxy saw: the token's fingerprint names the key's fingerprint until expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAttribution {
    pub token_fingerprint: String,
    pub key_fingerprint: String,
    pub expires_at: DateTime<Utc>,
    pub learned_at: DateTime<Utc>,
}

/// The writer's side of the store.
pub trait ProxyStore: Send {
    /// Appends events; an event already stored is not stored again.
    fn append_events(&mut self, events: &[UsageEvent]) -> Result<(), String>;
    /// Records findings (each under its own scope: a proxy finding stays open until
    /// acknowledged; nothing the proxy does resolves another).
    fn record_findings(&mut self, findings: &mut [Finding]) -> Result<(), String>;
    fn remember_tokens(&mut self, attributions: &[TokenAttribution]) -> Result<(), String>;
}

/// The request path's lookups; called from blocking threads.
pub trait ProxyLookup: Send + Sync {
    /// The attribution of a token fingerprint, if a proxy on this store saw its login and it
    /// has not expired at `now`.
    fn token(&self, token_fp: &str, now: DateTime<Utc>)
        -> Result<Option<TokenAttribution>, String>;
    /// Remembers an attribution at once (the login path, so a second proxy knows the token
    /// before the first call with it arrives).
    fn remember_token(&self, a: &TokenAttribution) -> Result<(), String>;
    /// When a proxy last saw a call create or change the object `id`.
    fn object_changed_at(&self, id: &str) -> Result<Option<DateTime<Utc>>, String>;
    /// Whether finding `id` is acknowledged (and the acknowledgement not expired at `now`).
    fn acknowledged(&self, id: &str, now: DateTime<Utc>) -> Result<bool, String>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS proxy_token_attributions (
    token_fingerprint TEXT PRIMARY KEY,
    key_fingerprint   TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    learned_at        TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS proxy_token_attributions_expiry ON proxy_token_attributions (expires_at);
CREATE TABLE IF NOT EXISTS proxy_objects (
    object_id   TEXT NOT NULL,
    ts          TEXT NOT NULL,
    key         TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    PRIMARY KEY (object_id, ts, path)
) STRICT;
CREATE TABLE IF NOT EXISTS proxy_usage_events (
    hash   TEXT PRIMARY KEY,
    ts     TEXT NOT NULL,
    key    TEXT NOT NULL,
    event  TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS proxy_usage_events_key_ts ON proxy_usage_events (key, ts);
";

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn open(path: &Path, busy: Duration) -> Result<Connection, String> {
    let c = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    c.busy_timeout(busy)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let _: String = c
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| format!("{}: enable WAL: {e}", path.display()))?;
    c.execute_batch("PRAGMA synchronous = NORMAL")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(c)
}

/// The proxy's store over awxguard's SQLite database.
pub struct SqliteProxyStore {
    path: PathBuf,
    conn: Connection,
    findings: Option<crate::store::Store>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl SqliteProxyStore {
    /// Opens the database (creating the proxy's tables). `busy` bounds how long a write waits
    /// for a lock before the batch spills.
    pub fn open(
        path: &Path,
        busy: Duration,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Result<SqliteProxyStore, String> {
        let findings = crate::store::Store::open(path).map_err(|e| e.to_string())?;
        let conn = open(path, busy)?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| format!("{}: create the proxy tables: {e}", path.display()))?;
        Ok(SqliteProxyStore {
            path: path.to_path_buf(),
            conn,
            findings: Some(findings),
            clock,
        })
    }

    fn err(&self, what: &str) -> impl Fn(rusqlite::Error) -> String + '_ {
        let what = what.to_string();
        move |e| format!("{}: {what}: {e}", self.path.display())
    }
}

/// `sha256` of the event's JSON: the whole event is its identity.
fn event_hash(line: &str) -> String {
    let d = Sha256::digest(line.as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl ProxyStore for SqliteProxyStore {
    fn append_events(&mut self, events: &[UsageEvent]) -> Result<(), String> {
        let path = self.path.clone();
        let e = move |what: &'static str| {
            let path = path.clone();
            move |e: rusqlite::Error| format!("{}: {what}: {e}", path.display())
        };
        let tx = self.conn.transaction().map_err(e("begin"))?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO proxy_usage_events (hash, ts, key, event) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(e("prepare"))?;
            let mut obj = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO proxy_objects (object_id, ts, key, method, path) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(e("prepare"))?;
            for ev in events {
                let line = serde_json::to_string(ev).expect("events serialize");
                ins.execute(params![event_hash(&line), ev.ts, ev.key, line])
                    .map_err(e("insert event"))?;
                for id in &ev.object_ids {
                    obj.execute(params![id, ev.ts, ev.key, ev.method, ev.path])
                        .map_err(e("insert object"))?;
                }
            }
        }
        tx.commit().map_err(e("commit"))
    }

    fn record_findings(&mut self, findings: &mut [Finding]) -> Result<(), String> {
        let now = self.clock.now();
        let store = match &mut self.findings {
            Some(s) => s,
            None => return Err("findings store not open".into()),
        };
        for f in findings.iter_mut() {
            let scope = format!("proxy:{}", f.id);
            store
                .record(&scope, std::slice::from_mut(f), now)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn remember_tokens(&mut self, attributions: &[TokenAttribution]) -> Result<(), String> {
        for a in attributions {
            remember(&self.conn, a).map_err(self.err("remember token"))?;
        }
        Ok(())
    }
}

fn remember(c: &Connection, a: &TokenAttribution) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO proxy_token_attributions \
         (token_fingerprint, key_fingerprint, expires_at, learned_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        a.token_fingerprint,
        a.key_fingerprint,
        ts(a.expires_at),
        ts(a.learned_at)
    ])?;
    // expired attributions are of no use: keep the table small
    c.prepare_cached("DELETE FROM proxy_token_attributions WHERE expires_at < ?1")?
        .execute(params![ts(a.learned_at)])?;
    Ok(())
}

/// The lookups, on their own connection (reads do not wait for the writer in WAL mode).
pub struct SqliteLookup {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteLookup {
    pub fn open(path: &Path, busy: Duration) -> Result<SqliteLookup, String> {
        let conn = open(path, busy)?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| format!("{}: create the proxy tables: {e}", path.display()))?;
        Ok(SqliteLookup {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, what: &'static str) -> impl Fn(rusqlite::Error) -> String + '_ {
        move |e| format!("{}: {what}: {e}", self.path.display())
    }
}

impl ProxyLookup for SqliteLookup {
    fn token(
        &self,
        token_fp: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenAttribution>, String> {
        let c = self.conn();
        let row: Option<(String, String, String)> = c
            .prepare_cached(
                "SELECT key_fingerprint, expires_at, learned_at FROM proxy_token_attributions \
                 WHERE token_fingerprint = ?1",
            )
            .map_err(self.err("prepare token lookup"))?
            .query_row([token_fp], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(self.err("look up token"))?;
        Ok(row.and_then(|(key, exp, learned)| {
            let expires_at = parse_ts(&exp)?;
            (expires_at > now).then(|| TokenAttribution {
                token_fingerprint: token_fp.to_string(),
                key_fingerprint: key,
                expires_at,
                learned_at: parse_ts(&learned).unwrap_or(now),
            })
        }))
    }

    fn remember_token(&self, a: &TokenAttribution) -> Result<(), String> {
        remember(&self.conn(), a).map_err(self.err("remember token"))
    }

    fn object_changed_at(&self, id: &str) -> Result<Option<DateTime<Utc>>, String> {
        let c = self.conn();
        let t: Option<String> = c
            .prepare_cached("SELECT max(ts) FROM proxy_objects WHERE object_id = ?1")
            .map_err(self.err("prepare object lookup"))?
            .query_row([id], |r| r.get(0))
            .map_err(self.err("look up object"))?;
        Ok(t.as_deref().and_then(parse_ts))
    }

    fn acknowledged(&self, id: &str, now: DateTime<Utc>) -> Result<bool, String> {
        let c = self.conn();
        let row: Option<Option<String>> = c
            .prepare_cached("SELECT expires_at FROM acknowledgements WHERE finding_id = ?1")
            .map_err(self.err("prepare acknowledgement lookup"))?
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(self.err("look up acknowledgement"))?;
        Ok(match row {
            None => false,
            Some(None) => true,
            Some(Some(exp)) => parse_ts(&exp).is_none_or(|e| e > now),
        })
    }
}

/// The writer's store, opened on first use and again after a failure to open (a database
/// locked or missing at start-up must not stop the proxy: its events spill meanwhile).
pub struct LazySqliteStore {
    path: PathBuf,
    busy: Duration,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    inner: Option<SqliteProxyStore>,
}

impl LazySqliteStore {
    pub fn new(
        path: &Path,
        busy: Duration,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> LazySqliteStore {
        LazySqliteStore {
            path: path.to_path_buf(),
            busy,
            clock,
            inner: None,
        }
    }

    fn get(&mut self) -> Result<&mut SqliteProxyStore, String> {
        if self.inner.is_none() {
            self.inner = Some(SqliteProxyStore::open(
                &self.path,
                self.busy,
                self.clock.clone(),
            )?);
        }
        Ok(self.inner.as_mut().expect("opened"))
    }
}

impl ProxyStore for LazySqliteStore {
    fn append_events(&mut self, events: &[UsageEvent]) -> Result<(), String> {
        self.get()?.append_events(events)
    }
    fn record_findings(&mut self, findings: &mut [Finding]) -> Result<(), String> {
        self.get()?.record_findings(findings)
    }
    fn remember_tokens(&mut self, attributions: &[TokenAttribution]) -> Result<(), String> {
        self.get()?.remember_tokens(attributions)
    }
}

/// The lookups, opened on first use and again after a failure to open.
pub struct LazySqliteLookup {
    path: PathBuf,
    busy: Duration,
    inner: std::sync::OnceLock<SqliteLookup>,
    opening: Mutex<()>,
}

impl LazySqliteLookup {
    pub fn new(path: &Path, busy: Duration) -> LazySqliteLookup {
        LazySqliteLookup {
            path: path.to_path_buf(),
            busy,
            inner: std::sync::OnceLock::new(),
            opening: Mutex::new(()),
        }
    }

    fn get(&self) -> Result<&SqliteLookup, String> {
        if let Some(l) = self.inner.get() {
            return Ok(l);
        }
        let _g = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = self.inner.get() {
            return Ok(l);
        }
        let l = SqliteLookup::open(&self.path, self.busy)?;
        Ok(self.inner.get_or_init(|| l))
    }
}

impl ProxyLookup for LazySqliteLookup {
    fn token(
        &self,
        token_fp: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenAttribution>, String> {
        self.get()?.token(token_fp, now)
    }
    fn remember_token(&self, a: &TokenAttribution) -> Result<(), String> {
        self.get()?.remember_token(a)
    }
    fn object_changed_at(&self, id: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.get()?.object_changed_at(id)
    }
    fn acknowledged(&self, id: &str, now: DateTime<Utc>) -> Result<bool, String> {
        self.get()?.acknowledged(id, now)
    }
}
