//! Appending usage events to SQLite, in two steps so a reader can keep the writer busy:
//!
//! 1. [`prepare`] (pure, any thread): each event's dedup hash, route template, network and
//!    object list, the batch's own dictionaries (keys, routes, agents, networks by batch-local
//!    index) and the batch's rollups computed as if every event were new;
//! 2. [`append_prepared_in`] (the writer's transaction): the dictionaries mapped to the
//!    database's ids (a few hundred lookups, not one per event), the raw events inserted, then
//!    the rollups merged. When the store already held some of the events (a file read again,
//!    an overlap, a duplicate inside the batch), the rollups are computed again from the new
//!    events only, so only new events ever reach them.
//!
//! Rollups are merged key by key in primary-key order: the hour buckets of a key are read back
//! with one range query (not one lookup per hour) and then inserted or updated in place.

use super::{
    access_code, status_class, Appended, SourceCursor, UsageEvent, NAME_AGENT, NAME_NETWORK,
};
use crate::airwallex::model::catalog::FxBuild;
use crate::airwallex::Catalog;
use crate::redact;
use crate::store::params;
use crate::store::usage_series::{classify, network_of, Access, EventRef, KeySeries, DAY, HOUR};
use rusqlite::{OptionalExtension, Statement, Transaction};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Maps keyed by names and ids awxguard itself made (FxHash: no hostile keys to collide).
type FxMap<K, V> = HashMap<K, V, FxBuild>;
type FxSet<K> = HashSet<K, FxBuild>;

/// Rows per multi-row `INSERT` (events: 13 values each; SQLite allows 32,766 per statement).
const CHUNK: usize = 64;

/// No agent, no network.
const NONE: u32 = u32::MAX;

/// One event's share of the work, done off the writer's thread.
struct Planned {
    ts_ms: i64,
    hash: i64,
    /// Batch-local indexes into [`PreparedBatch`]'s dictionaries ([`NONE`]: absent).
    key: u32,
    route: u32,
    agent: u32,
    network: u32,
    ip: Option<IpAddr>,
    /// The object ids as the JSON array the table keeps, through the redaction gate.
    objects: Option<String>,
    /// The event's texts as the redaction gate left them, when it changed any (almost never:
    /// the reader refuses lines holding a key); `None`: the gate found them clean.
    screened: Option<Box<Texts>>,
}

/// An event's stored texts after the redaction gate.
struct Texts {
    path: String,
    ip: Option<String>,
    host: Option<String>,
    account: Option<String>,
}

/// Most texts a batch remembers as clean (paths with ids are many).
const CLEAN_TEXTS: usize = 50_000;

impl Texts {
    /// `Some` when the gate changes any of `e`'s texts. `clean`: texts of earlier events of the
    /// batch the gate left as they were (events repeat their host, address and most paths).
    fn of<'e>(e: &'e UsageEvent, clean: &mut FxSet<&'e str>) -> Option<Box<Texts>> {
        fn gate(t: &Option<String>) -> Option<Cow<'_, str>> {
            t.as_deref().map(redact::scrub)
        }
        let texts = [
            Some(e.path.as_str()),
            e.source_ip.as_deref(),
            e.host.as_deref(),
            e.account_id.as_deref(),
        ];
        if texts.iter().flatten().all(|t| clean.contains(t)) {
            return None;
        }
        let path = redact::scrub(&e.path);
        let (ip, host, account) = (gate(&e.source_ip), gate(&e.host), gate(&e.account_id));
        let changed = |t: &Option<Cow<'_, str>>| matches!(t, Some(Cow::Owned(_)));
        let any =
            matches!(path, Cow::Owned(_)) || changed(&ip) || changed(&host) || changed(&account);
        let own = |t: Option<Cow<'_, str>>| t.map(Cow::into_owned);
        if !any && clean.len() < CLEAN_TEXTS {
            clean.extend(texts.iter().flatten());
        }
        any.then(|| {
            Box::new(Texts {
                path: path.into_owned(),
                ip: own(ip),
                host: own(host),
                account: own(account),
            })
        })
    }
}

/// A route template as classified by the catalog.
struct RouteInfo {
    route: String,
    scope: Option<String>,
    access: Access,
}

/// A batch's rollups, by batch-local indexes.
#[derive(Default)]
struct Rollups {
    keys: FxMap<u32, KeySeries>,
    /// (key, hour, route, status class, network, agent) -> calls.
    calls: FxMap<(u32, i64, u32, i64, u32, u32), i64>,
    days: FxMap<i64, i64>,
    /// Oldest and newest event counted (Unix seconds).
    first: Option<i64>,
    last: Option<i64>,
}

/// Events made ready for [`append_prepared_in`] (see the module's text).
pub struct PreparedBatch<'a> {
    /// Borrowed from a caller that keeps them (the proxy), owned when the batch travels to
    /// another thread (ingest).
    events: Cow<'a, [UsageEvent]>,
    planned: Vec<Planned>,
    keys: Vec<String>,
    routes: Vec<RouteInfo>,
    agents: Vec<String>,
    networks: Vec<String>,
    /// Assuming every event is new.
    rollups: Rollups,
    /// The oldest event's time (Unix milliseconds).
    min_ts_ms: Option<i64>,
    /// No two events of the batch are the same event.
    unique: bool,
}

impl PreparedBatch<'_> {
    /// The events, as given.
    pub fn events(&self) -> &[UsageEvent] {
        &self.events
    }

    /// Rollups of the events `new` marks (all when `None`).
    fn roll_up(&self, new: Option<&[bool]>) -> Rollups {
        let mut r = Rollups::default();
        for (i, (e, p)) in self.events.iter().zip(&self.planned).enumerate() {
            if new.is_some_and(|n| !n[i]) {
                continue;
            }
            let t = e.ts.timestamp();
            r.first = Some(r.first.map_or(t, |f| f.min(t)));
            r.last = Some(r.last.map_or(t, |l| l.max(t)));
            let route = &self.routes[p.route as usize];
            let key = &self.keys[p.key as usize];
            let er = EventRef {
                ts: t,
                key,
                route: &route.route,
                scope: route.scope.as_deref(),
                access: route.access,
                status: e.status,
                source_ip: p.ip,
                user_agent: e.user_agent.as_deref(),
                via_proxy: e.via_proxy(),
                host: e.host.as_deref(),
                account: e.account_id.as_deref(),
            };
            r.keys
                .entry(p.key)
                .or_insert_with(|| KeySeries::new(key))
                .add(&er, 1);
            *r.calls
                .entry((
                    p.key,
                    t.div_euclid(HOUR),
                    p.route,
                    status_class(e.status),
                    p.network,
                    p.agent,
                ))
                .or_default() += 1;
            *r.days.entry(t.div_euclid(DAY)).or_default() += 1;
        }
        r
    }
}

/// Interns `s` in `names` (index by `ix`).
fn intern<'a>(ix: &mut FxMap<&'a str, u32>, names: &mut Vec<String>, s: &'a str) -> u32 {
    *ix.entry(s).or_insert_with(|| {
        names.push(s.to_string());
        (names.len() - 1) as u32
    })
}

/// Step 1: everything about `events` that needs no database (see the module's text).
pub fn prepare<'a>(
    events: impl Into<Cow<'a, [UsageEvent]>>,
    catalog: &Catalog,
) -> PreparedBatch<'a> {
    let events: Cow<'a, [UsageEvent]> = events.into();
    let mut planned = Vec::with_capacity(events.len());
    let mut keys = Vec::new();
    let mut routes: Vec<RouteInfo> = Vec::new();
    let mut agents = Vec::new();
    let mut networks = Vec::new();
    {
        let mut key_ix: FxMap<&str, u32> = FxMap::default();
        let mut agent_ix: FxMap<&str, u32> = FxMap::default();
        // by method and path as written (the catalog match is the expensive part), then by
        // template
        let mut by_path: FxMap<(&str, &str), u32> = FxMap::default();
        let mut route_ix: FxMap<String, u32> = FxMap::default();
        let mut net_by_ip: FxMap<(IpAddr, bool), u32> = FxMap::default();
        let mut net_ix: FxMap<String, u32> = FxMap::default();
        let mut clean: FxSet<&str> = FxSet::default();
        for e in events.iter() {
            let route = match by_path.get(&(e.method.as_str(), e.path.as_str())) {
                Some(i) => *i,
                None => {
                    let (route, scope, access) = classify(catalog, &e.method, &e.path);
                    let i = *route_ix.entry(route.clone()).or_insert_with(|| {
                        routes.push(RouteInfo {
                            route,
                            scope,
                            access,
                        });
                        (routes.len() - 1) as u32
                    });
                    // paths with IDs are many: remember only the first few thousand
                    if by_path.len() < 50_000 {
                        by_path.insert((e.method.as_str(), e.path.as_str()), i);
                    }
                    i
                }
            };
            let ip = e
                .source_ip
                .as_deref()
                .and_then(|s| s.parse::<IpAddr>().ok());
            let network = match ip {
                None => NONE,
                Some(ip) => {
                    let via = e.via_proxy();
                    match net_by_ip.get(&(ip, via)) {
                        Some(n) => *n,
                        None => {
                            let net = network_of(&ip.to_string(), 24, 48);
                            let name = if via { format!("proxy {net}") } else { net };
                            let n = *net_ix.entry(name.clone()).or_insert_with(|| {
                                networks.push(name);
                                (networks.len() - 1) as u32
                            });
                            if net_by_ip.len() < 100_000 {
                                net_by_ip.insert((ip, via), n);
                            }
                            n
                        }
                    }
                }
            };
            planned.push(Planned {
                ts_ms: e.ts.timestamp_millis(),
                hash: e.hash(),
                key: intern(&mut key_ix, &mut keys, &e.key),
                route,
                agent: match &e.user_agent {
                    Some(ua) => intern(&mut agent_ix, &mut agents, ua),
                    None => NONE,
                },
                network,
                ip,
                objects: (!e.object_ids.is_empty()).then(|| {
                    redact::scrub_string(
                        serde_json::to_string(&e.object_ids).expect("strings serialize"),
                    )
                }),
                screened: Texts::of(e, &mut clean),
            });
        }
    }
    let min_ts_ms = planned.iter().map(|p| p.ts_ms).min();
    let mut seen: FxSet<(i64, i64)> = FxSet::default();
    seen.reserve(planned.len());
    let unique = planned.iter().all(|p| seen.insert((p.ts_ms, p.hash)));
    let mut b = PreparedBatch {
        events,
        planned,
        keys,
        routes,
        agents,
        networks,
        rollups: Rollups::default(),
        min_ts_ms,
        unique,
    };
    b.rollups = b.roll_up(None);
    b
}

/// The database ids of a batch's dictionaries.
struct Ids {
    keys: Vec<i64>,
    routes: Vec<i64>,
    agents: Vec<i64>,
    networks: Vec<i64>,
}

impl Ids {
    fn agent(&self, i: u32) -> i64 {
        if i == NONE {
            0
        } else {
            self.agents[i as usize]
        }
    }

    fn network(&self, i: u32) -> i64 {
        if i == NONE {
            0
        } else {
            self.networks[i as usize]
        }
    }
}

/// The id of `name` in `table`'s `select` / `insert`, created when missing.
fn id_of(
    tx: &Transaction<'_>,
    select: &str,
    insert: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<i64> {
    if let Some(id) = tx
        .prepare_cached(select)?
        .query_row(args, |r| r.get(0))
        .optional()?
    {
        return Ok(id);
    }
    tx.prepare_cached(insert)?.execute(args)?;
    Ok(tx.last_insert_rowid())
}

fn ids(
    tx: &Transaction<'_>,
    b: &PreparedBatch<'_>,
) -> Result<Ids, (&'static str, rusqlite::Error)> {
    let q = |what: &'static str| move |e: rusqlite::Error| (what, e);
    let name = |kind: i64, n: &String| {
        id_of(
            tx,
            "SELECT id FROM usage_names WHERE kind = ?1 AND name = ?2",
            "INSERT INTO usage_names (kind, name) VALUES (?1, ?2)",
            params![kind, n],
        )
    };
    Ok(Ids {
        keys: b
            .keys
            .iter()
            .map(|k| {
                id_of(
                    tx,
                    "SELECT id FROM usage_keys WHERE name = ?1",
                    "INSERT INTO usage_keys (name) VALUES (?1)",
                    params![k],
                )
            })
            .collect::<Result<_, _>>()
            .map_err(q("key id"))?,
        routes: b
            .routes
            .iter()
            .map(|r| {
                let found = tx
                    .prepare_cached("SELECT id FROM usage_routes WHERE route = ?1")?
                    .query_row(params![r.route], |row| row.get(0))
                    .optional()?;
                match found {
                    Some(id) => Ok(id),
                    None => {
                        tx.prepare_cached(
                            "INSERT INTO usage_routes (route, scope, access) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![
                            r.route,
                            r.scope,
                            access_code(r.access)
                        ])?;
                        Ok(tx.last_insert_rowid())
                    }
                }
            })
            .collect::<Result<_, _>>()
            .map_err(q("route id"))?,
        agents: b
            .agents
            .iter()
            .map(|a| name(NAME_AGENT, a))
            .collect::<Result<_, _>>()
            .map_err(q("agent id"))?,
        networks: b
            .networks
            .iter()
            .map(|n| name(NAME_NETWORK, n))
            .collect::<Result<_, _>>()
            .map_err(q("network id"))?,
    })
}

/// Step 2: appends a prepared batch inside `tx` (the body of `append_usage`, also run by the
/// migration that moves the proxy's interim events into this store). An error names its step.
pub(in crate::store) fn append_prepared_in(
    tx: &Transaction<'_>,
    b: &PreparedBatch<'_>,
    cursor: Option<&SourceCursor>,
) -> Result<Appended, (&'static str, rusqlite::Error)> {
    let q = |what: &'static str| move |e: rusqlite::Error| (what, e);
    let ids = ids(tx, b)?;
    let mut out = Appended {
        events: b.events.len() as u64,
        ..Appended::default()
    };
    // which events were new; `None` while all were
    let mut new: Option<Vec<bool>> = None;
    let newest_raw: Option<i64> = tx
        .query_row("SELECT max(ts) FROM usage_events", [], |r| r.get(0))
        .map_err(q("read the newest raw event"))?;
    let rows: Vec<(&UsageEvent, &Planned)> = b.events.iter().zip(&b.planned).collect();
    if b.unique
        && b.min_ts_ms
            .is_some_and(|m| newest_raw.is_none_or(|n| m > n))
    {
        // every event is newer than every stored one and none repeats: all are new, inserted
        // many rows per statement
        let mut many = tx
            .prepare_cached(&insert_events_sql("INSERT", CHUNK))
            .map_err(q("prepare event insert"))?;
        let mut one = tx
            .prepare_cached(&insert_events_sql("INSERT", 1))
            .map_err(q("prepare event insert"))?;
        let mut chunks = rows.chunks_exact(CHUNK);
        for c in &mut chunks {
            for (j, (e, p)) in c.iter().enumerate() {
                bind_event(&mut many, j * EVENT_VALUES, e, p, &ids).map_err(q("insert event"))?;
            }
            many.raw_execute().map_err(q("insert event"))?;
        }
        for (e, p) in chunks.remainder() {
            bind_event(&mut one, 0, e, p, &ids).map_err(q("insert event"))?;
            one.raw_execute().map_err(q("insert event"))?;
        }
    } else {
        let mut one = tx
            .prepare_cached(&insert_events_sql("INSERT OR IGNORE", 1))
            .map_err(q("prepare event insert"))?;
        for (i, (e, p)) in rows.iter().enumerate() {
            bind_event(&mut one, 0, e, p, &ids).map_err(q("insert event"))?;
            if one.raw_execute().map_err(q("insert event"))? == 0 {
                out.duplicates += 1;
                new.get_or_insert_with(|| vec![true; b.events.len()])[i] = false;
            }
        }
    }
    out.new = out.events - out.duplicates;
    let again;
    let roll = match &new {
        None => &b.rollups,
        Some(new) => {
            again = b.roll_up(Some(new));
            &again
        }
    };
    merge::merge_rollups(tx, roll, &ids).map_err(q("merge rollups"))?;
    out.first = roll.first;
    out.last = roll.last;
    out.keys = roll.keys.values().map(|k| k.key.clone()).collect();
    if let Some(last) = out.last {
        tx.prepare_cached(
            "INSERT INTO usage_meta (name, value) VALUES ('newest', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        )
        .and_then(|mut s| s.execute(params![last]))
        .map_err(q("move the newest event"))?;
    }
    if let Some(c) = cursor {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO usage_sources (source, dev, ino, offset, lines, head, \
                 head_len, size, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                c.source,
                c.dev as i64,
                c.ino as i64,
                c.offset as i64,
                c.lines as i64,
                c.head,
                c.head_len as i64,
                c.size as i64,
                chrono::Utc::now().timestamp()
            ])
        })
        .map_err(q("move the source cursor"))?;
    }
    Ok(out)
}

/// Values per event row.
const EVENT_VALUES: usize = 13;

/// `verb` (`INSERT`, `INSERT OR IGNORE`) of `rows` events in one statement.
fn insert_events_sql(verb: &str, rows: usize) -> String {
    format!(
        "{verb} INTO usage_events (ts, hash, key, route, path, status, ip, agent, host, \
         account, latency, via, objects) VALUES {}",
        values(rows, EVENT_VALUES)
    )
}

/// `(?1, ?2, ...), (...)`: `rows` rows of `width` numbered parameters.
fn values(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds one event at parameter `at` (zero-based). Its texts passed the redaction gate in
/// [`prepare`] (checked clean, or `screened`); numbers and ids need no gate.
fn bind_event(
    s: &mut Statement<'_>,
    at: usize,
    e: &UsageEvent,
    p: &Planned,
    ids: &Ids,
) -> rusqlite::Result<()> {
    let t = p.screened.as_deref();
    s.raw_bind_parameter(at + 1, p.ts_ms)?;
    s.raw_bind_parameter(at + 2, p.hash)?;
    s.raw_bind_parameter(at + 3, ids.keys[p.key as usize])?;
    s.raw_bind_parameter(at + 4, ids.routes[p.route as usize])?;
    s.raw_bind_parameter(at + 5, t.map_or(e.path.as_str(), |t| t.path.as_str()))?;
    s.raw_bind_parameter(at + 6, e.status)?;
    s.raw_bind_parameter(
        at + 7,
        t.map_or(e.source_ip.as_deref(), |t| t.ip.as_deref()),
    )?;
    s.raw_bind_parameter(at + 8, ids.agent(p.agent))?;
    s.raw_bind_parameter(at + 9, t.map_or(e.host.as_deref(), |t| t.host.as_deref()))?;
    s.raw_bind_parameter(
        at + 10,
        t.map_or(e.account_id.as_deref(), |t| t.account.as_deref()),
    )?;
    s.raw_bind_parameter(at + 11, e.latency_ms)?;
    s.raw_bind_parameter(at + 12, i64::from(e.via_proxy()))?;
    s.raw_bind_parameter(at + 13, p.objects.as_deref())?;
    Ok(())
}

mod merge;
#[cfg(test)]
mod tests;
