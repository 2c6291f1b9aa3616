//! The recording proxy's records on PostgreSQL: token attributions shared by every proxy and
//! the objects proxied calls created or changed (its events go to the usage evidence store). As
//! `store/proxy.rs`.

use super::{pg_params, PgStore};
use crate::store::proxy::{ObjectSighting, ProxyRecords, TokenAttribution};
use crate::store::StoreError;
use chrono::{DateTime, Utc};

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl ProxyRecords for PgStore {
    fn remember_tokens(&self, a: &[TokenAttribution]) -> Result<(), StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin"))?;
            let put = tx
                .prepare(
                    "INSERT INTO proxy_token_attributions \
                     (token_fingerprint, key_fingerprint, expires_at, learned_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (token_fingerprint) DO UPDATE SET \
                     key_fingerprint = excluded.key_fingerprint, \
                     expires_at = excluded.expires_at, learned_at = excluded.learned_at",
                )
                .map_err(q("prepare attribution"))?;
            for x in a {
                tx.execute(
                    &put,
                    pg_params![
                        x.token_fingerprint,
                        x.key_fingerprint,
                        ts(x.expires_at),
                        ts(x.learned_at)
                    ],
                )
                .map_err(q("remember token"))?;
            }
            if let Some(latest) = a.iter().map(|x| x.learned_at).max() {
                tx.execute(
                    "DELETE FROM proxy_token_attributions WHERE expires_at < $1",
                    pg_params![ts(latest)],
                )
                .map_err(q("forget expired tokens"))?;
            }
            tx.commit().map_err(q("commit"))
        })
    }

    fn token_attribution(
        &self,
        token_fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenAttribution>, StoreError> {
        let row = self.run(|c| {
            c.query_opt(
                "SELECT key_fingerprint, expires_at, learned_at FROM proxy_token_attributions \
                 WHERE token_fingerprint = $1",
                pg_params![token_fingerprint],
            )
            .map_err(self.q("look up token"))
        })?;
        Ok(row.and_then(|r| {
            let expires_at = parse(r.get(1))?;
            (expires_at > now).then(|| TokenAttribution {
                token_fingerprint: token_fingerprint.to_string(),
                key_fingerprint: r.get(0),
                expires_at,
                learned_at: parse(r.get(2)).unwrap_or(now),
            })
        }))
    }

    fn object_changed_at(&self, object_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<String> = self.run(|c| {
            c.query_one(
                "SELECT max(ts) FROM proxy_objects WHERE object_id = $1",
                pg_params![object_id],
            )
            .map(|r| r.get(0))
            .map_err(self.q("look up object"))
        })?;
        Ok(t.as_deref().and_then(parse))
    }

    fn append_object_sightings(&self, objects: &[ObjectSighting]) -> Result<(), StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin"))?;
            let obj = tx
                .prepare(
                    "INSERT INTO proxy_objects (object_id, ts, key, method, path) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .map_err(q("prepare object"))?;
            for o in objects {
                tx.execute(&obj, pg_params![o.object_id, o.ts, o.key, o.method, o.path])
                    .map_err(q("insert object"))?;
            }
            tx.commit().map_err(q("commit"))
        })
    }

    fn object_sightings(&self, object_id: &str) -> Result<Vec<ObjectSighting>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                "SELECT object_id, ts, key, method, path FROM proxy_objects \
                 WHERE object_id = $1 ORDER BY ts",
                pg_params![object_id],
            )
            .map_err(self.q("list object sightings"))
        })?;
        Ok(rows
            .iter()
            .map(|r| ObjectSighting {
                object_id: r.get(0),
                ts: r.get(1),
                key: r.get(2),
                method: r.get(3),
                path: r.get(4),
            })
            .collect())
    }

    fn has_object_sightings(&self) -> Result<bool, StoreError> {
        self.run(|c| {
            c.query_one("SELECT EXISTS (SELECT 1 FROM proxy_objects)", &[])
                .map(|r| r.get(0))
                .map_err(self.q("count object sightings"))
        })
    }
}
