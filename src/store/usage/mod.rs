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
//!
//! The types and the [`UsageRecords`] trait are here; the SQLite implementation in `sqlite`,
//! its batch append in `append`, the codes both backends store in `codes`, and what both
//! backends read back as holdings and samples in `samples`.

mod append;
mod codes;
mod samples;
mod sqlite;

use super::usage_series::KeySeries;
use super::StoreError;
use crate::airwallex::Catalog;
pub use append::{prepare, PreparedBatch};
use chrono::{DateTime, Utc};
pub use codes::status_class;
pub(super) use codes::{access_code, kind_code, kind_of, NAME_AGENT, NAME_NETWORK};
pub(super) use samples::{holdings_of, sample_of, SampleRow, SAMPLES_SQL};
pub(super) use sqlite::append_in;
use std::collections::BTreeSet;

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
