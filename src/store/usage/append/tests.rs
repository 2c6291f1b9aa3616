use super::super::UsageRecords;
use super::*;
use crate::store::SqliteStore;
use chrono::{TimeZone, Utc};

/// A varied stream: several keys, agents, networks, routes with IDs, statuses, object ids,
/// and calls in the same millisecond.
fn stream() -> Vec<UsageEvent> {
    let mut out = Vec::new();
    let mut x: u64 = 7;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    for i in 0..3_000u64 {
        let r = next();
        let ts = base + chrono::Duration::milliseconds((i * 97_000 + r % 5) as i64 / 2 * 2);
        let path = match r % 4 {
            0 => "/api/v1/balances/current".to_string(),
            1 => format!("/api/v1/transfers/{:08x}-aaaa", r % 50),
            2 => "/api/v1/beneficiaries/create".to_string(),
            _ => format!("/api/v1/unknown/{}1234567", r % 3),
        };
        out.push(UsageEvent {
            ts,
            key: format!("key-{}", r % 5),
            method: if r % 4 == 2 { "POST" } else { "GET" }.into(),
            path,
            status: [200, 200, 201, 403, 429, 500][(r % 6) as usize],
            source_ip: Some(format!("198.51.{}.{}", r % 3, r % 200)),
            user_agent: (r % 7 != 0).then(|| format!("svc/{}", r % 3)),
            account_id: (r % 11 == 0).then(|| "acct_1".to_string()),
            latency_ms: Some((r % 300) as f64),
            host: Some("api.airwallex.com".into()),
            via: (r % 13 == 0).then(|| "proxy".to_string()),
            object_ids: if r % 9 == 0 {
                vec![format!("obj_{r}")]
            } else {
                vec![]
            },
        });
    }
    out
}

/// Everything the store holds of its usage, as comparable text.
fn holdings(s: &SqliteStore) -> Vec<String> {
    let mut out: Vec<String> = s
        .usage_key_names()
        .unwrap()
        .iter()
        .map(|k| format!("{:?}", s.usage_key_series(k).unwrap()))
        .collect();
    let conn = s.conn();
    for sql in [
        "SELECT k.name, c.hour, r.route, c.class, coalesce(n.name, ''), \
         coalesce(a.name, ''), c.calls FROM usage_hour_calls c \
         JOIN usage_keys k ON k.id = c.key JOIN usage_routes r ON r.id = c.route \
         LEFT JOIN usage_names n ON n.id = c.network LEFT JOIN usage_names a ON a.id = c.agent \
         ORDER BY 1, 2, 3, 4, 5, 6",
        "SELECT day, events, '', '', '', '', '' FROM usage_days ORDER BY day",
        "SELECT e.ts, e.hash, k.name, e.path, e.status, coalesce(e.objects, ''), '' \
         FROM usage_events e JOIN usage_keys k ON k.id = e.key ORDER BY 1, 2",
    ] {
        let mut st = conn.prepare(sql).unwrap();
        let rows = st
            .query_map([], |r| {
                let v: Vec<String> = (0..7)
                    .map(|i| r.get_ref(i).map(|x| format!("{x:?}")).unwrap_or_default())
                    .collect();
                Ok(v.join("|"))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

fn store(dir: &tempfile::TempDir, name: &str) -> SqliteStore {
    SqliteStore::open(&dir.path().join(name)).unwrap()
}

/// The fast path (all new, many rows per statement) and the careful one (some events
/// already stored, repeats inside a batch) leave exactly the same store.
#[test]
fn one_batch_pieces_overlaps_and_shuffles_store_the_same() {
    let events = stream();
    let cat = Catalog::builtin();
    let dir = tempfile::tempdir().unwrap();

    let whole = store(&dir, "whole.db");
    let a = whole.append_usage(&events, &cat, None).unwrap();
    assert_eq!(a.new, events.len() as u64);
    let expected = holdings(&whole);

    // in order, in pieces of 700 (not a multiple of the statement's 64 rows)
    let pieces = store(&dir, "pieces.db");
    for c in events.chunks(700) {
        pieces.append_usage(c, &cat, None).unwrap();
    }
    assert_eq!(holdings(&pieces), expected, "in pieces");

    // overlapping pieces, each repeating the end of the one before, and a batch holding
    // the same event twice
    let overlap = store(&dir, "overlap.db");
    let mut dups = 0;
    let mut at = 0;
    while at < events.len() {
        let from = at.saturating_sub(150);
        let to = (at + 900).min(events.len());
        let mut batch = events[from..to].to_vec();
        batch.push(events[to - 1].clone());
        dups += overlap.append_usage(&batch, &cat, None).unwrap().duplicates;
        at = to;
    }
    assert!(dups > 150, "{dups} duplicates");
    assert_eq!(holdings(&overlap), expected, "overlapping");

    // shuffled, then everything again: nothing added
    let shuffled = store(&dir, "shuffled.db");
    let mut mixed = events.clone();
    let mut x: usize = 3;
    for i in (1..mixed.len()).rev() {
        x = x.wrapping_mul(1103515245).wrapping_add(12345) % 2_147_483_648;
        mixed.swap(i, x % (i + 1));
    }
    for c in mixed.chunks(1_000) {
        shuffled.append_usage(c, &cat, None).unwrap();
    }
    let again = shuffled.append_usage(&events, &cat, None).unwrap();
    assert_eq!((again.new, again.duplicates), (0, events.len() as u64));
    assert_eq!(holdings(&shuffled), expected, "shuffled");
}

/// Rollups older than the rollup retention go (hours, hourly calls, days, first appearances
/// last seen before it); newer ones, and raw events inside the raw retention, stay. A prune with
/// nothing old enough removes no rollup.
#[test]
fn pruning_drops_rollups_past_retention_and_keeps_the_rest() {
    let cat = Catalog::builtin();
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "prune.db");
    let mut old = stream();
    old.truncate(200);
    let mut new = stream();
    new.truncate(200);
    for e in &mut new {
        e.ts += chrono::Duration::days(500);
        e.source_ip = Some("203.0.113.9".into()); // an address only the new events have
    }
    s.append_usage(&old, &cat, None).unwrap();
    s.append_usage(&new, &cat, None).unwrap();
    let count = |sql: &str| -> i64 { s.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
    let newest = new.iter().map(|e| e.ts).max().unwrap();
    let (hours, calls, days, attrs) = (
        count("SELECT count(*) FROM usage_hours"),
        count("SELECT count(*) FROM usage_hour_calls"),
        count("SELECT count(*) FROM usage_days"),
        count("SELECT count(*) FROM usage_attrs"),
    );

    // nothing older than a retention that reaches back past every event
    let p = s
        .usage_prune(
            newest - chrono::Duration::days(600),
            newest - chrono::Duration::days(600),
        )
        .unwrap();
    assert_eq!((p.raw_events, p.hours, p.values), (0, 0, 0));
    assert_eq!(count("SELECT count(*) FROM usage_hours"), hours);

    // 400 days of rollups, 35 of raw events: the old stream's rollups and raw events go
    let p = s
        .usage_prune(
            newest - chrono::Duration::days(35),
            newest - chrono::Duration::days(400),
        )
        .unwrap();
    assert_eq!(p.raw_events, 200);
    assert!(p.hours > 0 && p.values > 0, "{p:?}");
    let cut = (newest - chrono::Duration::days(400)).timestamp();
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM usage_hours WHERE hour < {}",
            cut / 3600
        )),
        0
    );
    assert!(count("SELECT count(*) FROM usage_hour_calls") < calls);
    assert!(count("SELECT count(*) FROM usage_days") < days);
    assert!(count("SELECT count(*) FROM usage_attrs") < attrs);
    assert_eq!(count("SELECT count(*) FROM usage_events"), 200);
    assert_eq!(
        count("SELECT count(*) FROM usage_hours") as u64,
        hours as u64 - p.hours
    );
    // every key's series now starts with the new events
    for k in s.usage_key_names().unwrap() {
        let ks = s.usage_key_series(&k).unwrap();
        assert!(ks.hours.keys().all(|h| h * 3600 >= cut), "{k}");
    }
}

/// A text the redaction gate changes is stored as the gate left it, on the fast path and the
/// careful one alike: no row holds the key.
#[test]
fn texts_holding_a_key_are_stored_redacted() {
    let cat = Catalog::builtin();
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "redact.db");
    let secret: String = (0..96)
        .map(|i| b"0123456789abcdef"[(i * 7 + 3) % 16] as char)
        .collect();
    let mut events = stream();
    events.truncate(130);
    events[5].path = format!("/api/v1/balances/current?k={secret}");
    events[100].host = Some(format!("h{secret}.example"));
    s.append_usage(&events[..70], &cat, None).unwrap(); // all new: many rows per statement
    s.append_usage(&events[60..], &cat, None).unwrap(); // overlapping: row by row
    let conn = s.conn();
    let mut st = conn
        .prepare("SELECT path, coalesce(host, '') FROM usage_events")
        .unwrap();
    let rows: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 130);
    assert!(rows
        .iter()
        .all(|(p, h)| !p.contains(&secret) && !h.contains(&secret)));
    assert_eq!(
        rows.iter()
            .filter(|(p, h)| p.contains("[redacted") || h.contains("[redacted"))
            .count(),
        2
    );
}
