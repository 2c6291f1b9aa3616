//! The recording proxy's area (issue 10): token attributions (token fingerprint → key
//! fingerprint until the token expires; neither is secret) and the objects proxied calls created
//! or changed. Until the usage evidence store (issue 9) offers its event-append call, the proxy's
//! usage events also land here, in `proxy_usage_events` (created on first use, not part of the
//! migrations, deduplicated on the whole event).

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

/// One usage event as the proxy stores it until issue 9's store takes events.
#[derive(Debug, Clone)]
pub struct ProxyEventRow {
    /// Unique per request (the proxy's `request_id`): the same event read back from a spill
    /// file is not stored twice. Increasing within a proxy run, so inserts append.
    pub id: String,
    pub ts: String,
    pub key: String,
    /// The event as one JSON line of the usage-event contract.
    pub json: String,
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
    /// Appends usage events and the objects they name, in one transaction; an event already
    /// stored (the same JSON) is not stored twice.
    fn append_proxy_events(
        &self,
        events: &[ProxyEventRow],
        objects: &[ObjectSighting],
    ) -> Result<(), StoreError>;
    /// The stored proxy events (JSON lines), oldest first.
    fn proxy_events(&self) -> Result<Vec<String>, StoreError>;
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

const EVENTS_TABLE: &str = "CREATE TABLE IF NOT EXISTS proxy_usage_events (
    id     TEXT PRIMARY KEY,
    ts     TEXT NOT NULL,
    key    TEXT NOT NULL,
    event  TEXT NOT NULL
) STRICT, WITHOUT ROWID;";

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

    fn append_proxy_events(
        &self,
        events: &[ProxyEventRow],
        objects: &[ObjectSighting],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin"))?;
        {
            let mut ins = match tx.prepare_cached(
                "INSERT OR IGNORE INTO proxy_usage_events (id, ts, key, event) VALUES (?1, ?2, ?3, ?4)",
            ) {
                Ok(s) => s,
                Err(_) => {
                    tx.execute_batch(EVENTS_TABLE)
                        .map_err(self.q("create proxy_usage_events"))?;
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO proxy_usage_events (id, ts, key, event) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(self.q("prepare event"))?
                }
            };
            for e in events {
                ins.execute(params![e.id, e.ts, e.key, e.json])
                    .map_err(self.q("insert event"))?;
            }
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

    fn proxy_events(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let Ok(mut s) = conn.prepare_cached("SELECT event FROM proxy_usage_events ORDER BY ts")
        else {
            return Ok(Vec::new());
        };
        let rows = s
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.q("list proxy events"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.q("list proxy events"))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributions_expire_and_events_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        for s in crate::store::tests::backends(dir.path(), "proxy") {
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
            let row = ProxyEventRow {
                id: "r1-000000000001".into(),
                ts: "2026-11-20T10:00:00.000Z".into(),
                key: "payvy".into(),
                json: "{\"ts\":\"2026-11-20T10:00:00.000Z\"}".into(),
            };
            let obj = ObjectSighting {
                object_id: "ben_1".into(),
                ts: row.ts.clone(),
                key: "payvy".into(),
                method: "POST".into(),
                path: "/api/v1/beneficiaries/create".into(),
            };
            s.append_proxy_events(std::slice::from_ref(&row), std::slice::from_ref(&obj))
                .unwrap();
            s.append_proxy_events(&[row], &[obj]).unwrap();
            assert_eq!(s.proxy_events().unwrap().len(), 1);
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
    }
}
