//! Which key a token belongs to. A login through the proxy (`x-client-id`, `x-api-key`) answered
//! 201 names the token it returns: the proxy keeps token fingerprint → key fingerprint (neither is
//! secret; the key and the token themselves are never kept) in memory and in the store until the
//! token expires, so a restarted proxy, or a second proxy on the same store, still knows it. The
//! store is asked only on a miss, from a blocking thread; a token the store does not know either
//! is remembered as unknown for a second, so a burst of calls with it costs one lookup.

use super::store::{ProxyLookup, TokenAttribution};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Most attributions kept in memory; expired ones are dropped first.
const MAX_ENTRIES: usize = 100_000;
/// How long a token the store did not know stays unknown without asking again.
const NEGATIVE_TTL: Duration = Duration::from_secs(1);

pub struct Attributions {
    known: RwLock<HashMap<String, (String, DateTime<Utc>)>>,
    unknown: Mutex<HashMap<String, Instant>>,
    lookup: Option<Arc<dyn ProxyLookup>>,
}

impl Attributions {
    pub fn new(lookup: Option<Arc<dyn ProxyLookup>>) -> Attributions {
        Attributions {
            known: RwLock::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
            lookup,
        }
    }

    /// The key fingerprint of a token fingerprint and when the token expires, from memory.
    pub fn cached(&self, token_fp: &str, now: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        known
            .get(token_fp)
            .filter(|(_, exp)| *exp > now)
            .map(|(k, exp)| (k.clone(), *exp))
    }

    /// The key fingerprint of a token fingerprint and when the token expires: memory, then the
    /// store.
    pub async fn resolve(
        &self,
        token_fp: &str,
        now: DateTime<Utc>,
    ) -> Option<(String, DateTime<Utc>)> {
        if let Some(k) = self.cached(token_fp, now) {
            return Some(k);
        }
        let lookup = self.lookup.clone()?;
        {
            let mut unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
            if unknown
                .get(token_fp)
                .is_some_and(|t| t.elapsed() < NEGATIVE_TTL)
            {
                return None;
            }
            if unknown.len() > 10_000 {
                unknown.retain(|_, t| t.elapsed() < NEGATIVE_TTL);
            }
        }
        let fp = token_fp.to_string();
        let found = tokio::task::spawn_blocking(move || lookup.token(&fp, now)).await;
        match found {
            Ok(Ok(Some(a))) => {
                self.insert(&a);
                Some((a.key_fingerprint, a.expires_at))
            }
            Ok(Ok(None)) => {
                self.unknown
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(token_fp.to_string(), Instant::now());
                None
            }
            Ok(Err(e)) => {
                tracing::warn!("proxy: cannot look up a token in the store: {e}");
                None
            }
            Err(e) => {
                tracing::warn!("proxy: token lookup failed: {e}");
                None
            }
        }
    }

    fn insert(&self, a: &TokenAttribution) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_ENTRIES {
            let now = Utc::now();
            known.retain(|_, (_, exp)| *exp > now);
            if known.len() >= MAX_ENTRIES {
                // still full of live tokens: forget the ones that expire first
                let mut by_exp: Vec<(DateTime<Utc>, String)> =
                    known.iter().map(|(k, (_, e))| (*e, k.clone())).collect();
                by_exp.sort();
                for (_, k) in by_exp.into_iter().take(MAX_ENTRIES / 10) {
                    known.remove(&k);
                }
            }
        }
        known.insert(
            a.token_fingerprint.clone(),
            (a.key_fingerprint.clone(), a.expires_at),
        );
    }

    /// Learns a login's token: in memory at once, and in the store (awaited, so a second
    /// proxy knows it before the client's first call). Returns the store's error, if any, for
    /// the caller to retry through the writer.
    pub async fn learn(&self, a: TokenAttribution) -> Result<(), String> {
        self.insert(&a);
        self.unknown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&a.token_fingerprint);
        let Some(lookup) = self.lookup.clone() else {
            return Ok(());
        };
        match tokio::task::spawn_blocking(move || lookup.remember_token(&a)).await {
            Ok(r) => r,
            Err(e) => Err(e.to_string()),
        }
    }
}
