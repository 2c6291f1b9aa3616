//! Merging a batch's rollups into the shared ones: encoded hourly buckets and first
//! appearances read `FOR UPDATE`, merged and written back; call and day counters added in the
//! statement.

use super::clean;
use crate::store::usage::kind_code;
use crate::store::usage_series::{AttrStats, HourBucket, KeySeries};
use postgres::Transaction;
use std::collections::BTreeMap;

/// A row of the hourly calls rollup: key, hour, route, status class, network, agent.
type CallKey = (i64, i64, i64, i64, i64, i64);

/// Rollups of the new events of one batch.
#[derive(Default)]
pub(super) struct Rollups {
    pub(super) keys: BTreeMap<i64, KeySeries>,
    pub(super) calls: BTreeMap<CallKey, i64>,
    pub(super) days: BTreeMap<i64, i64>,
}

/// Merges a batch's rollups: the encoded ones read `FOR UPDATE` (rows made first when missing,
/// so two writers meet on one row), merged and written back; counters added in the statement.
pub(super) fn merge_rollups(
    tx: &mut Transaction<'_>,
    roll: &Rollups,
) -> Result<(), postgres::Error> {
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
