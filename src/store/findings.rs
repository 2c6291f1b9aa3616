//! Stored findings: listing them with their lifecycle (acknowledgements applied at a given time),
//! and finding one by id or unique prefix.

use super::{ts, SqliteStore, StoreError};
use crate::finding::{Finding, Resolution, Status};
use chrono::{DateTime, Utc};

/// Reading the stored findings.
pub trait Findings {
    /// Every stored finding (optionally only one scope), with its stored status, acknowledgement
    /// applied at `now`.
    fn list(
        &self,
        scope: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredFinding>, StoreError>;

    /// Resolves a full finding id from a unique prefix.
    fn resolve_id(&self, prefix: &str) -> Result<String, StoreError>;
}

/// The stored findings of `scope` (all scopes when `None`) with `status` (any when `None`), their
/// status as of `now`.
pub fn select<S: Findings + ?Sized>(
    store: &S,
    scope: Option<&str>,
    status: Option<Status>,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, StoreError> {
    Ok(store
        .list(scope, now)?
        .into_iter()
        .map(|s| s.finding)
        .filter(|f| status.is_none_or(|st| f.status == Some(st)))
        .collect())
}

/// What `awxguard findings list` shows: the stored findings (most severe first) and the
/// acknowledgements behind the acknowledged ones (reason, by whom, since and until when).
#[derive(Debug, Clone)]
pub struct Listing {
    pub findings: Vec<Finding>,
    /// The acknowledgements of the listed findings, expired ones included.
    pub acknowledgements: Vec<super::AckRecord>,
}

/// The listing of `scope` (all when `None`) with `status` (any when `None`) at `now`.
pub fn listing(
    store: &dyn super::Store,
    scope: Option<&str>,
    status: Option<Status>,
    now: DateTime<Utc>,
) -> Result<Listing, StoreError> {
    let mut findings = select(store, scope, status, now)?;
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let ids: std::collections::HashSet<&str> = findings.iter().map(|f| f.id.as_str()).collect();
    let acknowledgements = store
        .acknowledgements()?
        .into_iter()
        .filter(|a| ids.contains(a.finding_id.as_str()))
        .collect();
    Ok(Listing {
        findings,
        acknowledgements,
    })
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

impl Findings for SqliteStore {
    fn resolve_id(&self, prefix: &str) -> Result<String, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
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

    fn list(
        &self,
        scope: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT f.finding, f.status, f.first_seen, f.last_seen, f.resolved_at, f.times_seen, \
                 f.scope, a.reason, a.expires_at, f.observed_by, f.resolution \
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
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                ))
            })
            .map_err(self.q("list findings"))?;
        let mut out = Vec::new();
        for row in rows {
            let (
                json,
                status,
                first,
                last,
                resolved_at,
                times,
                scope,
                reason,
                expires,
                observed,
                resolution,
            ) = row.map_err(self.q("list findings"))?;
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
            finding.observed_by = super::lifecycle::observed_from(observed);
            finding.resolution = match finding.status {
                Some(Status::Resolved) => Some(
                    resolution
                        .as_deref()
                        .and_then(Resolution::parse)
                        .unwrap_or(Resolution::Fixed),
                ),
                _ => None,
            };
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
