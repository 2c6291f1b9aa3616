//! The recording proxy's area (issue 10): token attributions (token fingerprint → key
//! fingerprint until the token expires; neither is secret) and the objects proxied calls created
//! or changed (kept past the raw events' retention: the watch joins on them and the money guard
//! reads them). The proxy's usage events themselves go to the usage evidence store
//! ([`usage`](super::usage)), like every other source's; [`move_interim_events`] moves the
//! events older builds kept here (`proxy_usage_events`) into it, as migration step 10.

use super::params;
use super::{SqliteStore, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

/// A login seen by a proxy: the token's fingerprint names the key's until expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAttribution {
    pub token_fingerprint: String,
    pub key_fingerprint: String,
    pub expires_at: DateTime<Utc>,
    pub learned_at: DateTime<Utc>,
}

/// An object a proxied call created or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSighting {
    pub object_id: String,
    /// The event's time (RFC 3339).
    pub ts: String,
    pub key: String,
    pub method: String,
    pub path: String,
}

/// The proxy's area of the store.
pub trait ProxyRecords {
    /// Remembers attributions (replacing one of the same token) and forgets expired ones.
    fn remember_tokens(&self, a: &[TokenAttribution]) -> Result<(), StoreError>;
    /// The attribution of a token fingerprint, unless expired at `now`.
    fn token_attribution(
        &self,
        token_fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenAttribution>, StoreError>;
    /// When a proxied call last created or changed `object_id`.
    fn object_changed_at(&self, object_id: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Remembers the objects proxied calls created or changed (a sighting already stored is
    /// not stored twice).
    fn append_object_sightings(&self, objects: &[ObjectSighting]) -> Result<(), StoreError>;
    /// Every proxied call that created or changed `object_id`, oldest first (the watch's exact
    /// join on object ids).
    fn object_sightings(&self, object_id: &str) -> Result<Vec<ObjectSighting>, StoreError>;
    /// Whether any proxied call has been recorded with an object id.
    fn has_object_sightings(&self) -> Result<bool, StoreError>;
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl SqliteStore {
    /// Sets how long a statement waits for another process's lock before failing (the proxy
    /// keeps it short and spills instead of waiting), and tunes the connection for a writer of
    /// many small batches: a larger page cache, and WAL syncs at checkpoints only
    /// (`synchronous = NORMAL`: a power cut may lose the last batches, never corrupt the file).
    pub fn set_busy_timeout(&self, d: std::time::Duration) -> Result<(), StoreError> {
        let c = self.conn();
        c.busy_timeout(d).map_err(self.q("set busy timeout"))?;
        c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16384;")
            .map_err(self.q("tune connection"))
    }
}

impl ProxyRecords for SqliteStore {
    fn remember_tokens(&self, a: &[TokenAttribution]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin"))?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO proxy_token_attributions \
                     (token_fingerprint, key_fingerprint, expires_at, learned_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(self.q("prepare attribution"))?;
            for x in a {
                put.execute(params![
                    x.token_fingerprint,
                    x.key_fingerprint,
                    ts(x.expires_at),
                    ts(x.learned_at)
                ])
                .map_err(self.q("remember token"))?;
            }
            if let Some(latest) = a.iter().map(|x| x.learned_at).max() {
                tx.prepare_cached("DELETE FROM proxy_token_attributions WHERE expires_at < ?1")
                    .map_err(self.q("prepare expiry"))?
                    .execute([ts(latest)])
                    .map_err(self.q("forget expired tokens"))?;
            }
        }
        tx.commit().map_err(self.q("commit"))
    }

    fn token_attribution(
        &self,
        token_fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenAttribution>, StoreError> {
        let conn = self.conn();
        let row: Option<(String, String, String)> = conn
            .prepare_cached(
                "SELECT key_fingerprint, expires_at, learned_at FROM proxy_token_attributions \
                 WHERE token_fingerprint = ?1",
            )
            .map_err(self.q("prepare token lookup"))?
            .query_row([token_fingerprint], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(self.q("look up token"))?;
        Ok(row.and_then(|(key, exp, learned)| {
            let expires_at = parse(&exp)?;
            (expires_at > now).then(|| TokenAttribution {
                token_fingerprint: token_fingerprint.to_string(),
                key_fingerprint: key,
                expires_at,
                learned_at: parse(&learned).unwrap_or(now),
            })
        }))
    }

    fn object_changed_at(&self, object_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let conn = self.conn();
        let t: Option<String> = conn
            .prepare_cached("SELECT max(ts) FROM proxy_objects WHERE object_id = ?1")
            .map_err(self.q("prepare object lookup"))?
            .query_row([object_id], |r| r.get(0))
            .map_err(self.q("look up object"))?;
        Ok(t.as_deref().and_then(parse))
    }

    fn append_object_sightings(&self, objects: &[ObjectSighting]) -> Result<(), StoreError> {
        if objects.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin"))?;
        {
            let mut obj = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO proxy_objects (object_id, ts, key, method, path) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(self.q("prepare object"))?;
            for o in objects {
                obj.execute(params![o.object_id, o.ts, o.key, o.method, o.path])
                    .map_err(self.q("insert object"))?;
            }
        }
        tx.commit().map_err(self.q("commit"))
    }

    fn object_sightings(&self, object_id: &str) -> Result<Vec<ObjectSighting>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT object_id, ts, key, method, path FROM proxy_objects \
                 WHERE object_id = ?1 ORDER BY ts",
            )
            .map_err(self.q("prepare object sightings"))?;
        let rows = stmt
            .query_map([object_id], |r| {
                Ok(ObjectSighting {
                    object_id: r.get(0)?,
                    ts: r.get(1)?,
                    key: r.get(2)?,
                    method: r.get(3)?,
                    path: r.get(4)?,
                })
            })
            .map_err(self.q("list object sightings"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.q("list object sightings"))
    }

    fn has_object_sightings(&self) -> Result<bool, StoreError> {
        self.conn()
            .query_row("SELECT EXISTS (SELECT 1 FROM proxy_objects)", [], |r| {
                r.get(0)
            })
            .map_err(self.q("count object sightings"))
    }
}

/// An event as builds before migration step 10 kept it in `proxy_usage_events` (one JSON line of
/// the usage-event contract, plus the proxy's `request_id`).
#[derive(serde::Deserialize)]
struct InterimEvent {
    ts: String,
    key: String,
    method: String,
    path: String,
    status: u16,
    #[serde(default)]
    source_ip: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    via: Option<String>,
    #[serde(default)]
    object_ids: Vec<String>,
}

/// Migration step 10: moves the events of the interim table `proxy_usage_events` (if this
/// database has one) into the usage evidence store, with their rollups, in the step's
/// transaction; the step's SQL then drops the table. The interim table told requests apart by
/// their request id: two requests alike in every field the usage store compares (the same
/// microsecond, key, route, status, latency) stay two events, the second a nanosecond later.
/// A row that is not an event (never written by the proxy) is skipped and said in the log.
pub(super) fn move_interim_events(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'proxy_usage_events')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(());
    }
    let catalog = crate::airwallex::Catalog::builtin_ref();
    let mut seen = std::collections::HashSet::new();
    let mut batch = Vec::with_capacity(4096);
    let (mut moved, mut skipped) = (0u64, 0u64);
    let mut stmt = tx.prepare("SELECT id, event FROM proxy_usage_events ORDER BY ts, id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let text: String = row.get(1)?;
        let Some(mut e) = serde_json::from_str::<InterimEvent>(&text)
            .ok()
            .and_then(|e| Some((parse(&e.ts)?, e)))
            .map(|(ts, e)| super::UsageEvent {
                ts,
                key: e.key,
                method: e.method.to_ascii_uppercase(),
                path: e.path.split('?').next().unwrap_or_default().to_string(),
                status: e.status,
                source_ip: e.source_ip,
                user_agent: e.user_agent,
                account_id: e.account_id,
                latency_ms: e.latency_ms,
                host: e.host,
                via: e.via,
                object_ids: e.object_ids,
            })
        else {
            skipped += 1;
            tracing::warn!(row = %crate::redact::scrub(&id), "migration 10: a proxy_usage_events row is not a usage event; skipped");
            continue;
        };
        while !seen.insert((e.ts, e.hash())) {
            e.ts += chrono::Duration::nanoseconds(1);
        }
        batch.push(e);
        if batch.len() == 4096 {
            moved += super::usage::append_in(tx, &batch, catalog, None)
                .map_err(|(_, e)| e)?
                .new;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        moved += super::usage::append_in(tx, &batch, catalog, None)
            .map_err(|(_, e)| e)?
            .new;
    }
    tracing::info!(
        moved,
        skipped,
        "migration 10: the proxy's events are in the usage store"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributions_expire_and_objects_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let now = Utc::now();
        let a = TokenAttribution {
            token_fingerprint: "sha256:aaaa".into(),
            key_fingerprint: "sha256:bbbb".into(),
            expires_at: now + chrono::Duration::minutes(30),
            learned_at: now,
        };
        s.remember_tokens(std::slice::from_ref(&a)).unwrap();
        let got = s.token_attribution("sha256:aaaa", now).unwrap().unwrap();
        assert_eq!(got.key_fingerprint, "sha256:bbbb");
        assert!(s
            .token_attribution("sha256:aaaa", now + chrono::Duration::minutes(31))
            .unwrap()
            .is_none());
        assert!(s.token_attribution("sha256:cccc", now).unwrap().is_none());
        let obj = ObjectSighting {
            object_id: "ben_1".into(),
            ts: "2026-11-20T10:00:00.000Z".into(),
            key: "payvy".into(),
            method: "POST".into(),
            path: "/api/v1/beneficiaries/create".into(),
        };
        s.append_object_sightings(std::slice::from_ref(&obj))
            .unwrap();
        s.append_object_sightings(&[obj]).unwrap();
        let seen = s.object_sightings("ben_1").unwrap();
        assert_eq!((seen.len(), seen[0].key.as_str()), (1, "payvy"));
        assert!(s.object_sightings("ben_2").unwrap().is_empty());
        assert!(s.has_object_sightings().unwrap());
        assert_eq!(
            s.object_changed_at("ben_1").unwrap().unwrap(),
            parse("2026-11-20T10:00:00Z").unwrap()
        );
        assert!(s.object_changed_at("ben_2").unwrap().is_none());
    }

    /// A database an older build wrote (schema 9, the proxy's events in the interim table)
    /// opened by this one: every event is in the usage store with its rollups (two alike
    /// requests stay two), the table is gone.
    #[test]
    fn migration_10_moves_the_interim_events_into_the_usage_store() {
        use crate::store::UsageRecords;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            for m in &crate::store::migrations::MIGRATIONS[..9] {
                c.execute_batch(m.sql).unwrap();
            }
            c.execute_batch(
                "PRAGMA user_version = 9;
                 CREATE TABLE proxy_usage_events (id TEXT PRIMARY KEY, ts TEXT NOT NULL,
                     key TEXT NOT NULL, event TEXT NOT NULL) STRICT, WITHOUT ROWID;",
            )
            .unwrap();
            let ev = |ts: &str, path: &str, status: u16, rid: &str| {
                serde_json::json!({"ts": ts, "key": "payvy", "method": "GET", "path": path,
                    "status": status, "source_ip": "127.0.0.1", "latency_ms": 1.25,
                    "via": "proxy", "request_id": rid})
                .to_string()
            };
            let rows = [
                (
                    "r-1",
                    "2026-11-20T10:00:00.000001Z",
                    ev(
                        "2026-11-20T10:00:00.000001Z",
                        "/api/v1/transfers",
                        200,
                        "r-1",
                    ),
                ),
                // alike in every field but the request id
                (
                    "r-2",
                    "2026-11-20T10:00:00.000001Z",
                    ev(
                        "2026-11-20T10:00:00.000001Z",
                        "/api/v1/transfers",
                        200,
                        "r-2",
                    ),
                ),
                (
                    "r-3",
                    "2026-11-20T11:30:00.000000Z",
                    ev(
                        "2026-11-20T11:30:00.000000Z",
                        "/api/v1/balances/current",
                        403,
                        "r-3",
                    ),
                ),
                (
                    "r-4",
                    "2026-11-20T11:31:00.000000Z",
                    "not an event".to_string(),
                ),
            ];
            for (id, ts, e) in rows {
                c.execute(
                    "INSERT INTO proxy_usage_events (id, ts, key, event) VALUES (?1, ?2, 'payvy', ?3)",
                    rusqlite::params![id, ts, e],
                )
                .unwrap();
            }
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), 10);
        let gone: bool = s
            .conn()
            .query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'proxy_usage_events')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(gone);
        let h = s.usage_holdings().unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(
            (h[0].key.as_str(), h[0].events, h[0].raw_events),
            ("payvy", 3, 3)
        );
        let raw = s
            .usage_samples(
                "payvy",
                0,
                i64::MAX / 1000,
                &crate::store::SampleQuery::Any,
                10,
            )
            .unwrap();
        assert_eq!(raw.len(), 3);
        assert!(raw.iter().all(|e| e["via"] == "proxy"));
        assert_eq!(raw[2]["status"], 403);
        // the rollups the detectors read have them too
        let ks = s.usage_key_series("payvy").unwrap();
        let calls: Vec<(i64, u32, u32)> = ks
            .hours
            .iter()
            .map(|(h, b)| (*h, b.calls, b.denied))
            .collect();
        let h10 = parse("2026-11-20T10:00:00Z").unwrap().timestamp() / 3600;
        assert_eq!(calls, [(h10, 2, 0), (h10 + 1, 1, 1)]);
        // opening again changes nothing
        drop(s);
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.usage_holdings().unwrap()[0].events, 3);
    }
}
