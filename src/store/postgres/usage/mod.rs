//! The usage evidence area on PostgreSQL: the tables and meaning of `store/usage.rs`, made for
//! several writers at once (proxies on several hosts, ingest jobs of two daemons).
//!
//! A batch is one transaction of a few statements, whatever its size: the names it needs
//! (keys, routes, agents, networks) are made with `INSERT .. ON CONFLICT DO NOTHING` and read
//! back; its events go in with one `INSERT .. SELECT FROM unnest(..) ON CONFLICT DO NOTHING
//! RETURNING`, so an event another writer stored first (or the same event twice in the batch)
//! is a duplicate and only new events reach the rollups. The encoded rollups (hourly buckets,
//! first appearances) are read `FOR UPDATE`, merged and written back, rows taken in key order;
//! counters are added in the statement (`calls = calls + excluded.calls`). A batch that meets a
//! deadlock or serialization failure is run again whole. Texts are bound through the redaction
//! gate (arrays element by element).

mod append;
mod rollups;

use super::{pg_params, retryable, PgStore};
use crate::airwallex::Catalog;
use crate::redact::scrub;
use crate::store::usage::{
    holdings_of, kind_of, sample_of, Appended, KeyHoldings, Pruned, SampleQuery, SampleRow,
    SourceCursor, UsageEvent, UsageRecords, SAMPLES_SQL,
};
use crate::store::usage_series::{AttrStats, HourBucket, KeySeries, DAY, HOUR};
use crate::store::StoreError;
use append::prepare;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::{BTreeSet, HashMap};

/// How often a batch that met a deadlock or serialization failure is tried again.
const ATTEMPTS: u32 = 6;

fn clean(s: &str) -> String {
    scrub(s).into_owned()
}

fn clean_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(clean)
}

impl UsageRecords for PgStore {
    fn append_usage(
        &self,
        events: &[UsageEvent],
        catalog: &Catalog,
        cursor: Option<&SourceCursor>,
    ) -> Result<Appended, StoreError> {
        let prepared = prepare(events, catalog);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.append_once(events, &prepared, cursor) {
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    tracing::debug!(db = %self.shown(), attempt, "usage batch retried: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
                }
                r => return r,
            }
        }
    }

    fn usage_cursor(&self, source: &str) -> Result<Option<SourceCursor>, StoreError> {
        let row = self.run(|c| {
            c.query_opt(
                "SELECT source, dev, ino, \"offset\", lines, head, head_len, size \
                 FROM usage_sources WHERE source = $1",
                pg_params![source],
            )
            .map_err(self.q("read a source cursor"))
        })?;
        Ok(row.map(|r| cursor_of(&r)))
    }

    fn usage_cursor_by_head(
        &self,
        head: i64,
        head_len: u64,
    ) -> Result<Option<SourceCursor>, StoreError> {
        let row = self.run(|c| {
            c.query_opt(
                "SELECT source, dev, ino, \"offset\", lines, head, head_len, size \
                 FROM usage_sources WHERE head = $1 AND head_len = $2 \
                 ORDER BY \"offset\" DESC LIMIT 1",
                pg_params![head, head_len as i64],
            )
            .map_err(self.q("find a source by its head"))
        })?;
        Ok(row.map(|r| cursor_of(&r)))
    }

    fn usage_cursor_by_file(&self, dev: u64, ino: u64) -> Result<Option<SourceCursor>, StoreError> {
        let row = self.run(|c| {
            c.query_opt(
                "SELECT source, dev, ino, \"offset\", lines, head, head_len, size \
                 FROM usage_sources WHERE dev = $1 AND ino = $2 \
                 ORDER BY updated DESC, \"offset\" DESC LIMIT 1",
                pg_params![dev as i64, ino as i64],
            )
            .map_err(self.q("find a source by its file"))
        })?;
        Ok(row.map(|r| cursor_of(&r)))
    }

    fn usage_newest(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<i64> = self.run(|c| {
            c.query_opt("SELECT value FROM usage_meta WHERE name = 'newest'", &[])
                .map(|r| r.map(|r| r.get(0)))
                .map_err(self.q("read the newest event"))
        })?;
        Ok(v.and_then(|s| Utc.timestamp_opt(s, 0).single()))
    }

    fn usage_prune(
        &self,
        raw_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin prune"))?;
            let raw = tx
                .execute(
                    "DELETE FROM usage_events WHERE ts < $1",
                    &[&raw_before.timestamp_millis()],
                )
                .map_err(q("prune raw events"))?;
            // as on SQLite: the rollup tables are read whole by a prune by time, so the oldest
            // day (a primary key) says first whether any rollup is old enough
            let oldest_day: Option<i64> = tx
                .query_one("SELECT min(day) FROM usage_days", &[])
                .map_err(q("read the oldest day"))?
                .get(0);
            if oldest_day.is_none_or(|d| d * DAY >= rollups_before.timestamp()) {
                tx.commit().map_err(q("commit prune"))?;
                return Ok(Pruned {
                    raw_events: raw,
                    hours: 0,
                    values: 0,
                });
            }
            let hour = rollups_before.timestamp().div_euclid(HOUR);
            let hours = tx
                .execute("DELETE FROM usage_hours WHERE hour < $1", &[&hour])
                .map_err(q("prune hourly rollups"))?;
            tx.execute("DELETE FROM usage_hour_calls WHERE hour < $1", &[&hour])
                .map_err(q("prune hourly calls"))?;
            tx.execute(
                "DELETE FROM usage_days WHERE day < $1",
                &[&rollups_before.timestamp().div_euclid(DAY)],
            )
            .map_err(q("prune days"))?;
            // first appearances whose last call is older than the rollups
            let (mut keys, mut kinds, mut values) = (Vec::new(), Vec::new(), Vec::new());
            for r in tx
                .query("SELECT key, kind, value, stats FROM usage_attrs", &[])
                .map_err(q("read first appearances"))?
            {
                let b: Vec<u8> = r.get(3);
                if AttrStats::from_bytes(&b).is_some_and(|a| a.last < rollups_before.timestamp()) {
                    keys.push(r.get::<_, i64>(0));
                    kinds.push(r.get::<_, i64>(1));
                    values.push(r.get::<_, String>(2));
                }
            }
            if !keys.is_empty() {
                tx.execute(
                    "DELETE FROM usage_attrs a USING unnest($1::bigint[], $2::bigint[], \
                     $3::text[]) u(k, kd, v) WHERE a.key = u.k AND a.kind = u.kd AND a.value = u.v",
                    &[&keys, &kinds, &values],
                )
                .map_err(q("prune first appearances"))?;
            }
            tx.commit().map_err(q("commit prune"))?;
            Ok(Pruned {
                raw_events: raw,
                hours,
                values: keys.len() as u64,
            })
        })
    }

    fn usage_key_names(&self) -> Result<Vec<String>, StoreError> {
        self.run(|c| {
            Ok(c.query(
                "SELECT name FROM usage_keys WHERE id IN (SELECT DISTINCT key FROM usage_hours) \
                 ORDER BY name",
                &[],
            )
            .map_err(self.q("list usage keys"))?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn usage_key_series(&self, key: &str) -> Result<KeySeries, StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let mut ks = KeySeries::new(key);
            let Some(id): Option<i64> = c
                .query_opt("SELECT id FROM usage_keys WHERE name = $1", pg_params![key])
                .map_err(q("find a usage key"))?
                .map(|r| r.get(0))
            else {
                return Ok(ks);
            };
            for r in c
                .query(
                    "SELECT hour, bucket FROM usage_hours WHERE key = $1 ORDER BY hour",
                    &[&id],
                )
                .map_err(q("read hourly rollups"))?
            {
                let hour: i64 = r.get(0);
                let Some(b) = HourBucket::from_bytes(r.get::<_, &[u8]>(1)) else {
                    continue;
                };
                if b.calls == 0 {
                    continue;
                }
                if ks.events == 0 {
                    ks.first = hour * HOUR + b.first as i64;
                }
                ks.last = hour * HOUR + b.last as i64;
                ks.events += b.calls as u64;
                ks.hours.insert(hour, b);
            }
            for r in c
                .query(
                    "SELECT kind, value, stats FROM usage_attrs WHERE key = $1",
                    &[&id],
                )
                .map_err(q("read first appearances"))?
            {
                if let (Some(kind), Some(a)) = (
                    kind_of(r.get(0)),
                    AttrStats::from_bytes(r.get::<_, &[u8]>(2)),
                ) {
                    ks.attrs.entry(kind).or_default().insert(r.get(1), a);
                }
            }
            Ok(ks)
        })
    }

    fn usage_active_days(&self) -> Result<BTreeSet<i64>, StoreError> {
        self.run(|c| {
            Ok(c.query("SELECT day FROM usage_days", &[])
                .map_err(self.q("read covered days"))?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn usage_holdings(&self) -> Result<Vec<KeyHoldings>, StoreError> {
        let names = self.usage_key_names()?;
        let raw: HashMap<String, u64> = self.run(|c| {
            Ok(c.query(
                "SELECT k.name, count(*) FROM usage_events e JOIN usage_keys k ON k.id = e.key \
                 GROUP BY k.name",
                &[],
            )
            .map_err(self.q("count raw events"))?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect())
        })?;
        names
            .into_iter()
            .map(|name| {
                let raw = raw.get(&name).copied().unwrap_or(0);
                Ok(holdings_of(&self.usage_key_series(&name)?, raw))
            })
            .collect()
    }

    fn usage_samples(
        &self,
        key: &str,
        start: i64,
        end: i64,
        query: &SampleQuery,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = self.run(|c| {
            c.query(SAMPLES_SQL, pg_params![start * 1000, end * 1000, key])
                .map_err(self.q("read sample events"))
        })?;
        let cidr: Option<ipnet::IpNet> = match query {
            SampleQuery::Network { cidr, .. } => cidr.parse().ok(),
            _ => None,
        };
        let mut out = Vec::new();
        for r in rows {
            let row = SampleRow {
                ts: r.get(0),
                route: r.get(1),
                scope: r.get(2),
                access: r.get(3),
                path: r.get(4),
                status: r.get(5),
                ip: r.get(6),
                agent: r.get(7),
                host: r.get(8),
                account: r.get(9),
                latency: r.get(10),
                via: r.get(11),
                objects: r.get(12),
            };
            if let Some(v) = sample_of(key, row, query, cidr) {
                out.push(v);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

fn cursor_of(r: &postgres::Row) -> SourceCursor {
    SourceCursor {
        source: r.get(0),
        dev: r.get::<_, i64>(1) as u64,
        ino: r.get::<_, i64>(2) as u64,
        offset: r.get::<_, i64>(3) as u64,
        lines: r.get::<_, i64>(4) as u64,
        head: r.get(5),
        head_len: r.get::<_, i64>(6) as u64,
        size: r.get::<_, i64>(7) as u64,
    }
}
