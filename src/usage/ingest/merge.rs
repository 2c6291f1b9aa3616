//! The sources' aggregates merged into per-key evidence.

use super::super::evidence::{Evidence, KeyUsage, RouteUsage, SourceSpan};
use super::{FxMap, Partial, MAX_PROBLEMS};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

fn merge_counts(into: &mut BTreeMap<String, u64>, from: FxMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}

pub(super) fn merge(partials: Vec<Partial>) -> Evidence {
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
