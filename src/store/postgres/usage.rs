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

use super::{pg_params, retryable, PgStore};
use crate::airwallex::Catalog;
use crate::redact::scrub;
use crate::store::usage::{
    access_code, holdings_of, kind_code, kind_of, sample_of, status_class, Appended, KeyHoldings,
    Pruned, SampleQuery, SampleRow, SourceCursor, UsageEvent, UsageRecords, NAME_AGENT,
    NAME_NETWORK, SAMPLES_SQL,
};
use crate::store::usage_series::{
    classify, network_of, Access, AttrStats, EventRef, HourBucket, KeySeries, DAY, HOUR,
};
use crate::store::StoreError;
use chrono::{DateTime, TimeZone, Utc};
use postgres::Transaction;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// How often a batch that met a deadlock or serialization failure is tried again.
const ATTEMPTS: u32 = 6;

fn clean(s: &str) -> String {
    scrub(s).into_owned()
}

fn clean_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(clean)
}

/// A route as classified by the catalog.
struct Route {
    route: String,
    scope: Option<String>,
    access: Access,
}

/// What a batch needs before its transaction: each event's route, network and names.
struct Prepared {
    routes: Vec<Route>,
    /// Per event: index into `routes`, its address, its network name.
    per_event: Vec<(usize, Option<IpAddr>, Option<String>)>,
}

fn prepare(events: &[UsageEvent], catalog: &Catalog) -> Prepared {
    let mut by_path: HashMap<(&str, &str), usize> = HashMap::new();
    let mut by_route: HashMap<String, usize> = HashMap::new();
    let mut routes: Vec<Route> = Vec::new();
    let mut per_event = Vec::with_capacity(events.len());
    for e in events {
        let ri = match by_path.get(&(e.method.as_str(), e.path.as_str())) {
            Some(i) => *i,
            None => {
                let (route, scope, access) = classify(catalog, &e.method, &e.path);
                let i = *by_route.entry(route.clone()).or_insert_with(|| {
                    routes.push(Route {
                        route,
                        scope,
                        access,
                    });
                    routes.len() - 1
                });
                by_path.insert((&e.method, &e.path), i);
                i
            }
        };
        let ip = e
            .source_ip
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok());
        let network = ip.map(|ip| {
            let net = network_of(&ip.to_string(), 24, 48);
            if e.via_proxy() {
                format!("proxy {net}")
            } else {
                net
            }
        });
        per_event.push((ri, ip, network));
    }
    Prepared { routes, per_event }
}

/// Ids of `names` (made when missing), in their order.
fn name_ids(
    tx: &mut Transaction<'_>,
    table: &str,
    kind: Option<i64>,
    names: &[String],
) -> Result<Vec<i64>, postgres::Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let clean: Vec<String> = names.iter().map(|n| clean(n)).collect();
    let mut sorted = clean.clone();
    sorted.sort();
    sorted.dedup();
    let (insert, select) = match kind {
        None => (
            format!(
                "INSERT INTO {table} (name) SELECT n FROM unnest($1::text[]) n \
                 ON CONFLICT DO NOTHING"
            ),
            format!(
                "SELECT u.i, t.id FROM unnest($1::text[]) WITH ORDINALITY u(n, i) \
                 JOIN {table} t ON t.name = u.n"
            ),
        ),
        Some(k) => (
            format!(
                "INSERT INTO {table} (kind, name) SELECT {k}, n FROM unnest($1::text[]) n \
                 ON CONFLICT DO NOTHING"
            ),
            format!(
                "SELECT u.i, t.id FROM unnest($1::text[]) WITH ORDINALITY u(n, i) \
                 JOIN {table} t ON t.kind = {k} AND t.name = u.n"
            ),
        ),
    };
    tx.execute(&insert, &[&sorted])?;
    let mut ids = vec![0i64; clean.len()];
    for r in tx.query(&select, &[&clean])? {
        let i: i64 = r.get(0);
        ids[(i - 1) as usize] = r.get(1);
    }
    Ok(ids)
}

/// Ids of the batch's routes (made when missing), in their order.
fn route_ids(tx: &mut Transaction<'_>, routes: &[Route]) -> Result<Vec<i64>, postgres::Error> {
    if routes.is_empty() {
        return Ok(Vec::new());
    }
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by(|a, b| routes[*a].route.cmp(&routes[*b].route));
    let names: Vec<String> = order.iter().map(|i| clean(&routes[*i].route)).collect();
    let scopes: Vec<Option<String>> = order.iter().map(|i| clean_opt(&routes[*i].scope)).collect();
    let access: Vec<i64> = order
        .iter()
        .map(|i| access_code(routes[*i].access))
        .collect();
    tx.execute(
        "INSERT INTO usage_routes (route, scope, access) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
        &[&names, &scopes, &access],
    )?;
    let mut ids = vec![0i64; routes.len()];
    for r in tx.query(
        "SELECT u.i, t.id FROM unnest($1::text[]) WITH ORDINALITY u(n, i) \
         JOIN usage_routes t ON t.route = u.n",
        &[&names],
    )? {
        let i: i64 = r.get(0);
        ids[order[(i - 1) as usize]] = r.get(1);
    }
    Ok(ids)
}

/// A row of the hourly calls rollup: key, hour, route, status class, network, agent.
type CallKey = (i64, i64, i64, i64, i64, i64);

/// Rollups of the new events of one batch.
#[derive(Default)]
struct Rollups {
    keys: BTreeMap<i64, KeySeries>,
    calls: BTreeMap<CallKey, i64>,
    days: BTreeMap<i64, i64>,
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

impl PgStore {
    fn append_once(
        &self,
        events: &[UsageEvent],
        prepared: &Prepared,
        cursor: Option<&SourceCursor>,
    ) -> Result<Appended, StoreError> {
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin usage batch"))?;
            let mut out = Appended {
                events: events.len() as u64,
                ..Appended::default()
            };
            // Names: keys, routes, agents, networks.
            let key_names: Vec<String> = uniq(events.iter().map(|e| e.key.as_str()));
            let key_ids =
                name_ids(&mut tx, "usage_keys", None, &key_names).map_err(q("key ids"))?;
            let key_of: HashMap<&str, i64> = key_names
                .iter()
                .map(String::as_str)
                .zip(key_ids.iter().copied())
                .collect();
            let route_id = route_ids(&mut tx, &prepared.routes).map_err(q("route ids"))?;
            let agents: Vec<String> = uniq(events.iter().filter_map(|e| e.user_agent.as_deref()));
            let agent_ids = name_ids(&mut tx, "usage_names", Some(NAME_AGENT), &agents)
                .map_err(q("agent ids"))?;
            let agent_of: HashMap<&str, i64> = agents
                .iter()
                .map(String::as_str)
                .zip(agent_ids.iter().copied())
                .collect();
            let nets: Vec<String> = uniq(
                prepared
                    .per_event
                    .iter()
                    .filter_map(|(_, _, n)| n.as_deref()),
            );
            let net_ids = name_ids(&mut tx, "usage_names", Some(NAME_NETWORK), &nets)
                .map_err(q("network ids"))?;
            let net_of: HashMap<&str, i64> = nets
                .iter()
                .map(String::as_str)
                .zip(net_ids.iter().copied())
                .collect();

            // Events: one statement; what it returns is what was new.
            let n = events.len();
            let (mut ts, mut hash, mut key, mut route) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut path, mut status, mut ip, mut agent) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut host, mut account, mut latency, mut via, mut objects) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for (e, (ri, _, _)) in events.iter().zip(&prepared.per_event) {
                ts.push(e.ts.timestamp_millis());
                hash.push(e.hash());
                key.push(key_of[e.key.as_str()]);
                route.push(route_id[*ri]);
                path.push(clean(&e.path));
                status.push(e.status as i64);
                ip.push(clean_opt(&e.source_ip));
                agent.push(
                    e.user_agent
                        .as_deref()
                        .map_or(0, |a| agent_of.get(a).copied().unwrap_or(0)),
                );
                host.push(clean_opt(&e.host));
                account.push(clean_opt(&e.account_id));
                latency.push(e.latency_ms);
                via.push(i64::from(e.via_proxy()));
                objects.push(
                    (!e.object_ids.is_empty())
                        .then(|| clean(&serde_json::to_string(&e.object_ids).expect("strings"))),
                );
            }
            let mut new: HashSet<(i64, i64)> = tx
                .query(
                    "INSERT INTO usage_events (ts, hash, key, route, path, status, ip, agent, \
                     host, account, latency, via, objects) \
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], \
                     $4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::bigint[], \
                     $9::text[], $10::text[], $11::float8[], $12::bigint[], $13::text[]) \
                     ON CONFLICT DO NOTHING RETURNING ts, hash",
                    &[
                        &ts, &hash, &key, &route, &path, &status, &ip, &agent, &host, &account,
                        &latency, &via, &objects,
                    ],
                )
                .map_err(q("insert events"))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();

            // Rollups of the new events.
            let mut roll = Rollups::default();
            for (i, (e, (ri, ipaddr, net))) in events.iter().zip(&prepared.per_event).enumerate() {
                if !new.remove(&(ts[i], hash[i])) {
                    out.duplicates += 1;
                    continue;
                }
                out.new += 1;
                let t = e.ts.timestamp();
                out.first = Some(out.first.map_or(t, |f| f.min(t)));
                out.last = Some(out.last.map_or(t, |l| l.max(t)));
                let r = &prepared.routes[*ri];
                let er = EventRef {
                    ts: t,
                    key: &e.key,
                    route: &r.route,
                    scope: r.scope.as_deref(),
                    access: r.access,
                    status: e.status,
                    source_ip: *ipaddr,
                    user_agent: e.user_agent.as_deref(),
                    via_proxy: e.via_proxy(),
                    host: e.host.as_deref(),
                    account: e.account_id.as_deref(),
                };
                roll.keys
                    .entry(key[i])
                    .or_insert_with(|| KeySeries::new(&e.key))
                    .add(&er, 1);
                let network = net.as_deref().map_or(0, |n| net_of[n]);
                *roll
                    .calls
                    .entry((
                        key[i],
                        t.div_euclid(HOUR),
                        route[i],
                        status_class(e.status),
                        network,
                        agent[i],
                    ))
                    .or_default() += 1;
                *roll.days.entry(t.div_euclid(DAY)).or_default() += 1;
            }
            merge_rollups(&mut tx, &roll).map_err(q("merge rollups"))?;
            if let Some(last) = out.last {
                tx.execute(
                    "INSERT INTO usage_meta (name, value) VALUES ('newest', $1) \
                     ON CONFLICT (name) DO UPDATE SET \
                     value = GREATEST(usage_meta.value, excluded.value)",
                    &[&last],
                )
                .map_err(q("move the newest event"))?;
            }
            if let Some(c) = cursor {
                tx.execute(
                    "INSERT INTO usage_sources (source, dev, ino, \"offset\", lines, head, \
                     head_len, size, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (source) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, \
                     \"offset\" = excluded.\"offset\", lines = excluded.lines, \
                     head = excluded.head, head_len = excluded.head_len, size = excluded.size, \
                     updated = excluded.updated",
                    pg_params![
                        c.source,
                        c.dev as i64,
                        c.ino as i64,
                        c.offset as i64,
                        c.lines as i64,
                        c.head,
                        c.head_len as i64,
                        c.size as i64,
                        Utc::now().timestamp()
                    ],
                )
                .map_err(q("move the source cursor"))?;
            }
            tx.commit().map_err(q("commit usage batch"))?;
            out.keys = roll.keys.into_values().map(|k| k.key).collect();
            Ok(out)
        })
    }
}

/// The distinct values, sorted (rows are then locked in one order by every writer).
fn uniq<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: BTreeSet<&str> = it.collect();
    set.into_iter().map(str::to_string).collect()
}

/// Merges a batch's rollups: the encoded ones read `FOR UPDATE` (rows made first when missing,
/// so two writers meet on one row), merged and written back; counters added in the statement.
fn merge_rollups(tx: &mut Transaction<'_>, roll: &Rollups) -> Result<(), postgres::Error> {
    // hourly buckets
    let mut hours: BTreeMap<(i64, i64), HourBucket> = BTreeMap::new();
    for (key, ks) in &roll.keys {
        for (hour, b) in &ks.hours {
            hours.insert((*key, *hour), *b);
        }
    }
    if !hours.is_empty() {
        let k: Vec<i64> = hours.keys().map(|x| x.0).collect();
        let h: Vec<i64> = hours.keys().map(|x| x.1).collect();
        tx.execute(
            "INSERT INTO usage_hours (key, hour, bucket) \
             SELECT k, h, '\\x'::bytea FROM unnest($1::bigint[], $2::bigint[]) u(k, h) \
             ON CONFLICT DO NOTHING",
            &[&k, &h],
        )?;
        let mut merged: BTreeMap<(i64, i64), HourBucket> = BTreeMap::new();
        for r in tx.query(
            "SELECT t.key, t.hour, t.bucket FROM usage_hours t \
             JOIN unnest($1::bigint[], $2::bigint[]) u(k, h) ON t.key = u.k AND t.hour = u.h \
             ORDER BY t.key, t.hour FOR UPDATE OF t",
            &[&k, &h],
        )? {
            let id = (r.get::<_, i64>(0), r.get::<_, i64>(1));
            let mut old = HourBucket::from_bytes(r.get::<_, &[u8]>(2)).unwrap_or_default();
            if let Some(b) = hours.get(&id) {
                old.merge(b);
            }
            merged.insert(id, old);
        }
        let k: Vec<i64> = merged.keys().map(|x| x.0).collect();
        let h: Vec<i64> = merged.keys().map(|x| x.1).collect();
        let b: Vec<Vec<u8>> = merged.values().map(HourBucket::to_bytes).collect();
        tx.execute(
            "UPDATE usage_hours t SET bucket = u.b \
             FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) u(k, h, b) \
             WHERE t.key = u.k AND t.hour = u.h",
            &[&k, &h, &b],
        )?;
    }
    // first appearances
    let mut attrs: BTreeMap<(i64, i64, String), &AttrStats> = BTreeMap::new();
    for (key, ks) in &roll.keys {
        for (kind, m) in &ks.attrs {
            for (value, a) in m {
                attrs.insert((*key, kind_code(*kind), clean(value)), a);
            }
        }
    }
    if !attrs.is_empty() {
        let k: Vec<i64> = attrs.keys().map(|x| x.0).collect();
        let kd: Vec<i64> = attrs.keys().map(|x| x.1).collect();
        let v: Vec<&str> = attrs.keys().map(|x| x.2.as_str()).collect();
        tx.execute(
            "INSERT INTO usage_attrs (key, kind, value, stats) \
             SELECT k, kd, v, '\\x'::bytea FROM unnest($1::bigint[], $2::bigint[], $3::text[]) \
             u(k, kd, v) ON CONFLICT DO NOTHING",
            &[&k, &kd, &v],
        )?;
        let mut merged: Vec<(i64, i64, String, Vec<u8>)> = Vec::with_capacity(attrs.len());
        for r in tx.query(
            "SELECT t.key, t.kind, t.value, t.stats FROM usage_attrs t \
             JOIN unnest($1::bigint[], $2::bigint[], $3::text[]) u(k, kd, v) \
             ON t.key = u.k AND t.kind = u.kd AND t.value = u.v \
             ORDER BY t.key, t.kind, t.value FOR UPDATE OF t",
            &[&k, &kd, &v],
        )? {
            let id: (i64, i64, String) = (r.get(0), r.get(1), r.get(2));
            let mut old = AttrStats::from_bytes(r.get::<_, &[u8]>(3)).unwrap_or_default();
            if let Some(a) = attrs.get(&id) {
                old.merge(a);
            }
            merged.push((id.0, id.1, id.2, old.to_bytes()));
        }
        let k: Vec<i64> = merged.iter().map(|x| x.0).collect();
        let kd: Vec<i64> = merged.iter().map(|x| x.1).collect();
        let v: Vec<&str> = merged.iter().map(|x| x.2.as_str()).collect();
        let b: Vec<&[u8]> = merged.iter().map(|x| x.3.as_slice()).collect();
        tx.execute(
            "UPDATE usage_attrs t SET stats = u.b \
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[]) u(k, kd, v, b) \
             WHERE t.key = u.k AND t.kind = u.kd AND t.value = u.v",
            &[&k, &kd, &v, &b],
        )?;
    }
    // counters
    if !roll.calls.is_empty() {
        let col = |f: fn(&CallKey) -> i64| -> Vec<i64> { roll.calls.keys().map(f).collect() };
        let n: Vec<i64> = roll.calls.values().copied().collect();
        tx.execute(
            "INSERT INTO usage_hour_calls (key, hour, route, class, network, agent, calls) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
             $5::bigint[], $6::bigint[], $7::bigint[]) \
             ON CONFLICT (key, hour, route, class, network, agent) \
             DO UPDATE SET calls = usage_hour_calls.calls + excluded.calls",
            &[
                &col(|x| x.0),
                &col(|x| x.1),
                &col(|x| x.2),
                &col(|x| x.3),
                &col(|x| x.4),
                &col(|x| x.5),
                &n,
            ],
        )?;
    }
    if !roll.days.is_empty() {
        let d: Vec<i64> = roll.days.keys().copied().collect();
        let n: Vec<i64> = roll.days.values().copied().collect();
        tx.execute(
            "INSERT INTO usage_days (day, events) SELECT * FROM unnest($1::bigint[], $2::bigint[]) \
             ON CONFLICT (day) DO UPDATE SET events = usage_days.events + excluded.events",
            &[&d, &n],
        )?;
    }
    Ok(())
}
