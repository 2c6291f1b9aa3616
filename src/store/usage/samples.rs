//! What both backends read back: a key's holdings, and raw events as samples of a finding.

use super::codes::access_of;
use super::{KeyHoldings, SampleQuery, UsageEvent};
use crate::store::usage_series::{user_agent_family, KeySeries, DAY, HOUR};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeSet;
use std::net::IpAddr;

pub(super) fn to_ts(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// What the store holds of one key: its series and `raw` raw events kept.
pub(in crate::store) fn holdings_of(ks: &KeySeries, raw: u64) -> KeyHoldings {
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
pub(in crate::store) struct SampleRow {
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
pub(in crate::store) const SAMPLES_SQL: &str =
    "SELECT e.ts, r.route, r.scope, r.access, e.path, e.status, e.ip, a.name, e.host, \
     e.account, e.latency, e.via, e.objects \
     FROM usage_events e JOIN usage_keys k ON k.id = e.key \
     JOIN usage_routes r ON r.id = e.route \
     LEFT JOIN usage_names a ON a.id = e.agent \
     WHERE e.ts >= $1 AND e.ts < $2 AND k.name = $3 ORDER BY e.ts LIMIT 20000";

/// The contract line of a stored event of `key` when it matches `query` (`cidr`: the query's
/// network, parsed once).
pub(in crate::store) fn sample_of(
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
