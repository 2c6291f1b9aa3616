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
                 expires_at = excluded.expires_at",
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
}
