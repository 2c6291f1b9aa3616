//! One batch of usage events in one transaction: the batch's routes classified and its names
//! (keys, routes, agents, networks) made or read back, its events inserted with `unnest` (a
//! conflict is a duplicate), the new events' rollups merged, the newest event and the source
//! cursor moved.

use super::super::{pg_params, PgStore};
use super::rollups::{merge_rollups, Rollups};
use super::{clean, clean_opt};
use crate::airwallex::Catalog;
use crate::store::usage::{
    access_code, status_class, Appended, SourceCursor, UsageEvent, NAME_AGENT, NAME_NETWORK,
};
use crate::store::usage_series::{classify, network_of, Access, EventRef, KeySeries, DAY, HOUR};
use crate::store::StoreError;
use chrono::Utc;
use postgres::Transaction;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// A route as classified by the catalog.
struct Route {
    route: String,
    scope: Option<String>,
    access: Access,
}

/// What a batch needs before its transaction: each event's route, network and names.
pub(super) struct Prepared {
    routes: Vec<Route>,
    /// Per event: index into `routes`, its address, its network name.
    per_event: Vec<(usize, Option<IpAddr>, Option<String>)>,
}

pub(super) fn prepare(events: &[UsageEvent], catalog: &Catalog) -> Prepared {
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
impl PgStore {
    pub(super) fn append_once(
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
