//! What the proxy learns from what passes: the token a login returns (its fingerprint, to know
//! the key behind later calls), the object ids a write's answer names (for the watch's join and
//! the money guard), and the money guard's decision on a transfer.

use crate::proxy::policy::{self, Check};
use crate::proxy::store::TokenAttribution;
use crate::proxy::Shared;
use crate::secret::fingerprint;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The object ids a write answer names: its `id` (and `beneficiary_id` for beneficiaries), or the
/// id in the path (`/api/v1/webhooks/{id}/delete`).
pub(super) fn object_ids(template: &str, path: &str, body: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
        for field in ["id", "beneficiary_id"] {
            if field == "beneficiary_id" && !template.contains("/beneficiaries/") {
                continue;
            }
            if let Some(id) = m.get(field).and_then(Value::as_str) {
                if !id.is_empty() && !ids.iter().any(|x| x == id) {
                    ids.push(id.to_string());
                }
            }
        }
    }
    if ids.is_empty() {
        let t = template.split_once(' ').map_or(template, |(_, p)| p);
        for (ts, ps) in t
            .trim_matches('/')
            .split('/')
            .zip(path.trim_matches('/').split('/'))
        {
            if ts.starts_with('{') && !ps.is_empty() {
                ids.push(ps.to_string());
            }
        }
    }
    ids
}

/// Whether a route's 2xx answer names objects the watch joins on.
pub(super) fn tracks_objects(template: &str) -> bool {
    template.starts_with("POST ")
        && [
            "/api/v1/beneficiaries/",
            "/api/v1/transfers/",
            "/api/v1/webhooks/",
        ]
        .iter()
        .any(|p| template.contains(p))
        && !template.ends_with("/validate")
}

#[derive(serde::Deserialize)]
struct LoginAnswer {
    token: String,
    #[serde(default)]
    expires_at: Option<String>,
}

impl Shared {
    /// A login answered 2xx: learn the token it returned (its fingerprint only).
    pub(super) async fn learn_login(&self, key_fp: &str, body: &Bytes, now: DateTime<Utc>) {
        let Ok(a) = serde_json::from_slice::<LoginAnswer>(body) else {
            tracing::warn!(
                "proxy: a login answered 2xx without a readable token; its calls will be unknown"
            );
            return;
        };
        let expires_at = a
            .expires_at
            .as_deref()
            .and_then(crate::airwallex::parse_timestamp)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| now + chrono::Duration::minutes(30));
        let attribution = TokenAttribution {
            token_fingerprint: fingerprint(a.token.as_bytes()),
            key_fingerprint: key_fp.to_string(),
            expires_at,
            learned_at: now,
        };
        drop(a);
        if let Err(e) = self.attributions.learn(attribution.clone()).await {
            tracing::warn!("proxy: cannot store a token attribution now ({e}); the writer retries");
            self.recorder.attribution(attribution);
        }
    }

    pub(super) fn remember_objects(&self, ids: &[String], template: &str, now: DateTime<Utc>) {
        if self.policy.money_guard.is_none() || !template.contains("/beneficiaries/") {
            return;
        }
        let mut m = self
            .recent_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            let window = self
                .policy
                .money_guard
                .and_then(|g| chrono::Duration::from_std(g).ok())
                .unwrap_or_default();
            m.retain(|_, t| *t + window > now);
        }
        for id in ids {
            m.insert(id.clone(), now);
        }
    }

    /// Whether the money guard holds a transfer to `ben`: (changed at, held until).
    pub(super) async fn hold(
        &self,
        key: &str,
        ben: &str,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let mem = self
            .recent_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ben)
            .copied();
        let stored = match &self.lookup {
            Some(l) if mem.is_none() => {
                let (l, id) = (l.clone(), ben.to_string());
                tokio::task::spawn_blocking(move || l.object_changed_at(&id))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            }
            _ => None,
        };
        let changed = mem.or(stored)?;
        let until = self.policy.holds(changed, now)?;
        // released by acknowledging the hold's finding
        let id = crate::finding::finding_id(
            &policy::ProxyRules::builtin().rule(Check::TransferHeld).id,
            &[key, ben],
        );
        if let Some(l) = &self.lookup {
            let l = l.clone();
            let acked = tokio::task::spawn_blocking(move || l.acknowledged(&id, now))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(false);
            if acked {
                tracing::info!(
                    "proxy: transfer to beneficiary {ben} released (finding acknowledged)"
                );
                return None;
            }
        }
        Some((changed, until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_from_answers_and_paths() {
        assert_eq!(
            object_ids(
                "POST /api/v1/beneficiaries/create",
                "/api/v1/beneficiaries/create",
                br#"{"id":"b1","beneficiary_id":"b1","nickname":"x"}"#
            ),
            ["b1"]
        );
        assert_eq!(
            object_ids(
                "POST /api/v1/transfers/create",
                "/api/v1/transfers/create",
                br#"{"id":"t1","beneficiary_id":"b1"}"#
            ),
            ["t1"]
        );
        assert_eq!(
            object_ids(
                "POST /api/v1/webhooks/{id}/delete",
                "/api/v1/webhooks/wh_9/delete",
                b"{}"
            ),
            ["wh_9"]
        );
        assert!(tracks_objects("POST /api/v1/webhooks/create"));
        assert!(!tracks_objects("POST /api/v1/transfers/validate"));
        assert!(!tracks_objects("GET /api/v1/transfers/{id}"));
    }
}
