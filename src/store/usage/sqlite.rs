//! The usage evidence area on SQLite.

use super::append::{append_prepared_in, prepare, PreparedBatch};
use super::codes::kind_of;
use super::samples::{holdings_of, sample_of, SampleRow, SAMPLES_SQL};
use super::{Appended, KeyHoldings, Pruned, SampleQuery, SourceCursor, UsageEvent, UsageRecords};
use crate::airwallex::Catalog;
use crate::store::params;
use crate::store::usage_series::{AttrStats, HourBucket, KeySeries, DAY, HOUR};
use crate::store::{SqliteStore, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, Transaction};
use std::collections::{BTreeSet, HashMap};

/// The page cache of a connection that appends usage (KiB, SQLite's negative form): a batch
/// touches every key's newest rollup pages (two tables keyed by key first), about 16 MB for
/// 1,000 keys; with SQLite's default 2 MB those pages are read back from the file and spilled
/// mid-transaction on every batch. The cache only grows as pages are touched.
const APPEND_CACHE_KIB: i64 = 65_536;

/// WAL pages after which a commit of an appending connection copies the WAL back into the
/// database (SQLite's default: 1,000). A batch rewrites every touched key's newest rollup pages;
/// copying back every few batches instead of after each copies those pages once, not each time.
const APPEND_CHECKPOINT: i64 = 16_384;

impl UsageRecords for SqliteStore {
    fn append_usage(
        &self,
        events: &[UsageEvent],
        catalog: &Catalog,
        cursor: Option<&SourceCursor>,
    ) -> Result<Appended, StoreError> {
        self.append_prepared(&prepare(events, catalog), catalog, cursor)
    }

    fn append_prepared(
        &self,
        batch: &PreparedBatch<'_>,
        _catalog: &Catalog,
        cursor: Option<&SourceCursor>,
    ) -> Result<Appended, StoreError> {
        let mut conn = self.conn();
        conn.pragma_update(None, "cache_size", -APPEND_CACHE_KIB)
            .and_then(|()| conn.pragma_update(None, "wal_autocheckpoint", APPEND_CHECKPOINT))
            .map_err(self.q("size the page cache"))?;
        let tx = conn.transaction().map_err(self.q("begin usage batch"))?;
        let out = append_prepared_in(&tx, batch, cursor).map_err(|(what, e)| self.q(what)(e))?;
        tx.commit().map_err(self.q("commit usage batch"))?;
        Ok(out)
    }

    fn usage_cursor(&self, source: &str) -> Result<Option<SourceCursor>, StoreError> {
        self.conn()
            .prepare_cached(
                "SELECT source, dev, ino, offset, lines, head, head_len, size FROM usage_sources \
                 WHERE source = ?1",
            )
            .and_then(|mut s| s.query_row(params![source], cursor_row).optional())
            .map_err(self.q("read a source cursor"))
    }

    fn usage_cursor_by_head(
        &self,
        head: i64,
        head_len: u64,
    ) -> Result<Option<SourceCursor>, StoreError> {
        self.conn()
            .prepare_cached(
                "SELECT source, dev, ino, offset, lines, head, head_len, size FROM usage_sources \
                 WHERE head = ?1 AND head_len = ?2 ORDER BY offset DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![head, head_len as i64], cursor_row)
                    .optional()
            })
            .map_err(self.q("find a source by its head"))
    }

    fn usage_cursor_by_file(&self, dev: u64, ino: u64) -> Result<Option<SourceCursor>, StoreError> {
        self.conn()
            .prepare_cached(
                "SELECT source, dev, ino, offset, lines, head, head_len, size FROM usage_sources \
                 WHERE dev = ?1 AND ino = ?2 ORDER BY updated DESC, offset DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![dev as i64, ino as i64], cursor_row)
                    .optional()
            })
            .map_err(self.q("find a source by its file"))
    }

    fn usage_newest(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<i64> = self
            .conn()
            .query_row(
                "SELECT value FROM usage_meta WHERE name = 'newest'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.q("read the newest event"))?;
        Ok(v.and_then(|s| Utc.timestamp_opt(s, 0).single()))
    }

    fn usage_prune(
        &self,
        raw_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        let q = |what: &'static str| self.q(what);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(q("begin prune"))?;
        let raw = tx
            .execute(
                "DELETE FROM usage_events WHERE ts < ?1",
                params![raw_before.timestamp_millis()],
            )
            .map_err(q("prune raw events"))? as u64;
        // The rollup tables are keyed by key first: pruning them by time reads them whole. The
        // days table says at once whether any rollup is old enough (every stored event counted
        // its day in the same transaction as its rollups).
        let oldest_day: Option<i64> = tx
            .query_row("SELECT min(day) FROM usage_days", [], |r| r.get(0))
            .map_err(q("read the oldest day"))?;
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
            .execute("DELETE FROM usage_hours WHERE hour < ?1", params![hour])
            .map_err(q("prune hourly rollups"))? as u64;
        tx.execute(
            "DELETE FROM usage_hour_calls WHERE hour < ?1",
            params![hour],
        )
        .map_err(q("prune hourly calls"))?;
        tx.execute(
            "DELETE FROM usage_days WHERE day < ?1",
            params![rollups_before.timestamp().div_euclid(DAY)],
        )
        .map_err(q("prune days"))?;
        // first appearances whose last call is older than the rollups
        let mut stale: Vec<(i64, i64, String)> = Vec::new();
        {
            let mut s = tx
                .prepare("SELECT key, kind, value, stats FROM usage_attrs")
                .map_err(q("read first appearances"))?;
            let rows = s
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .map_err(q("read first appearances"))?;
            for row in rows {
                let (k, kind, v, b) = row.map_err(q("read first appearances"))?;
                if AttrStats::from_bytes(&b).is_some_and(|a| a.last < rollups_before.timestamp()) {
                    stale.push((k, kind, v));
                }
            }
        }
        for (k, kind, v) in &stale {
            tx.execute(
                "DELETE FROM usage_attrs WHERE key = ?1 AND kind = ?2 AND value = ?3",
                params![k, kind, v],
            )
            .map_err(q("prune first appearances"))?;
        }
        tx.commit().map_err(q("commit prune"))?;
        Ok(Pruned {
            raw_events: raw,
            hours,
            values: stale.len() as u64,
        })
    }

    fn usage_key_names(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut s = conn
            .prepare(
                "SELECT name FROM usage_keys WHERE id IN (SELECT DISTINCT key FROM usage_hours) \
                 ORDER BY name",
            )
            .map_err(self.q("list usage keys"))?;
        let names = s
            .query_map([], |r| r.get(0))
            .map_err(self.q("list usage keys"))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(self.q("list usage keys"));
        names
    }

    fn usage_key_series(&self, key: &str) -> Result<KeySeries, StoreError> {
        let q = |what: &'static str| self.q(what);
        let conn = self.conn();
        let mut ks = KeySeries::new(key);
        let Some(id): Option<i64> = conn
            .query_row(
                "SELECT id FROM usage_keys WHERE name = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(q("find a usage key"))?
        else {
            return Ok(ks);
        };
        {
            let mut s = conn
                .prepare_cached("SELECT hour, bucket FROM usage_hours WHERE key = ?1 ORDER BY hour")
                .map_err(q("read hourly rollups"))?;
            let rows = s
                .query_map(params![id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(q("read hourly rollups"))?;
            for row in rows {
                let (hour, b) = row.map_err(q("read hourly rollups"))?;
                if let Some(b) = HourBucket::from_bytes(&b) {
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
            }
        }
        let mut s = conn
            .prepare_cached("SELECT kind, value, stats FROM usage_attrs WHERE key = ?1")
            .map_err(q("read first appearances"))?;
        let rows = s
            .query_map(params![id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(q("read first appearances"))?;
        for row in rows {
            let (kind, value, b) = row.map_err(q("read first appearances"))?;
            if let (Some(kind), Some(a)) = (kind_of(kind), AttrStats::from_bytes(&b)) {
                ks.attrs.entry(kind).or_default().insert(value, a);
            }
        }
        Ok(ks)
    }

    fn usage_active_days(&self) -> Result<BTreeSet<i64>, StoreError> {
        let conn = self.conn();
        let mut s = conn
            .prepare_cached("SELECT day FROM usage_days")
            .map_err(self.q("read covered days"))?;
        let days = s
            .query_map([], |r| r.get(0))
            .map_err(self.q("read covered days"))?
            .collect::<Result<BTreeSet<i64>, _>>()
            .map_err(self.q("read covered days"));
        days
    }

    fn usage_holdings(&self) -> Result<Vec<KeyHoldings>, StoreError> {
        let q = |what: &'static str| self.q(what);
        let names = self.usage_key_names()?;
        let raw: HashMap<String, u64> = {
            let conn = self.conn();
            let mut s = conn
                .prepare(
                    "SELECT k.name, count(*) FROM usage_events e JOIN usage_keys k ON k.id = e.key \
                     GROUP BY e.key",
                )
                .map_err(q("count raw events"))?;
            let rows = s
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(q("count raw events"))?;
            let mut m = HashMap::new();
            for row in rows {
                let (k, n) = row.map_err(q("count raw events"))?;
                m.insert(k, n as u64);
            }
            m
        };
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
        let q = |what: &'static str| self.q(what);
        let conn = self.conn();
        let mut s = conn
            .prepare_cached(&SAMPLES_SQL.replace('$', "?"))
            .map_err(q("read sample events"))?;
        let cidr: Option<ipnet::IpNet> = match query {
            SampleQuery::Network { cidr, .. } => cidr.parse().ok(),
            _ => None,
        };
        let rows = s
            .query_map(params![start * 1000, end * 1000, key], |r| {
                Ok(SampleRow {
                    ts: r.get(0)?,
                    route: r.get(1)?,
                    scope: r.get(2)?,
                    access: r.get(3)?,
                    path: r.get(4)?,
                    status: r.get(5)?,
                    ip: r.get(6)?,
                    agent: r.get(7)?,
                    host: r.get(8)?,
                    account: r.get(9)?,
                    latency: r.get(10)?,
                    via: r.get(11)?,
                    objects: r.get(12)?,
                })
            })
            .map_err(q("read sample events"))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(q("read sample events"))?;
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

/// Appends `events` inside `tx` (what `append_usage` does in its transaction; also run by the
/// migration that moves the proxy's interim events into this store). An error names its step.
pub(in crate::store) fn append_in(
    tx: &Transaction<'_>,
    events: &[UsageEvent],
    catalog: &Catalog,
    cursor: Option<&SourceCursor>,
) -> Result<Appended, (&'static str, rusqlite::Error)> {
    append_prepared_in(tx, &prepare(events, catalog), cursor)
}

fn cursor_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SourceCursor> {
    Ok(SourceCursor {
        source: r.get(0)?,
        dev: r.get::<_, i64>(1)? as u64,
        ino: r.get::<_, i64>(2)? as u64,
        offset: r.get::<_, i64>(3)? as u64,
        lines: r.get::<_, i64>(4)? as u64,
        head: r.get(5)?,
        head_len: r.get::<_, i64>(6)? as u64,
        size: r.get::<_, i64>(7)? as u64,
    })
}
