//! The database, with one owner: findings and their lifecycle (`new` → `open` → `resolved`),
//! acknowledgements with expiry, and the runs that judged them. Schema in `schema.sql`, version
//! checked on open, WAL, one transaction per batch, prepared statements cached.

use crate::finding::{Finding, Status};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = include_str!("schema.sql");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot open database: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: cannot create the database directory: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: database schema version {found} is newer than this awxguard understands \
         ({SCHEMA_VERSION}); upgrade awxguard or point --db / AWXGUARD_DB at another file"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error("{path}: {what}: {source}")]
    Query {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("no finding with id {0:?} in the database (see `awxguard findings list`)")]
    UnknownFinding(String),
    #[error("finding id prefix {0:?} is ambiguous: {1}")]
    AmbiguousFinding(String, String),
}

/// The default database: `$XDG_DATA_HOME/awxguard/awxguard.db` (or `~/.local/share/...`).
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("awxguard").join("awxguard.db")
}

/// What recording a run did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RecordSummary {
    pub new: usize,
    pub open: usize,
    pub acknowledged: usize,
    pub resolved: usize,
    /// Acknowledgements that expired and no longer suppress their finding.
    pub expired_acknowledgements: Vec<String>,
}

/// An acknowledgement of a finding.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Acknowledgement {
    pub finding_id: String,
    pub reason: String,
    pub acked_by: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn q(&self, what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path.clone(),
            what,
            source,
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(self.q("set busy timeout"))?;
        let _: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(self.q("enable WAL"))?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.q("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        if version < SCHEMA_VERSION {
            self.conn
                .execute_batch(&format!(
                    "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(self.q("create schema"))?;
        }
        Ok(())
    }

    /// Records the findings of one run of `scope` at `now`: sets each finding's `status`
    /// (`new` the first time, `open` after; `acknowledged` under an unexpired acknowledgement),
    /// marks the scope's earlier findings that are gone as `resolved` and returns them too, with
    /// status `resolved`, so a report can show what was fixed.
    pub fn record(
        &mut self,
        scope: &str,
        findings: &mut [Finding],
        now: DateTime<Utc>,
    ) -> Result<(RecordSummary, Vec<Finding>), StoreError> {
        let path = self.path.clone();
        let q = |what: &'static str| {
            let path = path.clone();
            move |source| StoreError::Query {
                path: path.clone(),
                what,
                source,
            }
        };
        let now_s = ts(now);
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let mut summary = RecordSummary::default();
        {
            let mut get = tx
                .prepare_cached("SELECT status FROM findings WHERE id = ?1")
                .map_err(q("prepare lookup"))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO findings (id, scope, rule, severity, key, path, message, finding, \
                     status, first_seen, last_seen, times_seen) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'new', ?9, ?9, 1)",
                )
                .map_err(q("prepare insert"))?;
            let mut update = tx
                .prepare_cached(
                    "UPDATE findings SET status = ?2, severity = ?3, message = ?4, finding = ?5, \
                     last_seen = ?6, resolved_at = NULL, times_seen = times_seen + 1, scope = ?7 \
                     WHERE id = ?1",
                )
                .map_err(q("prepare update"))?;
            let mut ack = tx
                .prepare_cached(
                    "SELECT reason, expires_at FROM acknowledgements WHERE finding_id = ?1",
                )
                .map_err(q("prepare acknowledgement lookup"))?;
            for f in findings.iter_mut() {
                let json = serde_json::to_string(&*f).expect("findings serialize");
                let prior: Option<String> = get
                    .query_row([&f.id], |r| r.get(0))
                    .optional()
                    .map_err(q("look up finding"))?;
                let status = match prior.as_deref() {
                    None => {
                        insert
                            .execute(params![
                                f.id,
                                scope,
                                f.rule,
                                f.severity.as_str(),
                                f.key,
                                f.path,
                                f.message,
                                json,
                                now_s
                            ])
                            .map_err(q("insert finding"))?;
                        Status::New
                    }
                    // A finding that was resolved and came back is new again.
                    Some("resolved") => {
                        update
                            .execute(params![
                                f.id,
                                "new",
                                f.severity.as_str(),
                                f.message,
                                json,
                                now_s,
                                scope
                            ])
                            .map_err(q("reopen finding"))?;
                        Status::New
                    }
                    Some(_) => {
                        update
                            .execute(params![
                                f.id,
                                "open",
                                f.severity.as_str(),
                                f.message,
                                json,
                                now_s,
                                scope
                            ])
                            .map_err(q("update finding"))?;
                        Status::Open
                    }
                };
                let acked: Option<(String, Option<String>)> = ack
                    .query_row([&f.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(q("look up acknowledgement"))?;
                f.status = Some(status);
                match acked {
                    Some((_, Some(exp))) if exp.as_str() <= now_s.as_str() => {
                        summary
                            .expired_acknowledgements
                            .push(format!("acknowledgement of {} expired at {exp}", f.id));
                    }
                    Some(_) => f.status = Some(Status::Acknowledged),
                    None => {}
                }
                match f.status {
                    Some(Status::New) => summary.new += 1,
                    Some(Status::Acknowledged) => summary.acknowledged += 1,
                    _ => summary.open += 1,
                }
            }
        }
        // Whatever this scope reported before and not now is resolved.
        let current: std::collections::HashSet<&str> =
            findings.iter().map(|f| f.id.as_str()).collect();
        let mut resolved = Vec::new();
        {
            let mut stale = tx
                .prepare_cached(
                    "SELECT id, finding FROM findings WHERE scope = ?1 AND status IN ('new', 'open')",
                )
                .map_err(q("prepare resolve"))?;
            let rows: Vec<(String, String)> = stale
                .query_map([scope], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(q("list open findings"))?
                .collect::<Result<_, _>>()
                .map_err(q("list open findings"))?;
            let mut mark = tx
                .prepare_cached(
                    "UPDATE findings SET status = 'resolved', resolved_at = ?2 WHERE id = ?1",
                )
                .map_err(q("prepare resolve"))?;
            for (id, json) in rows {
                if current.contains(id.as_str()) {
                    continue;
                }
                mark.execute(params![id, now_s])
                    .map_err(q("resolve finding"))?;
                if let Ok(mut f) = serde_json::from_str::<Finding>(&json) {
                    f.status = Some(Status::Resolved);
                    resolved.push(f);
                }
            }
        }
        summary.resolved = resolved.len();
        tx.execute(
            "INSERT INTO runs (scope, at, findings, new, resolved) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                scope,
                now_s,
                findings.len() as i64,
                summary.new as i64,
                summary.resolved as i64
            ],
        )
        .map_err(q("record run"))?;
        tx.commit().map_err(q("commit"))?;
        Ok((summary, resolved))
    }

    /// Resolves a full finding id from a unique prefix.
    pub fn resolve_id(&self, prefix: &str) -> Result<String, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM findings WHERE id LIKE ?1 || '%' ORDER BY id LIMIT 5")
            .map_err(self.q("prepare id lookup"))?;
        let ids: Vec<String> = stmt
            .query_map([prefix], |r| r.get(0))
            .map_err(self.q("look up id"))?
            .collect::<Result<_, _>>()
            .map_err(self.q("look up id"))?;
        match ids.len() {
            0 => Err(StoreError::UnknownFinding(prefix.to_string())),
            1 => Ok(ids.into_iter().next().expect("one id")),
            _ => Err(StoreError::AmbiguousFinding(
                prefix.to_string(),
                ids.join(", "),
            )),
        }
    }

    /// Acknowledges a finding (by id or unique prefix) until `expires_at`, if given.
    pub fn acknowledge(
        &mut self,
        id: &str,
        reason: &str,
        by: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let id = self.resolve_id(id)?;
        self.conn
            .execute(
                "INSERT INTO acknowledgements (finding_id, reason, acked_by, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (finding_id) DO UPDATE SET reason = excluded.reason, \
                 acked_by = excluded.acked_by, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at",
                params![id, reason, by, ts(now), expires_at.map(ts)],
            )
            .map_err(self.q("acknowledge"))?;
        Ok(id)
    }

    /// Removes an acknowledgement; returns whether there was one.
    pub fn unacknowledge(&mut self, id: &str) -> Result<bool, StoreError> {
        let id = self.resolve_id(id)?;
        let n = self
            .conn
            .execute("DELETE FROM acknowledgements WHERE finding_id = ?1", [&id])
            .map_err(self.q("remove acknowledgement"))?;
        Ok(n > 0)
    }

    /// Every stored finding (optionally only one scope), with its stored status, acknowledgement
    /// applied at `now`.
    pub fn list(
        &self,
        scope: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT f.finding, f.status, f.first_seen, f.last_seen, f.resolved_at, f.times_seen, \
                 f.scope, a.reason, a.expires_at \
                 FROM findings f LEFT JOIN acknowledgements a ON a.finding_id = f.id \
                 WHERE ?1 IS NULL OR f.scope = ?1",
            )
            .map_err(self.q("prepare list"))?;
        let now_s = ts(now);
        let rows = stmt
            .query_map([scope], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })
            .map_err(self.q("list findings"))?;
        let mut out = Vec::new();
        for row in rows {
            let (json, status, first, last, resolved_at, times, scope, reason, expires) =
                row.map_err(self.q("list findings"))?;
            let Ok(mut finding) = serde_json::from_str::<Finding>(&json) else {
                continue;
            };
            let ack_active =
                reason.is_some() && expires.as_deref().is_none_or(|e| e > now_s.as_str());
            finding.status = Some(match status.as_str() {
                "resolved" => Status::Resolved,
                _ if ack_active => Status::Acknowledged,
                "new" => Status::New,
                _ => Status::Open,
            });
            out.push(StoredFinding {
                finding,
                scope,
                first_seen: first,
                last_seen: last,
                resolved_at,
                times_seen: times,
                acknowledgement: reason.map(|r| (r, expires)),
            });
        }
        Ok(out)
    }
}

/// A finding as the store knows it.
#[derive(Debug, Clone)]
pub struct StoredFinding {
    pub finding: Finding,
    pub scope: String,
    pub first_seen: String,
    pub last_seen: String,
    pub resolved_at: Option<String>,
    pub times_seen: i64,
    /// Reason and expiry.
    pub acknowledgement: Option<(String, Option<String>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;

    fn f(id_part: &str) -> Finding {
        Finding::new("privilege.test", Severity::High, "m", &[id_part])
    }

    #[test]
    fn lifecycle_new_open_resolved_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let t0 = Utc::now();
        let mut run1 = vec![f("a"), f("b")];
        let (sum, resolved) = s.record("audit", &mut run1, t0).unwrap();
        assert_eq!((sum.new, sum.open, sum.resolved), (2, 0, 0));
        assert!(resolved.is_empty());
        assert_eq!(run1[0].status, Some(Status::New));
        let mut run2 = vec![f("a")];
        let (sum, resolved) = s.record("audit", &mut run2, t0).unwrap();
        assert_eq!((sum.new, sum.open, sum.resolved), (0, 1, 1));
        assert_eq!(run2[0].status, Some(Status::Open));
        assert_eq!(resolved[0].id, f("b").id);
        assert_eq!(resolved[0].status, Some(Status::Resolved));
        // Another scope does not resolve audit findings.
        s.record("scan", &mut [], t0).unwrap();
        let mut run3 = vec![f("a"), f("b")];
        let (sum, _) = s.record("audit", &mut run3, t0).unwrap();
        assert_eq!((sum.new, sum.open), (1, 1), "b came back: new again");
    }

    #[test]
    fn acknowledgements_suppress_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let t0 = Utc::now();
        let mut run = vec![f("a")];
        s.record("audit", &mut run, t0).unwrap();
        let id = run[0].id.clone();
        s.acknowledge(
            &id[..6],
            "accepted risk",
            Some("sec"),
            Some(t0 + chrono::Duration::days(1)),
            t0,
        )
        .unwrap();
        let mut run = vec![f("a")];
        let (sum, _) = s.record("audit", &mut run, t0).unwrap();
        assert_eq!(run[0].status, Some(Status::Acknowledged));
        assert_eq!(sum.acknowledged, 1);
        let mut run = vec![f("a")];
        let (sum, _) = s
            .record("audit", &mut run, t0 + chrono::Duration::days(2))
            .unwrap();
        assert_eq!(run[0].status, Some(Status::Open));
        assert_eq!(sum.expired_acknowledgements.len(), 1);
        assert!(matches!(
            s.resolve_id("zzzz"),
            Err(StoreError::UnknownFinding(_))
        ));
    }

    #[test]
    fn newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch("PRAGMA user_version = 99;").unwrap();
        }
        let err = Store::open(&p).err().unwrap().to_string();
        assert!(err.contains("schema version 99"), "{err}");
        assert!(err.contains("AWXGUARD_DB"), "{err}");
    }
}
