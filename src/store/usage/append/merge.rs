//! Merging a batch's rollups into the tables, key by key in primary-key order: a key's hour
//! buckets read back with one range query, then inserted or updated in place; its first
//! appearances read, merged and written one by one; hourly calls upserted many rows per
//! statement.

use super::{values, FxMap, Ids, Rollups};
use crate::store::params;
use crate::store::usage::kind_code;
use crate::store::usage_series::{AttrStats, HourBucket, KeySeries};
use rusqlite::{OptionalExtension, Statement, Transaction};

/// Rows per multi-row upsert of hourly calls (7 values each).
const CALL_CHUNK: usize = 128;

/// Merges a batch's rollups into the tables, key by key in primary-key order.
pub(super) fn merge_rollups(
    tx: &Transaction<'_>,
    roll: &Rollups,
    ids: &Ids,
) -> rusqlite::Result<()> {
    let mut hours_of = tx.prepare_cached(
        "SELECT hour, bucket FROM usage_hours WHERE key = ?1 AND hour >= ?2 AND hour <= ?3",
    )?;
    let mut add_hour =
        tx.prepare_cached("INSERT INTO usage_hours (key, hour, bucket) VALUES (?1, ?2, ?3)")?;
    let mut set_hour =
        tx.prepare_cached("UPDATE usage_hours SET bucket = ?3 WHERE key = ?1 AND hour = ?2")?;
    let mut get_attr = tx.prepare_cached(
        "SELECT stats FROM usage_attrs WHERE key = ?1 AND kind = ?2 AND value = ?3",
    )?;
    let mut add_attr = tx.prepare_cached(
        "INSERT INTO usage_attrs (key, kind, value, stats) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut set_attr = tx.prepare_cached(
        "UPDATE usage_attrs SET stats = ?4 WHERE key = ?1 AND kind = ?2 AND value = ?3",
    )?;
    let mut keys: Vec<(i64, &KeySeries)> = roll
        .keys
        .iter()
        .map(|(k, ks)| (ids.keys[*k as usize], ks))
        .collect();
    keys.sort_unstable_by_key(|(id, _)| *id);
    for (key, ks) in keys {
        let (Some(lo), Some(hi)) = (ks.hours.keys().next(), ks.hours.keys().next_back()) else {
            continue;
        };
        let mut stored: FxMap<i64, Vec<u8>> = FxMap::default();
        let rows = hours_of.query_map(params![key, lo, hi], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            let (h, bytes) = row?;
            stored.insert(h, bytes);
        }
        for (hour, b) in &ks.hours {
            match stored.get(hour) {
                None => {
                    add_hour.raw_bind_parameter(1, key)?;
                    add_hour.raw_bind_parameter(2, hour)?;
                    add_hour.raw_bind_parameter(3, b.to_bytes())?;
                    add_hour.raw_execute()?;
                }
                Some(old) => {
                    let mut merged = HourBucket::from_bytes(old).unwrap_or_default();
                    merged.merge(b);
                    set_hour.raw_bind_parameter(1, key)?;
                    set_hour.raw_bind_parameter(2, hour)?;
                    set_hour.raw_bind_parameter(3, merged.to_bytes())?;
                    set_hour.raw_execute()?;
                }
            }
        }
        for (kind, m) in &ks.attrs {
            let code = kind_code(*kind);
            for (value, a) in m {
                let old: Option<Vec<u8>> = get_attr
                    .query_row(params![key, code, value], |r| r.get(0))
                    .optional()?;
                match old {
                    None => {
                        add_attr.execute(params![key, code, value, a.to_bytes()])?;
                    }
                    Some(old) => {
                        let mut merged = AttrStats::from_bytes(&old).unwrap_or_default();
                        merged.merge(a);
                        set_attr.execute(params![key, code, value, merged.to_bytes()])?;
                    }
                }
            }
        }
    }
    let mut calls: Vec<([i64; 6], i64)> = roll
        .calls
        .iter()
        .map(|((key, hour, route, class, network, agent), n)| {
            (
                [
                    ids.keys[*key as usize],
                    *hour,
                    ids.routes[*route as usize],
                    *class,
                    ids.network(*network),
                    ids.agent(*agent),
                ],
                *n,
            )
        })
        .collect();
    calls.sort_unstable();
    // numbers only: no text to gate
    let upsert = |rows: usize| {
        format!(
            "INSERT INTO usage_hour_calls (key, hour, route, class, network, agent, calls) \
             VALUES {} ON CONFLICT (key, hour, route, class, network, agent) \
             DO UPDATE SET calls = calls + excluded.calls",
            values(rows, 7)
        )
    };
    let mut many = tx.prepare_cached(&upsert(CALL_CHUNK))?;
    let mut one = tx.prepare_cached(&upsert(1))?;
    let bind =
        |s: &mut Statement<'_>, at: usize, (cols, n): &([i64; 6], i64)| -> rusqlite::Result<()> {
            for (c, v) in cols.iter().chain(std::iter::once(n)).enumerate() {
                s.raw_bind_parameter(at + c + 1, *v)?;
            }
            Ok(())
        };
    let mut chunks = calls.chunks_exact(CALL_CHUNK);
    for c in &mut chunks {
        for (j, row) in c.iter().enumerate() {
            bind(&mut many, j * 7, row)?;
        }
        many.raw_execute()?;
    }
    for row in chunks.remainder() {
        bind(&mut one, 0, row)?;
        one.raw_execute()?;
    }
    let mut days = tx.prepare_cached(
        "INSERT INTO usage_days (day, events) VALUES (?1, ?2) \
         ON CONFLICT (day) DO UPDATE SET events = events + excluded.events",
    )?;
    let mut by_day: Vec<(&i64, &i64)> = roll.days.iter().collect();
    by_day.sort_unstable();
    for (day, n) in by_day {
        days.execute(params![day, n])?;
    }
    Ok(())
}
