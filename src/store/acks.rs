//! Acknowledgements: a person judged a finding acceptable, with a reason and (ideally) an expiry.
//! The finding stays in the database and in reports, marked `acknowledged`, and no longer fails a
//! run until the acknowledgement lapses.

use super::params;
use super::{ts, Findings, SqliteStore, StoreError};
use chrono::{DateTime, Utc};

/// Acknowledging findings.
pub trait Acknowledgements {
    /// Acknowledges a finding (by id or unique prefix) until `expires_at`, if given; returns the
    /// full id.
    fn acknowledge(
        &self,
        id: &str,
        reason: &str,
        by: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError>;

    /// Removes an acknowledgement; returns whether there was one.
    fn unacknowledge(&self, id: &str) -> Result<bool, StoreError>;

    /// Every acknowledgement, expired ones included, by finding id.
    fn acknowledgements(&self) -> Result<Vec<AckRecord>, StoreError>;
}

/// One acknowledgement as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AckRecord {
    pub finding_id: String,
    pub reason: String,
    /// Who acknowledged it (`--by`); `config` for an acknowledgement the config makes.
    pub by: Option<String>,
    /// RFC 3339.
    pub at: String,
    /// RFC 3339; none: no expiry.
    pub expires_at: Option<String>,
    /// `person` (`findings ack`) or `config` (`allow_literal = true`).
    pub origin: String,
}

impl AckRecord {
    /// Whether it still holds at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at
            .as_deref()
            .is_none_or(|e| e > ts(now).as_str())
    }
}

impl Acknowledgements for SqliteStore {
    fn acknowledge(
        &self,
        id: &str,
        reason: &str,
        by: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let id = self.resolve_id(id)?;
        self.conn()
            .execute(
                "INSERT INTO acknowledgements (finding_id, reason, acked_by, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (finding_id) DO UPDATE SET reason = excluded.reason, \
                 acked_by = excluded.acked_by, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at, origin = 'person'",
                params![id, reason, by, ts(now), expires_at.map(ts)],
            )
            .map_err(self.q("acknowledge"))?;
        Ok(id)
    }

    fn unacknowledge(&self, id: &str) -> Result<bool, StoreError> {
        let id = self.resolve_id(id)?;
        let n = self
            .conn()
            .execute("DELETE FROM acknowledgements WHERE finding_id = ?1", [&id])
            .map_err(self.q("remove acknowledgement"))?;
        Ok(n > 0)
    }

    fn acknowledgements(&self) -> Result<Vec<AckRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT finding_id, reason, acked_by, created_at, expires_at, origin \
                 FROM acknowledgements ORDER BY finding_id",
            )
            .map_err(self.q("prepare acknowledgements"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AckRecord {
                    finding_id: r.get(0)?,
                    reason: r.get(1)?,
                    by: r.get(2)?,
                    at: r.get(3)?,
                    expires_at: r.get(4)?,
                    origin: r.get(5)?,
                })
            })
            .map_err(self.q("list acknowledgements"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.q("list acknowledgements"))
    }
}
