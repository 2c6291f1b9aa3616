//! The usage evidence area (issue 9): raw usage events for the raw retention, and per key the
//! order-free rollups the detectors and the audit read for much longer: hourly buckets (calls,
//! 5-minute sub-buckets, writes, refusals), hourly calls by route, status class, source network
//! and user agent, and the first appearances of every address, agent, route, scope, host,
//! account and status ([`usage_series`](super::usage_series)). Plus the days the evidence covers
//! and, per file source, how far it was read.
//!
//! Appending is one transaction per batch: each event is deduplicated on the whole normalized
//! event (primary key: its time and a stable 64-bit hash of every field), and only new events
//! reach the rollups, so re-reading a file adds nothing. A file's cursor moves in the same
//! transaction as the events read up to it. Every text bound goes through the redaction gate.

mod append;

use super::params;
use super::usage_series::{
    user_agent_family, Access, AttrKind, AttrStats, HourBucket, KeySeries, DAY, HOUR,
};
use super::{SqliteStore, StoreError};
use crate::airwallex::Catalog;
use append::append_prepared_in;
pub use append::{prepare, PreparedBatch};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, Transaction};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// The page cache of a connection that appends usage (KiB, SQLite's negative form): a batch
/// touches every key's newest rollup pages (two tables keyed by key first), about 16 MB for
/// 1,000 keys; with SQLite's default 2 MB those pages are read back from the file and spilled
/// mid-transaction on every batch. The cache only grows as pages are touched.
const APPEND_CACHE_KIB: i64 = 65_536;

/// WAL pages after which a commit of an appending connection copies the WAL back into the
/// database (SQLite's default: 1,000). A batch rewrites every touched key's newest rollup pages;
/// copying back every few batches instead of after each copies those pages once, not each time.
const APPEND_CHECKPOINT: i64 = 16_384;

/// One usage event of the contract, normalized: time in UTC, method upper case, path without
/// its query string. What the file reader and the recording proxy hand the store.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    pub ts: DateTime<Utc>,
    /// The key's inventory name or fingerprint; never the key.
    pub key: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub account_id: Option<String>,
    pub latency_ms: Option<f64>,
    pub host: Option<String>,
    /// `proxy` when awxguard's proxy recorded it.
    pub via: Option<String>,
    /// Objects the call created or changed (recorded by the proxy).
    pub object_ids: Vec<String>,
}

impl UsageEvent {
    /// Recorded by awxguard's proxy (`source_ip` is then an internal client address).
    pub fn via_proxy(&self) -> bool {
        self.via.as_deref() == Some("proxy")
    }

    /// A stable 64-bit hash of the whole normalized event: the same on every run and machine,
    /// so a stored event and the same event read again meet.
    pub fn hash(&self) -> i64 {
        let mut h = Fnv::new();
        h.i64(self.ts.timestamp());
        h.i64(self.ts.timestamp_subsec_nanos() as i64);
        h.str(&self.key);
        h.str(&self.method);
        h.str(&self.path);
        h.i64(self.status as i64);
        for o in [
            &self.source_ip,
            &self.user_agent,
            &self.account_id,
            &self.host,
            &self.via,
        ] {
            h.opt(o.as_deref());
        }
        match self.latency_ms {
            Some(l) => h.i64(l.to_bits() as i64),
            None => h.i64(-1),
        }
        for o in &self.object_ids {
            h.str(o);
        }
        h.finish() as i64
    }

    /// The event as one line of the usage-event contract.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::json!({
            "ts": self.ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "key": self.key,
            "method": self.method,
            "path": self.path,
            "status": self.status,
        });
        let m = o.as_object_mut().expect("object");
        for (k, v) in [
            ("source_ip", &self.source_ip),
            ("user_agent", &self.user_agent),
            ("account_id", &self.account_id),
            ("host", &self.host),
            ("via", &self.via),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        }
        if let Some(l) = self.latency_ms {
            m.insert("latency_ms".into(), l.into());
        }
        if !self.object_ids.is_empty() {
            m.insert("object_ids".into(), self.object_ids.clone().into());
        }
        o
    }
}

/// FNV-1a 64 with a murmur3 finalizer: stable across builds (the std hashers are not promised
/// to be), good enough to tell events apart within one millisecond.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
        self.bytes(&[0xff]);
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.bytes(&[1]);
                self.str(s);
            }
            None => self.bytes(&[0]),
        }
    }
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        z ^ (z >> 33)
    }
}

/// How far a file was read, and how to know it again: its device and inode, and the SHA-256 of
/// its first `head_len` bytes (a file rotated or truncated under the same name has another head
/// or is shorter than the offset; a copy under another name has the same head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCursor {
    /// The path as given (its canonical form when it exists).
    pub source: String,
    pub dev: u64,
    pub ino: u64,
    /// Bytes read: the end of the last whole line.
    pub offset: u64,
    /// Lines read.
    pub lines: u64,
    /// The first 8 bytes of the SHA-256 of the first `head_len` bytes (an integer: a hex digest
    /// would look like a secret to the redaction gate).
    pub head: i64,
    pub head_len: u64,
    /// The file's size when read.
    pub size: u64,
}

/// What appending a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Appended {
    /// Events offered.
    pub events: u64,
    /// Events stored for the first time.
    pub new: u64,
    /// Events the store already held.
    pub duplicates: u64,
    /// Keys of the new events.
    pub keys: BTreeSet<String>,
    /// Time of the oldest and newest new event (Unix seconds).
    pub first: Option<i64>,
    pub last: Option<i64>,
}

/// What pruning removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub raw_events: u64,
    pub hours: u64,
    pub values: u64,
}

/// One key in the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyHoldings {
    pub key: String,
    /// First and last call (Unix seconds).
    pub first: i64,
    pub last: i64,
    /// Calls in the rollups (the whole rollup retention).
    pub events: u64,
    /// Raw events still kept.
    pub raw_events: u64,
    /// Hours with at least one call.
    pub active_hours: u64,
    /// Days between the first and last call without any call of this key, as `(first day,
    /// last day)` ranges (Unix days), longest first, at most ten.
    pub silent: Vec<(i64, i64)>,
}

/// Which raw events a finding's samples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleQuery {
    Any,
    Network { cidr: String, via_proxy: bool },
    UserAgent { family: String },
    Route { route: String },
    Scope { scope: String },
    Errors,
    Writes,
}

/// The usage evidence area.
pub trait UsageRecords {
    /// Appends usage events in one transaction (deduplicated on the whole event; only new events
    /// reach the rollups), mapping each request to its route with `catalog`; with `cursor`, the
    /// file source's cursor moves in the same transaction.
    fn append_usage(
        &self,
        events: &[UsageEvent],
        catalog: &Catalog,
        cursor: Option<&SourceCursor>,
    ) -> Result<Appended, StoreError>;
    /// Appends a batch [`prepare`]d beforehand, on another thread (the same as `append_usage`
    /// of its events; a backend without its own form appends the events).
    fn append_prepared(
        &self,
        batch: &PreparedBatch<'_>,
        catalog: &Catalog,
        cursor: Option<&SourceCursor>,
    ) -> Result<Appended, StoreError> {
        self.append_usage(batch.events(), catalog, cursor)
    }
    /// The cursor of a file source, by path.
    fn usage_cursor(&self, source: &str) -> Result<Option<SourceCursor>, StoreError>;
    /// A cursor of a source whose first bytes hash to `head` over `head_len` bytes (the same
    /// file under another name).
    fn usage_cursor_by_head(
        &self,
        head: i64,
        head_len: u64,
    ) -> Result<Option<SourceCursor>, StoreError>;
    /// The cursor last saved for the file `dev`/`ino` under any name (a file renamed by log
    /// rotation keeps them).
    fn usage_cursor_by_file(&self, dev: u64, ino: u64) -> Result<Option<SourceCursor>, StoreError>;
    /// The newest event stored (retention counts back from it).
    fn usage_newest(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Drops raw events before `raw_before` and rollups before `rollups_before`.
    fn usage_prune(
        &self,
        raw_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError>;
    /// The keys the store holds events of.
    fn usage_key_names(&self) -> Result<Vec<String>, StoreError>;
    /// One key's series (hourly buckets and first appearances); an empty series for a key
    /// without events.
    fn usage_key_series(&self, key: &str) -> Result<KeySeries, StoreError>;
    /// The days (Unix days) with at least one event of any key.
    fn usage_active_days(&self) -> Result<BTreeSet<i64>, StoreError>;
    /// What the store holds per key.
    fn usage_holdings(&self) -> Result<Vec<KeyHoldings>, StoreError>;
    /// Up to `limit` raw events of `key` between `start` and `end` (Unix seconds, end
    /// exclusive) matching `query`, as contract lines, oldest first.
    fn usage_samples(
        &self,
        key: &str,
        start: i64,
        end: i64,
        query: &SampleQuery,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError>;
}

/// `usage_names` kinds.
pub(super) const NAME_AGENT: i64 = 1;
pub(super) const NAME_NETWORK: i64 = 2;

pub(super) fn kind_code(k: AttrKind) -> i64 {
    match k {
        AttrKind::SourceIp => 1,
        AttrKind::ProxyIp => 2,
        AttrKind::UserAgent => 3,
        AttrKind::Route => 4,
        AttrKind::Scope => 5,
        AttrKind::Host => 6,
        AttrKind::Account => 7,
        AttrKind::Status => 8,
    }
}

pub(super) fn kind_of(code: i64) -> Option<AttrKind> {
    Some(match code {
        1 => AttrKind::SourceIp,
        2 => AttrKind::ProxyIp,
        3 => AttrKind::UserAgent,
        4 => AttrKind::Route,
        5 => AttrKind::Scope,
        6 => AttrKind::Host,
        7 => AttrKind::Account,
        8 => AttrKind::Status,
        _ => return None,
    })
}

pub(super) fn access_code(a: Access) -> i64 {
    match a {
        Access::Read => 0,
        Access::Write => 1,
        Access::Sensitive => 2,
    }
}

pub(super) fn access_of(code: i64) -> Access {
    match code {
        1 => Access::Write,
        2 => Access::Sensitive,
        _ => Access::Read,
    }
}

/// The status class of the hourly calls rollup: 401, 403 and 429 on their own, else the
/// hundred (200, 300, 400, 500).
pub fn status_class(status: u16) -> i64 {
    match status {
        401 | 403 | 429 => status as i64,
        s => (s / 100 * 100) as i64,
    }
}

pub(super) fn to_ts(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

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

/// What the store holds of one key: its series and `raw` raw events kept.
pub(super) fn holdings_of(ks: &KeySeries, raw: u64) -> KeyHoldings {
    let days: BTreeSet<i64> = ks
        .hours
        .keys()
        .map(|h| (h * HOUR).div_euclid(DAY))
        .collect();
    let mut silent: Vec<(i64, i64)> = Vec::new();
    let mut prev: Option<i64> = None;
    for d in &days {
        if let Some(p) = prev {
            if d - p > 1 {
                silent.push((p + 1, d - 1));
            }
        }
        prev = Some(*d);
    }
    silent.sort_by_key(|(a, b)| std::cmp::Reverse(b - a));
    silent.truncate(10);
    KeyHoldings {
        key: ks.key.clone(),
        first: ks.first,
        last: ks.last,
        events: ks.events,
        raw_events: raw,
        active_hours: ks.hours.len() as u64,
        silent,
    }
}

/// One raw event as the samples query reads it back (both backends).
pub(super) struct SampleRow {
    pub ts: i64,
    pub route: String,
    pub scope: Option<String>,
    pub access: i64,
    pub path: String,
    pub status: i64,
    pub ip: Option<String>,
    pub agent: Option<String>,
    pub host: Option<String>,
    pub account: Option<String>,
    pub latency: Option<f64>,
    pub via: i64,
    pub objects: Option<String>,
}

/// The sample query every backend runs (`$1`/`?1` start, `$2` end in milliseconds, `$3` key).
pub(super) const SAMPLES_SQL: &str =
    "SELECT e.ts, r.route, r.scope, r.access, e.path, e.status, e.ip, a.name, e.host, \
     e.account, e.latency, e.via, e.objects \
     FROM usage_events e JOIN usage_keys k ON k.id = e.key \
     JOIN usage_routes r ON r.id = e.route \
     LEFT JOIN usage_names a ON a.id = e.agent \
     WHERE e.ts >= $1 AND e.ts < $2 AND k.name = $3 ORDER BY e.ts LIMIT 20000";

/// The contract line of a stored event of `key` when it matches `query` (`cidr`: the query's
/// network, parsed once).
pub(super) fn sample_of(
    key: &str,
    row: SampleRow,
    query: &SampleQuery,
    cidr: Option<ipnet::IpNet>,
) -> Option<serde_json::Value> {
    let access = access_of(row.access);
    let status = row.status as u16;
    let keep = match query {
        SampleQuery::Any => true,
        SampleQuery::Network { via_proxy, .. } => {
            (row.via == 1) == *via_proxy
                && row
                    .ip
                    .as_deref()
                    .and_then(|i| i.parse::<IpAddr>().ok())
                    .is_some_and(|a| cidr.is_some_and(|c| c.contains(&a)))
        }
        SampleQuery::UserAgent { family } => row
            .agent
            .as_deref()
            .is_some_and(|a| user_agent_family(a) == *family || a == family),
        SampleQuery::Route { route: r } => &row.route == r,
        SampleQuery::Scope { scope: sc } => row.scope.as_deref() == Some(sc.as_str()),
        SampleQuery::Errors => matches!(status, 401 | 403 | 429),
        SampleQuery::Writes => access.writes(),
    };
    if !keep {
        return None;
    }
    let method = row.route.split(' ').next().unwrap_or("GET").to_string();
    let e = UsageEvent {
        ts: to_ts(row.ts),
        key: key.to_string(),
        method,
        path: row.path,
        status,
        source_ip: row.ip,
        user_agent: row.agent,
        account_id: row.account,
        latency_ms: row.latency,
        host: row.host,
        via: (row.via == 1).then(|| "proxy".to_string()),
        object_ids: row
            .objects
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default(),
    };
    Some(e.to_json())
}

/// Appends `events` inside `tx` (what `append_usage` does in its transaction; also run by the
/// migration that moves the proxy's interim events into this store). An error names its step.
pub(super) fn append_in(
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
