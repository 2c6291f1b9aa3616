//! The money-movement watch's area: per watcher and list, how far the list was read (a
//! high-water mark) and the window a stopped poll was reading; and the objects seen, each judged
//! once. A page of objects and the cursor that follows it are written in one transaction, so a
//! poll that stops (a 429, a crash) resumes exactly after the last page it stored, and an object
//! stored but not yet judged (the process died before recording its findings) is judged by the
//! next poll.

use super::params;
use super::{ts, SqliteStore, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

/// How far one list has been read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchCursor {
    /// Every item with a time at or before this was read; `None` before the first complete read.
    pub high_water: Option<DateTime<Utc>>,
    /// The window a poll was reading when it stopped, if it did.
    pub pending: Option<PendingRead>,
}

/// A window being read, page by page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRead {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The next page: a cursor (`page_after`) or a page number, as the list pages; `None` for
    /// the first page.
    pub page: Option<String>,
}

/// An object as the watch stores it: what the detectors need, never a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchObject {
    /// `transfer`, `beneficiary`, `webhook`, `financial_transaction`, `balance`.
    pub kind: String,
    pub id: String,
    /// A hash of the fields whose change matters.
    pub version: String,
    /// The object's own time (`created_at`, `posted_at`).
    pub at: DateTime<Utc>,
    /// When the current version appeared, if the object says (`updated_at`).
    pub changed_at: Option<DateTime<Utc>>,
    /// The fields the detectors read.
    pub data: serde_json::Value,
}

/// A stored object with what the store knows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub object: WatchObject,
    /// The fields of the version before, when the version changed.
    pub previous: Option<serde_json::Value>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Whether a recorded poll has judged this version.
    pub judged: bool,
}

/// What storing an object found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Never stored before.
    New,
    /// Stored with another version (the previous one is kept in `previous`).
    Changed,
    /// Stored with this version.
    Unchanged,
}

/// The watch's state.
pub trait WatchState {
    /// How far `list` has been read for `watcher`.
    fn watch_cursor(&self, watcher: &str, list: &str) -> Result<WatchCursor, StoreError>;

    /// Stores a page of objects and, when given, the cursor that follows it, in one transaction.
    /// Returns what each object was (new, changed, unchanged). A new or changed object is not
    /// judged until `watch_mark_judged`.
    fn watch_save_page(
        &self,
        watcher: &str,
        list: &str,
        objects: &[WatchObject],
        cursor: Option<&WatchCursor>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Seen>, StoreError>;

    /// Objects not judged yet (new or changed since the last recorded poll).
    fn watch_unjudged(&self, watcher: &str) -> Result<Vec<StoredObject>, StoreError>;

    /// Objects of `kind` with a time at or after `since`, oldest first.
    fn watch_objects(
        &self,
        watcher: &str,
        kind: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<StoredObject>, StoreError>;

    /// One object.
    fn watch_object(
        &self,
        watcher: &str,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredObject>, StoreError>;

    /// Marks objects (kind, id) judged.
    fn watch_mark_judged(
        &self,
        watcher: &str,
        objects: &[(String, String)],
    ) -> Result<(), StoreError>;

    /// Forgets judged objects of `kinds` older than `before`; returns how many.
    fn watch_prune(
        &self,
        watcher: &str,
        kinds: &[&str],
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError>;
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

fn parse_opt(s: Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref().and_then(parse)
}

/// high_water, pending_from, pending_to, pending_page.
type CursorRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const OBJECT_COLUMNS: &str =
    "kind, id, version, at, changed_at, first_seen, last_seen, judged, data, previous";

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredObject> {
    let at: String = r.get(3)?;
    let first: String = r.get(5)?;
    let last: String = r.get(6)?;
    let data: String = r.get(8)?;
    let previous: Option<String> = r.get(9)?;
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    Ok(StoredObject {
        object: WatchObject {
            kind: r.get(0)?,
            id: r.get(1)?,
            version: r.get(2)?,
            at: parse(&at).unwrap_or(epoch),
            changed_at: parse_opt(r.get(4)?),
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        },
        previous: previous.and_then(|p| serde_json::from_str(&p).ok()),
        first_seen: parse(&first).unwrap_or(epoch),
        last_seen: parse(&last).unwrap_or(epoch),
        judged: r.get::<_, i64>(7)? != 0,
    })
}

impl WatchState for SqliteStore {
    fn watch_cursor(&self, watcher: &str, list: &str) -> Result<WatchCursor, StoreError> {
        let conn = self.conn();
        let row: Option<CursorRow> = conn
            .prepare_cached(
                "SELECT high_water, pending_from, pending_to, pending_page FROM watch_cursors \
                 WHERE watcher = ?1 AND list = ?2",
            )
            .map_err(self.q("prepare watch cursor"))?
            .query_row(params![watcher, list], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(self.q("read watch cursor"))?;
        Ok(match row {
            None => WatchCursor::default(),
            Some((hw, from, to, page)) => WatchCursor {
                high_water: parse_opt(hw),
                pending: match (parse_opt(from), parse_opt(to)) {
                    (Some(from), Some(to)) => Some(PendingRead { from, to, page }),
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
        let q = |what: &'static str| self.q(what);
        let now_s = ts(now);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(q("begin"))?;
        let mut out = Vec::with_capacity(objects.len());
        {
            let mut get = tx
                .prepare_cached(
                    "SELECT version, data FROM watch_objects \
                     WHERE watcher = ?1 AND kind = ?2 AND id = ?3",
                )
                .map_err(q("prepare watch lookup"))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO watch_objects (watcher, kind, id, version, at, changed_at, \
                     first_seen, last_seen, judged, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 0, ?8)",
                )
                .map_err(q("prepare watch insert"))?;
            let mut touch = tx
                .prepare_cached(
                    "UPDATE watch_objects SET last_seen = ?4, data = ?5 \
                     WHERE watcher = ?1 AND kind = ?2 AND id = ?3",
                )
                .map_err(q("prepare watch touch"))?;
            let mut change = tx
                .prepare_cached(
                    "UPDATE watch_objects SET version = ?4, at = ?5, changed_at = ?6, \
                     last_seen = ?7, judged = 0, data = ?8, previous = ?9 \
                     WHERE watcher = ?1 AND kind = ?2 AND id = ?3",
                )
                .map_err(q("prepare watch change"))?;
            for o in objects {
                let data = o.data.to_string();
                let prior: Option<(String, String)> = get
                    .query_row(params![watcher, o.kind, o.id], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                    .map_err(q("look up watch object"))?;
                let seen = match prior {
                    None => {
                        insert
                            .execute(params![
                                watcher,
                                o.kind,
                                o.id,
                                o.version,
                                ts(o.at),
                                o.changed_at.map(ts),
                                now_s,
                                data
                            ])
                            .map_err(q("insert watch object"))?;
                        Seen::New
                    }
                    Some((version, _)) if version == o.version => {
                        touch
                            .execute(params![watcher, o.kind, o.id, now_s, data])
                            .map_err(q("touch watch object"))?;
                        Seen::Unchanged
                    }
                    Some((_, old)) => {
                        change
                            .execute(params![
                                watcher,
                                o.kind,
                                o.id,
                                o.version,
                                ts(o.at),
                                ts(o.changed_at.unwrap_or(now)),
                                now_s,
                                data,
                                old
                            ])
                            .map_err(q("change watch object"))?;
                        Seen::Changed
                    }
                };
                out.push(seen);
            }
            if let Some(c) = cursor {
                let p = c.pending.as_ref();
                tx.prepare_cached(
                    "INSERT INTO watch_cursors (watcher, list, high_water, pending_from, \
                     pending_to, pending_page, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (watcher, list) DO UPDATE SET high_water = ?3, \
                     pending_from = ?4, pending_to = ?5, pending_page = ?6, updated_at = ?7",
                )
                .map_err(q("prepare watch cursor"))?
                .execute(params![
                    watcher,
                    list,
                    c.high_water.map(ts),
                    p.map(|p| ts(p.from)),
                    p.map(|p| ts(p.to)),
                    p.and_then(|p| p.page.clone()),
                    now_s
                ])
                .map_err(q("write watch cursor"))?;
            }
        }
        tx.commit().map_err(q("commit watch page"))?;
        Ok(out)
    }

    fn watch_unjudged(&self, watcher: &str) -> Result<Vec<StoredObject>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM watch_objects WHERE watcher = ?1 AND judged = 0 \
                 ORDER BY at, id"
            ))
            .map_err(self.q("prepare unjudged"))?;
        let rows = stmt
            .query_map([watcher], stored)
            .map_err(self.q("list unjudged"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.q("list unjudged"))
    }

    fn watch_objects(
        &self,
        watcher: &str,
        kind: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<StoredObject>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM watch_objects \
                 WHERE watcher = ?1 AND kind = ?2 AND at >= ?3 ORDER BY at, id"
            ))
            .map_err(self.q("prepare watch objects"))?;
        let rows = stmt
            .query_map(params![watcher, kind, ts(since)], stored)
            .map_err(self.q("list watch objects"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.q("list watch objects"))
    }

    fn watch_object(
        &self,
        watcher: &str,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredObject>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM watch_objects \
                 WHERE watcher = ?1 AND kind = ?2 AND id = ?3"
            ))
            .map_err(self.q("prepare watch object"))?;
        stmt.query_row(params![watcher, kind, id], stored)
            .optional()
            .map_err(self.q("read watch object"))
    }

    fn watch_mark_judged(
        &self,
        watcher: &str,
        objects: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin"))?;
        {
            let mut mark = tx
                .prepare_cached(
                    "UPDATE watch_objects SET judged = 1 WHERE watcher = ?1 AND kind = ?2 AND id = ?3",
                )
                .map_err(self.q("prepare mark judged"))?;
            for (kind, id) in objects {
                mark.execute(params![watcher, kind, id])
                    .map_err(self.q("mark judged"))?;
            }
        }
        tx.commit().map_err(self.q("commit mark judged"))
    }

    fn watch_prune(
        &self,
        watcher: &str,
        kinds: &[&str],
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let conn = self.conn();
        let mut n = 0;
        let mut stmt = conn
            .prepare_cached(
                "DELETE FROM watch_objects WHERE watcher = ?1 AND kind = ?2 AND at < ?3 \
                 AND judged = 1",
            )
            .map_err(self.q("prepare prune"))?;
        for k in kinds {
            n += stmt
                .execute(params![watcher, k, ts(before)])
                .map_err(self.q("prune watch objects"))?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(id: &str, version: &str, at: &str) -> WatchObject {
        WatchObject {
            kind: "beneficiary".into(),
            id: id.into(),
            version: version.into(),
            at: parse(at).unwrap(),
            changed_at: None,
            data: serde_json::json!({"v": version}),
        }
    }

    #[test]
    fn objects_are_new_once_changed_when_their_version_moves_and_judged_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let now = parse("2026-11-20T10:00:00Z").unwrap();
        let cursor = WatchCursor {
            high_water: None,
            pending: Some(PendingRead {
                from: now - chrono::Duration::days(1),
                to: now,
                page: Some("2".into()),
            }),
        };
        let a = obj("b1", "v1", "2026-11-20T09:00:00Z");
        let seen = s
            .watch_save_page(
                "w",
                "beneficiaries",
                std::slice::from_ref(&a),
                Some(&cursor),
                now,
            )
            .unwrap();
        assert_eq!(seen, [Seen::New]);
        assert_eq!(s.watch_cursor("w", "beneficiaries").unwrap(), cursor);
        assert_eq!(
            s.watch_cursor("other", "beneficiaries").unwrap(),
            WatchCursor::default()
        );
        let seen = s
            .watch_save_page("w", "beneficiaries", std::slice::from_ref(&a), None, now)
            .unwrap();
        assert_eq!(seen, [Seen::Unchanged]);
        assert_eq!(s.watch_unjudged("w").unwrap().len(), 1);
        s.watch_mark_judged("w", &[("beneficiary".into(), "b1".into())])
            .unwrap();
        assert!(s.watch_unjudged("w").unwrap().is_empty());
        let b = obj("b1", "v2", "2026-11-20T09:00:00Z");
        let seen = s
            .watch_save_page("w", "beneficiaries", &[b], None, now)
            .unwrap();
        assert_eq!(seen, [Seen::Changed]);
        let u = s.watch_unjudged("w").unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].previous, Some(serde_json::json!({"v": "v1"})));
        assert_eq!(u[0].object.changed_at, Some(now));
        assert_eq!(
            s.watch_objects("w", "beneficiary", now - chrono::Duration::hours(2))
                .unwrap()
                .len(),
            1
        );
        s.watch_mark_judged("w", &[("beneficiary".into(), "b1".into())])
            .unwrap();
        assert_eq!(s.watch_prune("w", &["beneficiary"], now).unwrap(), 1);
        assert!(s.watch_object("w", "beneficiary", "b1").unwrap().is_none());
    }
}
