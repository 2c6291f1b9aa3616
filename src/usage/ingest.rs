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

use super::evidence::{Evidence, KeyUsage, RouteUsage, SourceSpan};
use super::screen::{Call, Screen, Screened};
use super::UsageError;
use crate::airwallex::Catalog;
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name endings read from a directory (and their rotated copies: `NAME.jsonl.1`,
/// `NAME.jsonl-20261204`).
pub const EVENT_FILE_EXTENSIONS: &[&str] = &["jsonl", "ndjson", "json", "log"];

/// How a directory's file is read: `(live name, order)`, where an event file is `(its name, 2)`
/// and a rotated copy of one (`NAME.EXT.N`, `NAME.EXT-DIGITS`, as logrotate names them) is
/// `(NAME.EXT, 0 or 1)`; `None`: not an event file. Rotated copies are read before the live file
/// (the oldest first), so a copy renamed away with lines not yet read resumes from the live
/// file's cursor instead of being lost or read again.
fn event_file(name: &str) -> Option<(String, u8, i64, String)> {
    let is_event = |n: &str| {
        Path::new(n)
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| EVENT_FILE_EXTENSIONS.contains(&x))
    };
    if is_event(name) {
        return Some((name.to_string(), 2, 0, String::new()));
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((live, n)) = name.rsplit_once('.') {
        if digits(n) && is_event(live) {
            // logrotate's numbers grow with age: .2 before .1
            let n: i64 = n.parse().unwrap_or(i64::MAX);
            return Some((live.to_string(), 1, -n, String::new()));
        }
    }
    if let Some((live, date)) = name.rsplit_once('-') {
        if digits(date) && is_event(live) {
            return Some((live.to_string(), 0, 0, date.to_string()));
        }
    }
    None
}

/// At most this many rejected-line messages are kept; the count stays exact.
pub const MAX_PROBLEMS: usize = 100;

const SHARDS: usize = 64;

use crate::airwallex::model::catalog::FxBuild;

type FxMap<K, V> = HashMap<K, V, FxBuild>;

/// A string that borrows from the line when it can (no escapes) and owns otherwise.
#[derive(Debug)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl Str<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of the contract, borrowed from the line. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    ts: Str<'a>,
    #[serde(borrow)]
    key: Str<'a>,
    #[serde(borrow)]
    method: Str<'a>,
    #[serde(borrow)]
    path: Str<'a>,
    status: u16,
    #[serde(default, borrow)]
    source_ip: Option<Str<'a>>,
    #[serde(default, borrow)]
    user_agent: Option<Str<'a>>,
    #[serde(default, borrow)]
    account_id: Option<Str<'a>>,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default, borrow)]
    host: Option<Str<'a>>,
    /// `proxy` when awxguard's proxy recorded it (its `source_ip` is then internal).
    #[serde(default, borrow)]
    via: Option<Str<'a>>,
    #[serde(default)]
    object_ids: Option<Vec<String>>,
}

/// Where events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// How messages name it: the path, or `<stdin>`.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// Expands the command-line paths: `-` is standard input, a directory gives its event files
/// (recursively, sorted), a file is read whatever its name.
pub fn inputs(paths: &[PathBuf]) -> Result<Vec<Input>, UsageError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|source| UsageError::Read {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files)?;
            // by directory and live name; rotated copies (oldest first) before the live file
            files.sort_by_cached_key(|f| {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (f.parent().map(Path::to_path_buf), event_file(&name))
            });
            out.extend(files.into_iter().map(Input::File));
        } else if !meta.is_file() {
            return Err(UsageError::Read {
                path: p.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "is {}, not a regular file; not read (give - to read standard input)",
                        crate::files::kind_of(&meta)
                    ),
                ),
            });
        } else {
            out.push(Input::File(p.clone()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), UsageError> {
    let entries = std::fs::read_dir(dir).map_err(|source| UsageError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(|source| UsageError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = e.file_type().map_err(|source| UsageError::Read {
            path: path.clone(),
            source,
        })?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if event_file(&e.file_name().to_string_lossy()).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether `s` is shaped like a raw Airwallex API key (96 hex digits).
pub fn looks_like_raw_key(s: &str) -> bool {
    s.len() == 96 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The longest run of hex digits in `s` (a key name or fingerprint has none of 32 or more: such
/// a run is a key, or a cut piece of one).
fn longest_hex_run(s: &str) -> usize {
    s.as_bytes()
        .split(|b| !b.is_ascii_hexdigit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

/// A message about a line, through the redaction gate (and runs of 32 or more hex digits, which
/// a usage file has no business holding, shown as `<redacted>` as before), so a rejection never
/// echoes a key.
fn redact_hex_runs(msg: &str) -> String {
    let msg = crate::redact::scrub(msg);
    let b = msg.as_bytes();
    let mut out = String::with_capacity(msg.len());
    let mut i = 0;
    while i < b.len() {
        let mut j = i;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        if j - i >= 32 {
            out.push_str("<redacted>");
            i = j;
        } else if j > i {
            out.push_str(&msg[i..j]);
            i = j;
        } else {
            let ch = msg[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Parses the `ts` field: RFC 3339 (fractional seconds, any offset), or Airwallex's own
/// `+0000` form.
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| crate::airwallex::parse_timestamp(s))
        .map(|t| t.with_timezone(&Utc))
}

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

/// Opens an event file: a regular file only (checked on the open descriptor): a FIFO, a device
/// or a socket, even one swapped in after the listing, is refused, never read.
pub(crate) fn open_events(p: &Path) -> std::io::Result<std::fs::File> {
    match crate::files::open_regular(p) {
        Ok((f, _)) => Ok(f),
        Err(crate::files::FileError::NotRegular { kind, .. }) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("is {kind}, not a regular file; not read (give - to read standard input)"),
        )),
        Err(crate::files::FileError::Io { source, .. }) => Err(source),
        Err(e) => Err(e.into_io()),
    }
}

fn read_source<'c>(
    input: &Input,
    catalog: &'c Catalog,
    screen: Option<&'c Screen>,
    seen: &Seen,
) -> Result<Partial<'c>, UsageError> {
    let name = input.name();
    let mut partial = Partial {
        name: name.clone(),
        screen,
        ..Partial::default()
    };
    let read_err = |source| UsageError::Read {
        path: PathBuf::from(&name),
        source,
    };
    match input {
        Input::Stdin => {
            let stdin = std::io::stdin();
            let lock = stdin.lock();
            read_lines(lock, &mut partial, catalog, seen).map_err(read_err)?;
        }
        Input::File(p) => {
            let f = open_events(p).map_err(read_err)?;
            read_lines(f, &mut partial, catalog, seen).map_err(read_err)?;
        }
    }
    Ok(partial)
}

/// Bytes read at a time; a block is cut at its last newline and its lines parsed in parallel.
const BLOCK: usize = 8 << 20;

/// A line longer than this is rejected and skipped without being kept (a file without line
/// breaks, a sparse giant, costs a block of memory, not its size).
pub const MAX_LINE: usize = 1 << 20;

/// Under this size a block is parsed on one thread.
const MIN_CHUNK: usize = 256 << 10;

fn read_lines<'c, R: Read>(
    r: R,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
) -> std::io::Result<()> {
    read_blocks(r, partial, catalog, seen, BLOCK)
}

fn read_blocks<'c, R: Read>(
    mut r: R,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
    block_size: usize,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut line_base: u64 = 0;
    // Inside a line over `MAX_LINE`: its bytes are dropped up to its end.
    let mut skipping = false;
    loop {
        buf.clear();
        buf.append(&mut carry);
        let target = block_size.max(buf.len() * 2);
        let want = target.saturating_sub(buf.len()) as u64;
        let n = (&mut r).take(want).read_to_end(&mut buf)?;
        let eof = (n as u64) < want;
        if skipping {
            match memchr::memchr(b'\n', &buf) {
                None if eof => return Ok(()),
                None => continue,
                Some(i) => {
                    skipping = false;
                    line_base += 1;
                    carry.extend_from_slice(&buf[i + 1..]);
                    if eof && carry.is_empty() {
                        return Ok(());
                    }
                    continue;
                }
            }
        }
        let long_line = |buf: &[u8]| buf.len() > MAX_LINE && memchr::memchr(b'\n', buf).is_none();
        if long_line(&buf) {
            partial.reject(
                line_base + 1,
                format!("the line is longer than {MAX_LINE} bytes; skipped"),
            );
            if eof {
                return Ok(());
            }
            skipping = true;
            continue;
        }
        let end = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => {
                    // one line longer than the block: read on
                    carry = std::mem::take(&mut buf);
                    continue;
                }
            }
        };
        carry.extend_from_slice(&buf[end..]);
        let block = &buf[..end];
        read_block(block, line_base, partial, catalog, seen);
        line_base += memchr::memchr_iter(b'\n', block).count() as u64;
        if eof {
            return Ok(());
        }
    }
}

/// Parses a block of whole lines, split across threads at line boundaries; `line_base` is the
/// number of lines before the block.
fn read_block<'c>(
    block: &[u8],
    line_base: u64,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
) {
    let parts = rayon::current_num_threads().max(1);
    if parts == 1 || block.len() < 2 * MIN_CHUNK {
        read_chunk(block, line_base, partial, catalog, seen);
        return;
    }
    let size = (block.len() / parts).max(MIN_CHUNK);
    let mut chunks: Vec<(&[u8], u64)> = Vec::new();
    let mut start = 0;
    let mut line = line_base;
    while start < block.len() {
        let mut end = (start + size).min(block.len());
        if end < block.len() {
            end = memchr::memchr(b'\n', &block[end..]).map_or(block.len(), |i| end + i + 1);
        }
        chunks.push((&block[start..end], line));
        line += memchr::memchr_iter(b'\n', &block[start..end]).count() as u64;
        start = end;
    }
    let name = partial.name.clone();
    let screen = partial.screen;
    let parsed: Vec<Partial<'c>> = chunks
        .par_iter()
        .map(|(chunk, first)| {
            let mut p = Partial {
                name: name.clone(),
                screen,
                ..Partial::default()
            };
            read_chunk(chunk, *first, &mut p, catalog, seen);
            p
        })
        .collect();
    for p in parsed {
        partial.absorb(p);
    }
}

fn read_chunk<'c>(
    chunk: &[u8],
    line_base: u64,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
) {
    let mut method_buf = String::with_capacity(8);
    let mut line_no = line_base;
    for raw in chunk.split(|&b| b == b'\n') {
        line_no += 1;
        let line = trim_ascii(raw);
        if line.is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            partial.reject(
                line_no,
                format!("the line is longer than {MAX_LINE} bytes; skipped"),
            );
            continue;
        }
        let ev: RawEvent<'_> = match serde_json::from_slice(line) {
            Ok(ev) => ev,
            Err(e) => {
                let what = match e.classify() {
                    serde_json::error::Category::Data => "not a usage event",
                    _ => "not valid JSON",
                };
                partial.reject(line_no, redact_hex_runs(&format!("{what}: {e}")));
                continue;
            }
        };
        ingest_event(&ev, line_no, partial, catalog, seen, &mut method_buf);
    }
}

fn opt<'b>(s: &'b Option<Str<'_>>) -> Option<&'b str> {
    s.as_ref().map(|s| s.as_str())
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    let b = &b[start..end];
    // a UTF-8 byte order mark at the start of a file
    b.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(b)
}

/// A line that passed the contract's checks: time in UTC, method upper case (in the buffer
/// given), path without query string.
struct Checked<'a> {
    ts: DateTime<Utc>,
    path: &'a str,
}

/// The contract's checks on one parsed line; `method_buf` receives the upper-case method.
fn check<'a>(ev: &'a RawEvent<'_>, method_buf: &mut String) -> Result<Checked<'a>, String> {
    let key = ev.key.as_str();
    // A key in any form (whole, `Bearer `-prefixed, split, wrapped, a token): rejected, never
    // echoed.
    if looks_like_raw_key(key) || crate::redact::holds_key(key) || longest_hex_run(key) >= 32 {
        return Err(
            "field `key` holds what looks like an API key or token; usage events must name the \
             key by its inventory name or fingerprint (sha256:...), never carry the key (the \
             value is not shown). Revoke that key if the file was shared"
                .to_string(),
        );
    }
    if key.trim().is_empty() {
        return Err("field `key` is empty".to_string());
    }
    let Some(ts) = parse_ts(ev.ts.as_str()) else {
        return Err(format!(
            "field `ts` {:?} is not an RFC 3339 time (e.g. 2026-11-20T10:15:00Z)",
            redact_hex_runs(ev.ts.as_str())
        ));
    };
    if !(100..=599).contains(&ev.status) {
        return Err(format!(
            "field `status` {} is not an HTTP status",
            ev.status
        ));
    }
    let m = ev.method.as_str().trim();
    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "field `method` {:?} is not an HTTP method",
            redact_hex_runs(m)
        ));
    }
    method_buf.clear();
    method_buf.push_str(m);
    method_buf.make_ascii_uppercase();
    let raw_path = ev.path.as_str();
    let path = raw_path.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(format!(
            "field `path` {:?} is not a request path (it must start with /)",
            redact_hex_runs(path)
        ));
    }
    Ok(Checked { ts, path })
}

pub use crate::store::UsageEvent;

/// Parses and checks one line of the contract, with the reader's messages (without the
/// `file:line: ` prefix).
pub fn parse_line(line: &[u8]) -> Result<UsageEvent, String> {
    let line = trim_ascii(line);
    let ev: RawEvent<'_> = serde_json::from_slice(line).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "not a usage event",
            _ => "not valid JSON",
        };
        redact_hex_runs(&format!("{what}: {e}"))
    })?;
    let mut method = String::new();
    let c = check(&ev, &mut method)?;
    let (ts, path) = (c.ts, c.path.to_string());
    let own = |s: &Option<Str<'_>>| s.as_ref().map(|s| s.as_str().to_string());
    Ok(UsageEvent {
        ts,
        key: ev.key.as_str().to_string(),
        method,
        path,
        status: ev.status,
        source_ip: own(&ev.source_ip),
        user_agent: own(&ev.user_agent),
        account_id: own(&ev.account_id),
        latency_ms: ev.latency_ms,
        host: own(&ev.host),
        via: own(&ev.via),
        object_ids: ev.object_ids.unwrap_or_default(),
    })
}

fn ingest_event<'c>(
    ev: &RawEvent<'_>,
    line_no: u64,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
    method_buf: &mut String,
) {
    let key = ev.key.as_str();
    let Checked { ts, path } = match check(ev, method_buf) {
        Ok(c) => c,
        Err(msg) => {
            partial.reject(line_no, msg);
            return;
        }
    };
    if let Some(limit) = seen.not_after {
        if ts > limit {
            partial.reject(
                line_no,
                format!(
                    "field `ts` {} is in the future (after {}: now plus the allowed clock skew, \
                     [usage] max_future); rejected",
                    ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    limit.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            );
            return;
        }
    }
    let method = method_buf.as_str();
    let norm = Normalized {
        ts: ts.timestamp(),
        ts_nanos: ts.timestamp_subsec_nanos(),
        key,
        method,
        path,
        status: ev.status,
        source_ip: opt(&ev.source_ip),
        user_agent: opt(&ev.user_agent),
        account_id: opt(&ev.account_id),
        latency_bits: ev.latency_ms.map(f64::to_bits),
        host: opt(&ev.host),
        via: opt(&ev.via),
    };
    partial.valid += 1;
    partial.first = min_t(partial.first, ts);
    partial.last = max_t(partial.last, ts);
    let fresh = seen.first_time(&norm);
    // The key appears in this source (it covers the key) even when its events are duplicates
    // or screened out.
    if !partial.keys.contains_key(key) {
        partial.keys.insert(key.to_string(), KeyAgg::default());
    }
    if !fresh {
        partial.duplicates += 1;
        return;
    }
    let ok = (200..300).contains(&ev.status);
    let route = catalog.route_ref(method, path);
    if let Some(screen) = partial.screen {
        // Not evidence of need: kept aside, reported, never learnt from.
        let reasons = screen.judge(
            key,
            ts,
            route.map(|r| (r.template, r.scope)),
            opt(&ev.source_ip),
            opt(&ev.via) == Some("proxy"),
        );
        if reasons.any() {
            let unknown;
            let call = Call {
                ts,
                route: match &route {
                    Some(r) => r.template,
                    None => {
                        unknown = format!("{method} {}", unknown_template(path));
                        &unknown
                    }
                },
                source_ip: opt(&ev.source_ip),
                ok,
                write: !matches!(method, "GET" | "HEAD" | "OPTIONS"),
            };
            partial
                .screened
                .entry(key.to_string())
                .or_default()
                .add(&reasons, &call);
            return;
        }
    }
    let agg = partial.keys.get_mut(key).expect("entered above");
    agg.events += 1;
    agg.first = min_t(agg.first, ts);
    agg.last = max_t(agg.last, ts);
    match route {
        Some(r) => {
            agg.routes
                .entry(r.template)
                .or_insert_with(|| RouteAgg {
                    scope: r.scope,
                    ..RouteAgg::default()
                })
                .add(ts, ok);
            // A refused call (401/403) does not show the key needs the scope; any other does.
            if let Some(s) = r.scope {
                if ev.status != 401 && ev.status != 403 {
                    let t = agg.scopes.entry(s).or_insert(ts);
                    *t = (*t).max(ts);
                }
            }
        }
        None => {
            let k = format!("{method} {}", unknown_template(path));
            agg.unknown.entry(k).or_default().add(ts, ok);
        }
    }
    if let Some(ip) = &ev.source_ip {
        bump(&mut agg.ips, ip.as_str());
    }
    if let Some(ua) = &ev.user_agent {
        bump(&mut agg.agents, ua.as_str());
    }
    if let Some(h) = &ev.host {
        let h = h.as_str();
        if h.bytes().any(|b| b.is_ascii_uppercase()) {
            bump(&mut agg.hosts, &h.to_ascii_lowercase());
        } else {
            bump(&mut agg.hosts, h);
        }
    }
    if let Some(a) = &ev.account_id {
        bump(&mut agg.accounts, a.as_str());
    }
    *agg.statuses.entry(ev.status).or_insert(0) += 1;
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: FxMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
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

fn merge(partials: Vec<Partial>) -> Evidence {
    let mut ev = Evidence::default();
    let mut coverage: HashMap<String, DateTime<Utc>> = HashMap::new();
    for p in partials {
        ev.rejected += p.rejected;
        ev.duplicates += p.duplicates;
        for (key, s) in &p.screened {
            ev.screened.entry(key.clone()).or_default().absorb(s);
        }
        for msg in p.problems {
            if ev.problems.len() < MAX_PROBLEMS {
                ev.problems.push(msg);
            }
        }
        let (Some(first), Some(last)) = (p.first, p.last) else {
            continue;
        };
        ev.sources.push(SourceSpan {
            name: p.name.clone(),
            first,
            last,
            events: p.valid,
        });
        for (key, agg) in p.keys {
            let c = coverage.entry(key.clone()).or_insert(first);
            *c = (*c).min(first);
            let (Some(kf), Some(kl)) = (agg.first, agg.last) else {
                // only duplicates of events another source holds: it still covers the key
                continue;
            };
            ev.events += agg.events;
            let u = ev.keys.entry(key.clone()).or_insert_with(|| KeyUsage {
                key: key.clone(),
                events: 0,
                first_seen: kf,
                last_seen: kl,
                coverage_start: first,
                routes: BTreeMap::new(),
                scopes_used: BTreeMap::new(),
                source_ips: BTreeMap::new(),
                user_agents: BTreeMap::new(),
                hosts: BTreeMap::new(),
                statuses: BTreeMap::new(),
                account_ids: BTreeMap::new(),
            });
            u.events += agg.events;
            u.first_seen = u.first_seen.min(kf);
            u.last_seen = u.last_seen.max(kl);
            let routes = agg
                .routes
                .into_iter()
                .map(|(k, r)| (k.to_string(), r))
                .chain(agg.unknown);
            for (rk, r) in routes {
                let (Some(rf), Some(rl)) = (r.first, r.last) else {
                    continue;
                };
                let (method, template) = rk.split_once(' ').unwrap_or(("", &rk));
                let (method, template) = (method.to_string(), template.to_string());
                let e = u.routes.entry(rk).or_insert_with(|| RouteUsage {
                    method,
                    template,
                    scope: r.scope.map(str::to_string),
                    count: 0,
                    first_seen: rf,
                    last_seen: rl,
                    ok: 0,
                });
                e.count += r.count;
                e.ok += r.ok;
                e.first_seen = e.first_seen.min(rf);
                e.last_seen = e.last_seen.max(rl);
            }
            for (s, t) in agg.scopes {
                let e = u.scopes_used.entry(s.to_string()).or_insert(t);
                *e = (*e).max(t);
            }
            merge_counts(&mut u.source_ips, agg.ips);
            merge_counts(&mut u.user_agents, agg.agents);
            merge_counts(&mut u.hosts, agg.hosts);
            merge_counts(&mut u.account_ids, agg.accounts);
            for (s, n) in agg.statuses {
                *u.statuses.entry(s).or_insert(0) += n;
            }
        }
    }
    for (key, u) in ev.keys.iter_mut() {
        if let Some(c) = coverage.get(key) {
            u.coverage_start = *c;
        }
    }
    ev
}

#[cfg(test)]
mod tests {
    #[test]
    fn rotated_copies_are_event_files_read_oldest_first_before_the_live_one() {
        let mut names = vec![
            "b.jsonl",
            "a.log.1",
            "a.log",
            "a.log.2",
            "a.log-20261203",
            "a.log.1.gz",
            "notes.txt",
            "a.log.x",
        ];
        names.retain(|n| super::event_file(n).is_some());
        names.sort_by_key(|n| super::event_file(n));
        assert_eq!(
            names,
            ["a.log-20261203", "a.log.2", "a.log.1", "a.log", "b.jsonl"]
        );
    }

    use super::*;

    #[test]
    fn borrowed_and_escaped_strings_parse() {
        let line = br#"{"ts":"2026-11-20T10:15:00Z","key":"pay\u0076y","method":"get","path":"/api/v1/transfers?x=1","status":200,"extra":[1,2]}"#;
        let ev: RawEvent<'_> = serde_json::from_slice(line).unwrap();
        assert_eq!(ev.key.as_str(), "payvy");
        assert!(matches!(ev.path.0, Cow::Borrowed(_)));
    }

    #[test]
    fn times_with_offsets_and_fractions() {
        let a = parse_ts("2026-11-20T10:15:00Z").unwrap();
        let b = parse_ts("2026-11-20T18:15:00.000+08:00").unwrap();
        assert_eq!(a, b);
        assert!(parse_ts("2026-11-20T10:15:00.123456Z").is_some());
        assert!(parse_ts("2026-11-20T10:15:00+0000").is_some());
        assert!(parse_ts("20 Nov 2026").is_none());
    }

    #[test]
    fn unknown_paths_group_ids() {
        assert_eq!(
            unknown_template("/api/v1/things/3f2a9c1e-0000/sub"),
            "/api/v1/things/{id}/sub"
        );
        assert_eq!(unknown_template("/api/v1/no_such"), "/api/v1/no_such");
    }

    #[test]
    fn line_numbers_hold_across_small_blocks_and_long_lines() {
        let c = Catalog::builtin();
        let good = r#"{"ts":"2026-11-20T10:15:00Z","key":"k","method":"GET","path":"/api/v1/transfers","status":200,"user_agent":"UA"}"#;
        let long = good.replace("UA", &"x".repeat(500));
        let mut lines: Vec<String> = Vec::new();
        for i in 0..40 {
            lines.push(match i {
                7 | 23 => "{broken".to_string(),
                11 => long.clone(),
                _ => good.replace("10:15:00", &format!("10:{:02}:00", i)),
            });
        }
        let text = lines.join("\n"); // no newline at the end
        for block in [64, 100, 333, 1 << 20] {
            let seen = Seen::new(0);
            let mut p = Partial {
                name: "f".into(),
                ..Partial::default()
            };
            read_blocks(text.as_bytes(), &mut p, &c, &seen, block).unwrap();
            assert_eq!(p.rejected, 2, "block {block}");
            assert_eq!(p.problems.len(), 2);
            assert!(p.problems[0].starts_with("f:8: "), "{:?}", p.problems);
            assert!(p.problems[1].starts_with("f:24: "), "{:?}", p.problems);
            assert_eq!(p.valid, 38, "block {block}");
        }
    }

    #[test]
    fn a_collector_fed_line_by_line_matches_the_reader() {
        let c = Catalog::builtin();
        let text = "{\"ts\":\"2026-11-20T10:15:00Z\",\"key\":\"k\",\"method\":\"GET\",\"path\":\"/api/v1/transfers\",\"status\":200}\nnope\n{\"ts\":\"2026-11-20T10:15:00Z\",\"key\":\"k\",\"method\":\"GET\",\"path\":\"/api/v1/transfers\",\"status\":200}";
        let mut col = Collector::new("proxy", &c);
        for l in text.lines() {
            col.push_line(l.as_bytes());
        }
        let a = col.finish();
        let b = read_text("proxy", text, &c);
        assert_eq!(a, b);
        assert_eq!(a.rejected, 1);
        assert_eq!(a.duplicates, 1);
        assert_eq!(
            a.problems,
            ["proxy:2: not valid JSON: expected ident at line 1 column 2"]
        );
    }

    #[test]
    fn hex_runs_are_redacted() {
        let k = "ab".repeat(48);
        let m = redact_hex_runs(&format!("invalid type: string \"{k}\", expected u16"));
        assert!(!m.contains(&k[..32]));
        assert!(m.contains("[redacted abab…abab sha256:"), "{m}");
        let m = redact_hex_runs(&format!("got {}", &k[..36]));
        assert_eq!(m, "got <redacted>");
        assert_eq!(redact_hex_runs("line 12 column 3"), "line 12 column 3");
    }
}
