//! The acknowledgement job behind `awxguard findings ack|unack`: the rules a person's judgement
//! must follow (a reason, an expiry that is a date or a duration and lies ahead) before the store
//! records it. The command line only turns arguments into an [`AckRequest`] and prints the
//! outcome.

use super::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;

/// A person's acknowledgement of a finding.
#[derive(Debug, Clone, Default)]
pub struct AckRequest {
    /// Finding id, or a unique prefix of it.
    pub id: String,
    /// Why the finding is acceptable (required).
    pub reason: String,
    /// When it lapses: a date (`2026-12-31`), an RFC 3339 time or a duration from now (`30d`,
    /// `12w`, `48h`).
    pub expires: Option<String>,
    /// Who acknowledged it.
    pub by: Option<String>,
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The full finding id.
    pub id: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Display for Acknowledged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expires_at {
            Some(e) => write!(
                f,
                "acknowledged {} until {}",
                self.id,
                e.format("%Y-%m-%d %H:%M UTC")
            ),
            None => write!(
                f,
                "acknowledged {} with no expiry (consider --expires so it gets reviewed)",
                self.id
            ),
        }
    }
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
    #[error("--expires {0:?} is after 9999-12-31; give an earlier date")]
    TooLate(String),
    #[error("cannot acknowledge: {0}")]
    Store(#[from] StoreError),
}

/// Parses `2026-12-31`, an RFC 3339 time, or a duration from now (`30d`, `12w`, `48h`). Any
/// number gives a time or an error, never a panic; the store keeps four-digit years, so a time
/// after 9999-12-31 is refused.
pub fn parse_expiry(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AckError> {
    let t = parse_expiry_unbounded(s, now)?;
    let last = NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .expect("a valid date")
        .and_utc();
    if t > last {
        return Err(AckError::TooLate(s.into()));
    }
    Ok(t)
}

fn parse_expiry_unbounded(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AckError> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| AckError::BadExpiry(s.into()))?;
    // Saturating: a duration of any size gives a time (then checked against 9999-12-31).
    let d = match unit {
        "h" => crate::clock::hours(n),
        "d" => crate::clock::days(n),
        "w" => crate::clock::days(n.saturating_mul(7)),
        _ => return Err(AckError::BadUnit(s.into())),
    };
    Ok(now + d)
}

/// Checks the request and records the acknowledgement.
pub fn acknowledge(
    store: &dyn Store,
    req: &AckRequest,
    now: DateTime<Utc>,
) -> Result<Acknowledged, AckError> {
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
    Ok(Acknowledged { id, expires_at })
}

/// Removes an acknowledgement; says what happened.
pub fn unacknowledge(store: &dyn Store, id: &str) -> Result<String, StoreError> {
    Ok(if store.unacknowledge(id)? {
        format!("acknowledgement of {id} removed")
    } else {
        format!("{id} was not acknowledged")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-04T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn expiry_forms() {
        assert_eq!(
            parse_expiry("2026-12-31", now()).unwrap().to_rfc3339(),
            "2026-12-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_expiry("30d", now()).unwrap(),
            now() + chrono::Duration::days(30)
        );
        assert_eq!(
            parse_expiry("48h", now()).unwrap(),
            now() + chrono::Duration::hours(48)
        );
        assert!(matches!(
            parse_expiry("3m", now()),
            Err(AckError::BadUnit(_))
        ));
        assert!(matches!(
            parse_expiry("soon", now()),
            Err(AckError::BadExpiry(_))
        ));
    }
}
