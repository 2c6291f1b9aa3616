//! What the lifecycle loop shares with the HTTP endpoint: the store, the metrics, this daemon's
//! lock identity, and the board (each job's schedule and last results, the proxy's state), which
//! only the loop writes.

use super::jobs::JobSpec;
use super::metrics::Metrics;
use crate::clock::Clock;
use crate::proxy::Counters;
use crate::store::{DaemonHolder, Store};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

/// One scheduled job as the loop sees it.
#[derive(Debug, Clone)]
pub struct JobState {
    pub spec: JobSpec,
    /// When it fires next (None: never again).
    pub next: Option<DateTime<Utc>>,
    /// When this daemon took the job on (start or reload): readiness counts from here until
    /// the first success.
    pub since: DateTime<Utc>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub running_since: Option<DateTime<Utc>>,
}

/// The in-process proxy's state.
#[derive(Debug, Clone, Default)]
pub struct ProxyState {
    pub listening: Option<SocketAddr>,
    pub last_error: Option<String>,
}

/// The board.
#[derive(Debug)]
pub struct Board {
    pub jobs: BTreeMap<String, JobState>,
    pub tz: chrono_tz::Tz,
    /// When the loop last turned.
    pub tick: Instant,
    pub stopping: bool,
    /// Set when the proxy runs in this process.
    pub proxy: Option<ProxyState>,
}

/// Shared between the loop and the HTTP handlers.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub me: DaemonHolder,
    board: RwLock<Board>,
    proxy_counters: Mutex<Option<Arc<Counters>>>,
    /// One scrape at a time.
    pub scrape: tokio::sync::Mutex<()>,
}

impl Shared {
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        me: DaemonHolder,
        tz: chrono_tz::Tz,
    ) -> Shared {
        Shared {
            store,
            metrics,
            clock,
            me,
            board: RwLock::new(Board {
                jobs: BTreeMap::new(),
                tz,
                tick: Instant::now(),
                stopping: false,
                proxy: None,
            }),
            proxy_counters: Mutex::new(None),
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    pub fn board(&self) -> RwLockReadGuard<'_, Board> {
        self.board.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn board_mut(&self) -> RwLockWriteGuard<'_, Board> {
        self.board.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn proxy_counters(&self) -> Option<Arc<Counters>> {
        self.proxy_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_proxy_counters(&self, c: Option<Arc<Counters>>) {
        *self
            .proxy_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = c;
    }
}
