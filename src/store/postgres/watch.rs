//! The money-movement watch's state on PostgreSQL, as `store/watch.rs`: a page of objects and
//! the cursor that follows it in one transaction; each object stored once per watcher (a row
//! another writer is storing at the same moment is waited for, then read as stored).

use super::{pg_params, PgStore};
use crate::store::watch::{PendingRead, Seen, StoredObject, WatchCursor, WatchObject, WatchState};
use crate::store::{ts, StoreError};
use chrono::{DateTime, Utc};

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

fn parse_opt(s: Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref().and_then(parse)
}

const OBJECT_COLUMNS: &str =
    "kind, id, version, at, changed_at, first_seen, last_seen, judged, data, previous";

fn stored(r: &postgres::Row) -> StoredObject {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let data: String = r.get(8);
    let previous: Option<String> = r.get(9);
    StoredObject {
        object: WatchObject {
            kind: r.get(0),
            id: r.get(1),
            version: r.get(2),
            at: parse(r.get(3)).unwrap_or(epoch),
            changed_at: parse_opt(r.get(4)),
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        },
        previous: previous.and_then(|p| serde_json::from_str(&p).ok()),
        first_seen: parse(r.get(5)).unwrap_or(epoch),
        last_seen: parse(r.get(6)).unwrap_or(epoch),
        judged: r.get::<_, i64>(7) != 0,
    }
}

impl WatchState for PgStore {
    fn watch_cursor(&self, watcher: &str, list: &str) -> Result<WatchCursor, StoreError> {
        let row = self.run(|c| {
            c.query_opt(
                "SELECT high_water, pending_from, pending_to, pending_page FROM watch_cursors \
                 WHERE watcher = $1 AND list = $2",
                pg_params![watcher, list],
            )
            .map_err(self.q("read watch cursor"))
        })?;
        Ok(match row {
            None => WatchCursor::default(),
            Some(r) => WatchCursor {
                high_water: parse_opt(r.get(0)),
                pending: match (parse_opt(r.get(1)), parse_opt(r.get(2))) {
                    (Some(from), Some(to)) => Some(PendingRead {
                        from,
                        to,
                        page: r.get(3),
                    }),
                    _ => None,
                },
            },
        })
    }

    fn watch_save_page(
        &self,
        watcher: &str,
        list: &str,
        objects: &[WatchObject],
        cursor: Option<&WatchCursor>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Seen>, StoreError> {
        let now_s = ts(now);
        self.run(|c| {
            let q = |what| self.q(what);
            let mut tx = c.transaction().map_err(q("begin"))?;
            let mut out = Vec::with_capacity(objects.len());
            // A row made here, or waited for and then read `FOR UPDATE`: two pollers of one
            // watcher agree on new / changed / unchanged.
            let insert = tx
                .prepare(
                    "INSERT INTO watch_objects (watcher, kind, id, version, at, changed_at, \
                     first_seen, last_seen, judged, data) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0, $8) ON CONFLICT DO NOTHING",
                )
                .map_err(q("prepare watch insert"))?;
            let get = tx
                .prepare(
                    "SELECT version, data FROM watch_objects \
                     WHERE watcher = $1 AND kind = $2 AND id = $3 FOR UPDATE",
                )
                .map_err(q("prepare watch lookup"))?;
            let touch = tx
                .prepare(
                    "UPDATE watch_objects SET last_seen = $4, data = $5 \
                     WHERE watcher = $1 AND kind = $2 AND id = $3",
                )
                .map_err(q("prepare watch touch"))?;
            let change = tx
                .prepare(
                    "UPDATE watch_objects SET version = $4, at = $5, changed_at = $6, \
                     last_seen = $7, judged = 0, data = $8, previous = $9 \
                     WHERE watcher = $1 AND kind = $2 AND id = $3",
                )
                .map_err(q("prepare watch change"))?;
            for o in objects {
                let data = o.data.to_string();
                let made = tx
                    .execute(
                        &insert,
                        pg_params![
                            watcher,
                            o.kind,
                            o.id,
                            o.version,
                            ts(o.at),
                            o.changed_at.map(ts),
                            now_s,
                            data
                        ],
                    )
                    .map_err(q("insert watch object"))?;
                if made == 1 {
                    out.push(Seen::New);
                    continue;
                }
                let prior = tx
                    .query_one(&get, pg_params![watcher, o.kind, o.id])
                    .map_err(q("look up watch object"))?;
                let (version, old): (String, String) = (prior.get(0), prior.get(1));
                if version == o.version {
                    tx.execute(&touch, pg_params![watcher, o.kind, o.id, now_s, data])
                        .map_err(q("touch watch object"))?;
                    out.push(Seen::Unchanged);
                } else {
                    tx.execute(
                        &change,
                        pg_params![
                            watcher,
                            o.kind,
                            o.id,
                            o.version,
                            ts(o.at),
                            ts(o.changed_at.unwrap_or(now)),
                            now_s,
                            data,
                            old
                        ],
                    )
                    .map_err(q("change watch object"))?;
                    out.push(Seen::Changed);
                }
            }
            if let Some(cur) = cursor {
                let p = cur.pending.as_ref();
                tx.execute(
                    "INSERT INTO watch_cursors (watcher, list, high_water, pending_from, \
                     pending_to, pending_page, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (watcher, list) DO UPDATE SET high_water = excluded.high_water, \
                     pending_from = excluded.pending_from, pending_to = excluded.pending_to, \
                     pending_page = excluded.pending_page, updated_at = excluded.updated_at",
                    pg_params![
                        watcher,
                        list,
                        cur.high_water.map(ts),
                        p.map(|p| ts(p.from)),
                        p.map(|p| ts(p.to)),
                        p.and_then(|p| p.page.clone()),
                        now_s
                    ],
                )
                .map_err(q("write watch cursor"))?;
            }
            tx.commit().map_err(q("commit watch page"))?;
            Ok(out)
        })
    }

    fn watch_unjudged(&self, watcher: &str) -> Result<Vec<StoredObject>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                &format!(
                    "SELECT {OBJECT_COLUMNS} FROM watch_objects WHERE watcher = $1 AND judged = 0 \
                     ORDER BY at, id"
                ),
                pg_params![watcher],
            )
            .map_err(self.q("list unjudged"))
        })?;
        Ok(rows.iter().map(stored).collect())
    }

    fn watch_objects(
        &self,
        watcher: &str,
        kind: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<StoredObject>, StoreError> {
        let rows = self.run(|c| {
            c.query(
                &format!(
                    "SELECT {OBJECT_COLUMNS} FROM watch_objects \
                     WHERE watcher = $1 AND kind = $2 AND at >= $3 ORDER BY at, id"
                ),
                pg_params![watcher, kind, ts(since)],
            )
            .map_err(self.q("list watch objects"))
        })?;
        Ok(rows.iter().map(stored).collect())
    }

    fn watch_object(
        &self,
        watcher: &str,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredObject>, StoreError> {
        let row = self.run(|c| {
            c.query_opt(
                &format!(
                    "SELECT {OBJECT_COLUMNS} FROM watch_objects \
                     WHERE watcher = $1 AND kind = $2 AND id = $3"
                ),
                pg_params![watcher, kind, id],
            )
            .map_err(self.q("read watch object"))
        })?;
        Ok(row.as_ref().map(stored))
    }

    fn watch_mark_judged(
        &self,
        watcher: &str,
        objects: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.run(|c| {
            let mut tx = c.transaction().map_err(self.q("begin"))?;
            let mark = tx
                .prepare(
                    "UPDATE watch_objects SET judged = 1 \
                     WHERE watcher = $1 AND kind = $2 AND id = $3",
                )
                .map_err(self.q("prepare mark judged"))?;
            for (kind, id) in objects {
                tx.execute(&mark, pg_params![watcher, kind, id])
                    .map_err(self.q("mark judged"))?;
            }
            tx.commit().map_err(self.q("commit mark judged"))
        })
    }

    fn watch_prune(
        &self,
        watcher: &str,
        kinds: &[&str],
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.run(|c| {
            let mut n = 0;
            for k in kinds {
                n += c
                    .execute(
                        "DELETE FROM watch_objects WHERE watcher = $1 AND kind = $2 AND at < $3 \
                         AND judged = 1",
                        pg_params![watcher, k, ts(before)],
                    )
                    .map_err(self.q("prune watch objects"))?;
            }
            Ok(n as usize)
        })
    }
}
