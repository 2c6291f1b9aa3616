//! What the proxy needs from the store, as two small traits so the backend is one switch: the
//! writer's side (`ProxyStore`: append usage events, record findings, remember token
//! attributions) and the request path's lookups (`ProxyLookup`: which key a token belongs to,
//! when an object was last created or changed through a proxy, whether a finding is
//! acknowledged).
//!
//! `LazySqliteStore` and `LazySqliteLookup` implement them over awxguard's database (the
//! store's proxy area, `store::proxy`): a SQLite file, or a PostgreSQL database that several
//! proxies share (every proxy then knows every token attribution). Each is on its own
//! connection (SQLite: with a short lock wait), opened
//! on first use and again after a failure to open: a database locked or missing at start-up
//! never stops the proxy (its events spill meanwhile). Usage events go to the usage evidence
//! store (`append_usage`, the same call `usage ingest` makes: deduplicated on the whole event,
//! rollups for the detectors), the objects they name to the proxy area.

use super::record::UsageEvent;
use crate::finding::{Finding, Status};
use crate::store::proxy::ObjectSighting;
use crate::store::{SqliteStore, Store};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::store::proxy::TokenAttribution;

/// The writer's side of the store.
pub trait ProxyStore: Send {
    /// Appends events; an event already stored is not stored again.
    fn append_events(&mut self, events: &[UsageEvent]) -> Result<(), String>;
    /// Records findings (each under its own scope: a proxy finding stays open until
    /// acknowledged; nothing the proxy does resolves another).
    fn record_findings(&mut self, findings: &mut [Finding]) -> Result<(), String>;
    fn remember_tokens(&mut self, attributions: &[TokenAttribution]) -> Result<(), String>;
}

/// The request path's lookups; called from blocking threads.
pub trait ProxyLookup: Send + Sync {
    /// The attribution of a token fingerprint, if a proxy on this store saw its login and it
    /// has not expired at `now`.
    fn token(&self, token_fp: &str, now: DateTime<Utc>)
        -> Result<Option<TokenAttribution>, String>;
    /// Remembers an attribution at once (the login path, so a second proxy knows the token
    /// before the first call with it arrives).
    fn remember_token(&self, a: &TokenAttribution) -> Result<(), String>;
    /// When a proxy last saw a call create or change the object `id`.
    fn object_changed_at(&self, id: &str) -> Result<Option<DateTime<Utc>>, String>;
    /// Whether finding `id` is acknowledged (and the acknowledgement not expired at `now`).
    fn acknowledged(&self, id: &str, now: DateTime<Utc>) -> Result<bool, String>;
}

fn open(path: &Path, busy: Duration) -> Result<Arc<dyn Store>, String> {
    if crate::store::postgres_url(path).is_some() {
        return crate::store::open(path).map_err(|e| e.to_string());
    }
    let s = SqliteStore::open(path).map_err(|e| e.to_string())?;
    s.set_busy_timeout(busy).map_err(|e| e.to_string())?;
    Ok(Arc::new(s))
}

/// The writer's store, opened on first use and again after a failure to open.
pub struct LazySqliteStore {
    path: PathBuf,
    busy: Duration,
    clock: Arc<dyn crate::clock::Clock>,
    inner: Option<Arc<dyn Store>>,
    /// Queues alerts for the findings the proxy records (`[alerts]`), in the same transaction.
    planner: Option<Arc<dyn crate::store::AlertPlanner>>,
}

impl LazySqliteStore {
    pub fn new(
        path: &Path,
        busy: Duration,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> LazySqliteStore {
        LazySqliteStore {
            path: path.to_path_buf(),
            busy,
            clock,
            inner: None,
            planner: None,
        }
    }

    /// Findings recorded through this store queue their alerts with `planner`.
    pub fn with_alerts(mut self, planner: Option<Arc<dyn crate::store::AlertPlanner>>) -> Self {
        self.planner = planner;
        self
    }

    fn get(&mut self) -> Result<&dyn Store, String> {
        if self.inner.is_none() {
            let s = open(&self.path, self.busy)?;
            if let Some(p) = &self.planner {
                s.set_alert_planner(Some(p.clone()));
            }
            self.inner = Some(s);
        }
        Ok(self.inner.as_deref().expect("opened"))
    }
}

/// The scope a proxy finding is recorded under: its own, so nothing the proxy records resolves
/// another finding (a proxy finding stays open until acknowledged).
pub fn finding_scope(id: &str) -> String {
    format!("proxy:{id}")
}

impl ProxyStore for LazySqliteStore {
    fn append_events(&mut self, events: &[UsageEvent]) -> Result<(), String> {
        let mut objects = Vec::new();
        for e in events.iter().filter(|e| !e.object_ids.is_empty()) {
            let ts = super::record::event_time(e.ts);
            for id in &e.object_ids {
                objects.push(ObjectSighting {
                    object_id: id.clone(),
                    ts: ts.clone(),
                    key: e.key.clone(),
                    method: e.method.clone(),
                    path: e.path.clone(),
                });
            }
        }
        let store = self.get()?;
        // events first: should the objects fail, the batch is spilled and read back, its
        // events then found already stored
        store
            .append_usage(events, crate::airwallex::Catalog::builtin_ref(), None)
            .map_err(|e| e.to_string())?;
        store
            .append_object_sightings(&objects)
            .map_err(|e| e.to_string())
    }

    fn record_findings(&mut self, findings: &mut [Finding]) -> Result<(), String> {
        let now = self.clock.now();
        let store = self.get()?;
        for f in findings.iter_mut() {
            store
                .record(&finding_scope(&f.id), std::slice::from_mut(f), now)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn remember_tokens(&mut self, attributions: &[TokenAttribution]) -> Result<(), String> {
        self.get()?
            .remember_tokens(attributions)
            .map_err(|e| e.to_string())
    }
}

/// The lookups, on their own connection (in WAL mode reads do not wait for writers), opened on
/// first use and again after a failure to open.
pub struct LazySqliteLookup {
    path: PathBuf,
    busy: Duration,
    inner: Mutex<Option<Arc<dyn Store>>>,
}

impl LazySqliteLookup {
    pub fn new(path: &Path, busy: Duration) -> LazySqliteLookup {
        LazySqliteLookup {
            path: path.to_path_buf(),
            busy,
            inner: Mutex::new(None),
        }
    }

    fn get(&self) -> Result<Arc<dyn Store>, String> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        let s = open(&self.path, self.busy)?;
        *g = Some(s.clone());
        Ok(s)
    }
}

impl ProxyLookup for LazySqliteLookup {
    fn token(
        &self,
        token_fp: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenAttribution>, String> {
        self.get()?
            .token_attribution(token_fp, now)
            .map_err(|e| e.to_string())
    }

    fn remember_token(&self, a: &TokenAttribution) -> Result<(), String> {
        self.get()?
            .remember_tokens(std::slice::from_ref(a))
            .map_err(|e| e.to_string())
    }

    fn object_changed_at(&self, id: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.get()?.object_changed_at(id).map_err(|e| e.to_string())
    }

    fn acknowledged(&self, id: &str, now: DateTime<Utc>) -> Result<bool, String> {
        let found = self
            .get()?
            .list(Some(&finding_scope(id)), now)
            .map_err(|e| e.to_string())?;
        Ok(found
            .iter()
            .any(|f| f.finding.id == id && f.finding.status == Some(Status::Acknowledged)))
    }
}
