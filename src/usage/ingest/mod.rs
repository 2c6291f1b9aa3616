//! Reading usage events (the JSON Lines usage-event contract) into per-key evidence.
//!
//! Inputs: files (any name), directories (every `*.jsonl`, `*.ndjson`, `*.json` and `*.log`
//! file below them, recursively, hidden entries skipped, in name order) and `-` for standard
//! input. Files are read in parallel, each streamed line by line into a reused buffer and parsed
//! into a borrowed event (no allocation per line for plain strings). Each event is normalized
//! (time in UTC, method upper case, query string dropped) and hashed; a shared set of hashes
//! drops events already seen, in this run, from any source: reading the same file twice counts
//! nothing twice. A bad line is rejected with `file:line: what is wrong`, counted, and the lines
//! around it are still read.
//!
//! Here: the public readers and the per-source aggregates; one event checked, deduplicated and
//! added in `event`; the sources' aggregates merged into per-key evidence in `merge`.

mod blocks;
use blocks::{read_chunk, read_lines, read_source};
mod event;
mod files;
mod merge;
mod parse;

use event::ingest_event;
pub(crate) use files::open_events;
pub use files::{inputs, Input, EVENT_FILE_EXTENSIONS};
use merge::merge;
use parse::{check, opt, Checked, RawEvent};
pub use parse::{looks_like_raw_key, parse_line, parse_ts};

use super::evidence::Evidence;
use super::screen::{Screen, Screened};
use super::UsageError;
use crate::airwallex::Catalog;
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::path::PathBuf;
use std::sync::Mutex;

/// At most this many rejected-line messages are kept; the count stays exact.
pub const MAX_PROBLEMS: usize = 100;

const SHARDS: usize = 64;

use crate::airwallex::model::catalog::FxBuild;

type FxMap<K, V> = HashMap<K, V, FxBuild>;

pub use crate::store::usage_series::unknown_template;

#[derive(Debug, Default)]
struct RouteAgg<'c> {
    scope: Option<&'c str>,
    count: u64,
    ok: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl RouteAgg<'_> {
    fn add(&mut self, ts: DateTime<Utc>, ok: bool) {
        self.count += 1;
        if ok {
            self.ok += 1;
        }
        self.first = min_t(self.first, ts);
        self.last = max_t(self.last, ts);
    }
}

/// One key's events in one source. Known routes and scopes borrow from the catalog.
#[derive(Debug, Default)]
struct KeyAgg<'c> {
    events: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    /// Keyed by the catalog template (`GET /api/v1/transfers/{id}`).
    routes: FxMap<&'c str, RouteAgg<'c>>,
    /// Routes the catalog does not know, keyed by `METHOD /path/{id}`.
    unknown: FxMap<String, RouteAgg<'c>>,
    scopes: FxMap<&'c str, DateTime<Utc>>,
    ips: FxMap<String, u64>,
    agents: FxMap<String, u64>,
    hosts: FxMap<String, u64>,
    accounts: FxMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
}

impl<'c> RouteAgg<'c> {
    fn absorb(&mut self, o: RouteAgg<'c>) {
        self.scope = self.scope.or(o.scope);
        self.count += o.count;
        self.ok += o.ok;
        if let Some(f) = o.first {
            self.first = min_t(self.first, f);
        }
        if let Some(l) = o.last {
            self.last = max_t(self.last, l);
        }
    }
}

fn absorb_counts(into: &mut FxMap<String, u64>, from: FxMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}

impl<'c> KeyAgg<'c> {
    fn absorb(&mut self, o: KeyAgg<'c>) {
        self.events += o.events;
        if let Some(f) = o.first {
            self.first = min_t(self.first, f);
        }
        if let Some(l) = o.last {
            self.last = max_t(self.last, l);
        }
        for (k, r) in o.routes {
            self.routes.entry(k).or_default().absorb(r);
        }
        for (k, r) in o.unknown {
            self.unknown.entry(k).or_default().absorb(r);
        }
        for (k, t) in o.scopes {
            let e = self.scopes.entry(k).or_insert(t);
            *e = (*e).max(t);
        }
        absorb_counts(&mut self.ips, o.ips);
        absorb_counts(&mut self.agents, o.agents);
        absorb_counts(&mut self.hosts, o.hosts);
        absorb_counts(&mut self.accounts, o.accounts);
        for (s, n) in o.statuses {
            *self.statuses.entry(s).or_insert(0) += n;
        }
    }
}

fn bump(m: &mut FxMap<String, u64>, k: &str) {
    match m.get_mut(k) {
        Some(v) => *v += 1,
        None => {
            m.insert(k.to_string(), 1);
        }
    }
}

fn min_t(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn max_t(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(a.map_or(b, |a| a.max(b)))
}

/// What one source yielded.
#[derive(Debug, Default)]
struct Partial<'c> {
    name: String,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    /// Valid events in the source, duplicates included (the source covers them).
    valid: u64,
    duplicates: u64,
    rejected: u64,
    problems: Vec<String>,
    keys: FxMap<String, KeyAgg<'c>>,
    /// What is not evidence of need (`screen`), kept out of `keys`.
    screen: Option<&'c Screen>,
    screened: FxMap<String, Screened>,
}

impl<'c> Partial<'c> {
    /// Adds what a later part of the same source yielded.
    fn absorb(&mut self, other: Partial<'c>) {
        self.valid += other.valid;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        for m in other.problems {
            if self.problems.len() < MAX_PROBLEMS {
                self.problems.push(m);
            }
        }
        if let Some(f) = other.first {
            self.first = min_t(self.first, f);
        }
        if let Some(l) = other.last {
            self.last = max_t(self.last, l);
        }
        for (k, agg) in other.keys {
            match self.keys.get_mut(&k) {
                Some(mine) => mine.absorb(agg),
                None => {
                    self.keys.insert(k, agg);
                }
            }
        }
        for (k, s) in other.screened {
            self.screened.entry(k).or_default().absorb(&s);
        }
    }

    fn reject(&mut self, line: u64, msg: String) {
        self.rejected += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("{}:{line}: {msg}", self.name));
        }
    }
}

/// The run-wide set of event hashes (sharded to keep threads apart).
struct Seen {
    shards: Vec<Mutex<HashSet<u128, FxBuild>>>,
    /// SipHash with a random key: the half an input cannot aim at.
    a: RandomState,
    /// Events dated after this (now plus the allowed clock skew) are rejected.
    not_after: Option<DateTime<Utc>>,
}

impl Seen {
    fn new(expected_events: usize) -> Seen {
        let per_shard = expected_events / SHARDS;
        Seen {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(HashSet::with_capacity_and_hasher(
                        per_shard,
                        FxBuild::default(),
                    ))
                })
                .collect(),
            a: RandomState::new(),
            not_after: None,
        }
    }

    /// True the first time an event with this hash is offered.
    fn first_time(&self, ev: &Normalized<'_>) -> bool {
        let h = ((self.a.hash_one(ev) as u128) << 64) | FxBuild::default().hash_one(ev) as u128;
        let shard = ((h >> 64) as usize) % SHARDS;
        self.shards[shard]
            .lock()
            .expect("dedup set poisoned")
            .insert(h)
    }
}

/// The whole event after normalization: what makes two lines the same event.
#[derive(Hash)]
struct Normalized<'a> {
    ts: i64,
    ts_nanos: u32,
    key: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    source_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    account_id: Option<&'a str>,
    latency_bits: Option<u64>,
    host: Option<&'a str>,
    via: Option<&'a str>,
}

/// Reads every input and aggregates the events per key (see the module comment).
pub fn read(paths: &[PathBuf], catalog: &Catalog) -> Result<Evidence, UsageError> {
    read_screened(paths, catalog, None)
}

/// `read`, with the calls `screen` says are not evidence of need kept out of each key's usage
/// and aside in `Evidence::screened`.
pub fn read_screened(
    paths: &[PathBuf],
    catalog: &Catalog,
    screen: Option<&Screen>,
) -> Result<Evidence, UsageError> {
    read_screened_until(paths, catalog, screen, None)
}

/// `read_screened`, rejecting events dated after `not_after` (now plus the allowed clock
/// skew): an event from the future is a broken clock or a forgery, and would distort every
/// window.
pub fn read_screened_until(
    paths: &[PathBuf],
    catalog: &Catalog,
    screen: Option<&Screen>,
    not_after: Option<DateTime<Utc>>,
) -> Result<Evidence, UsageError> {
    let inputs = inputs(paths)?;
    // about 200 bytes an event: size the dedup set once instead of growing it (by the bytes
    // the files really hold: a sparse giant reserves nothing, and 4 million events at most)
    let bytes: u64 = inputs
        .iter()
        .filter_map(|i| match i {
            Input::File(p) => std::fs::metadata(p).ok().map(|m| {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::MetadataExt;
                    m.len().min(m.blocks().saturating_mul(512))
                }
                #[cfg(not(unix))]
                m.len()
            }),
            Input::Stdin => None,
        })
        .sum();
    let mut seen = Seen::new((bytes / 200).min(4_000_000) as usize);
    seen.not_after = not_after;
    let partials: Vec<Partial> = inputs
        .par_iter()
        .map(|i| read_source(i, catalog, screen, &seen))
        .collect::<Result<_, _>>()?;
    Ok(merge(partials))
}

/// Aggregates events fed one line at a time (a recording proxy, a tailed log) into the same
/// evidence the file reader gives, with the same checks, dedup and messages.
pub struct Collector<'c> {
    catalog: &'c Catalog,
    seen: Seen,
    partial: Partial<'c>,
    line_no: u64,
}

impl<'c> Collector<'c> {
    /// A collector for one source, named `name` in messages.
    pub fn new(name: &str, catalog: &'c Catalog) -> Collector<'c> {
        Collector {
            catalog,
            seen: Seen::new(0),
            partial: Partial {
                name: name.to_string(),
                ..Partial::default()
            },
            line_no: 0,
        }
    }

    /// Adds one line (a newline inside it starts another line); a bad line is counted and
    /// reported, not an error.
    pub fn push_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        for piece in line.split(|&b| b == b'\n') {
            self.line_no += 1;
            read_chunk(
                piece,
                self.line_no - 1,
                &mut self.partial,
                self.catalog,
                &self.seen,
            );
        }
    }

    /// The evidence so far.
    pub fn finish(self) -> Evidence {
        merge(vec![self.partial])
    }
}

/// Reads events from text in memory (rule examples, tests), named `name` in messages.
pub fn read_text(name: &str, text: &str, catalog: &Catalog) -> Evidence {
    read_text_screened(name, text, catalog, None)
}

/// `read_text` through a screen (see `read_screened`).
pub fn read_text_screened(
    name: &str,
    text: &str,
    catalog: &Catalog,
    screen: Option<&Screen>,
) -> Evidence {
    let seen = Seen::new(0);
    let mut partial = Partial {
        name: name.to_string(),
        screen,
        ..Partial::default()
    };
    read_lines(text.as_bytes(), &mut partial, catalog, &seen)
        .expect("reading from memory cannot fail");
    merge(vec![partial])
}

#[cfg(test)]
mod tests;
