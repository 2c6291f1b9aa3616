//! The runs recorded: which scope ran when, how many findings it reported, how many were new and
//! how many it resolved. A run is written in the same transaction as its findings
//! (`Lifecycle::record`).

use super::params;
use super::{SqliteStore, StoreError};
use rusqlite::Transaction;

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRecord {
    pub scope: String,
    /// RFC 3339.
    pub at: String,
    pub findings: u64,
    pub new: u64,
    pub resolved: u64,
}

/// Reading the runs.
pub trait Runs {
    /// The recorded runs (optionally only one scope), oldest first.
    fn runs(&self, scope: Option<&str>) -> Result<Vec<RunRecord>, StoreError>;
}

impl Runs for SqliteStore {
    fn runs(&self, scope: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT scope, at, findings, new, resolved FROM runs \
                 WHERE ?1 IS NULL OR scope = ?1 ORDER BY id",
            )
            .map_err(self.q("prepare runs"))?;
        let rows = stmt
            .query_map([scope], |r| {
                Ok(RunRecord {
                    scope: r.get(0)?,
                    at: r.get(1)?,
                    findings: r.get::<_, i64>(2)? as u64,
                    new: r.get::<_, i64>(3)? as u64,
                    resolved: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(self.q("list runs"))?;
        rows.collect::<Result<_, _>>().map_err(self.q("list runs"))
    }
}

/// Writes `run` inside the recording transaction `tx`.
pub(super) fn insert(tx: &Transaction<'_>, run: &RunRecord) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO runs (scope, at, findings, new, resolved) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            run.scope,
            run.at,
            run.findings as i64,
            run.new as i64,
            run.resolved as i64
        ],
    )?;
    Ok(())
}
