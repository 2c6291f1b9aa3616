//! Acknowledgements: a person judged a finding acceptable, with a reason and (ideally) an expiry.
//! The finding stays in the database and in reports, marked `acknowledged`, and no longer fails a
//! run until the acknowledgement lapses.

use super::params;
use super::{ts, Findings, SqliteStore, StoreError};
use chrono::{DateTime, NaiveDate, Utc};

/// A person's acknowledgement, as asked for (`findings ack ID --reason .. [--expires ..]`).
#[derive(Debug, Clone)]
pub struct AckRequest {
    /// Finding id or a unique prefix of it.
    pub id: String,
    pub reason: String,
    pub by: Option<String>,
    /// A date (`2026-12-31`), an RFC 3339 time, or a duration from now (`30d`, `12w`, `48h`).
    pub expires: Option<String>,
}

/// An acknowledgement made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The finding's full id.
    pub id: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("--reason must say why the finding is acceptable")]
    NoReason,
    #[error("--expires {0:?}: give a date (2026-12-31) or a duration (30d, 12w, 48h)")]
    BadExpiry(String),
    #[error("--expires {0:?}: unit must be h, d or w (e.g. 30d)")]
    BadUnit(String),
    #[error("--expires is in the past")]
    Past,
    #[error("cannot acknowledge: {0}")]
    Store(#[from] StoreError),
}

/// Parses `2026-12-31`, an RFC 3339 time, or a duration from now (`30d`, `12w`, `48h`).
pub fn parse_expiry(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AckError> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num
        .parse()
        .map_err(|_| AckError::BadExpiry(s.to_string()))?;
    let d = match unit {
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        "w" => chrono::Duration::weeks(n),
        _ => return Err(AckError::BadUnit(s.to_string())),
    };
    Ok(now + d)
}

/// Acknowledges as a person asked: a reason is required (suppressions must say why), an expiry
/// must lie ahead.
pub fn acknowledge(
    store: &dyn Acknowledgements,
    req: &AckRequest,
    now: DateTime<Utc>,
) -> Result<Acked, AckError> {
    if req.reason.trim().is_empty() {
        return Err(AckError::NoReason);
    }
    let expires_at = req
        .expires
        .as_deref()
        .map(|e| parse_expiry(e, now))
        .transpose()?;
    if expires_at.is_some_and(|e| e <= now) {
        return Err(AckError::Past);
    }
    let id = store.acknowledge(&req.id, &req.reason, req.by.as_deref(), expires_at, now)?;
    Ok(Acked { id, expires_at })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_dates_times_or_durations() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_expiry("2026-12-31", now).unwrap().to_rfc3339(),
            "2026-12-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_expiry("30d", now).unwrap(),
            now + chrono::Duration::days(30)
        );
        assert_eq!(
            parse_expiry("2w", now).unwrap(),
            now + chrono::Duration::weeks(2)
        );
        assert!(matches!(
            parse_expiry("30x", now),
            Err(AckError::BadUnit(_))
        ));
        assert!(matches!(
            parse_expiry("soon", now),
            Err(AckError::BadExpiry(_))
        ));
    }
}
