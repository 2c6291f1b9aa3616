//! `awxguard proxy` as a library job: the request (listen address, upstream, enforcement), the
//! config (declared keys and their scopes and whitelists), the store's path; it serves on the
//! caller's runtime until `shutdown`, and returns the counters.

use super::policy::{allowed_templates, KeyPolicy, Policy};
use super::store::{LazySqliteLookup, LazySqliteStore, ProxyLookup};
use super::{Proxy, ProxyError, ProxySettings, Upstream};
use crate::airwallex::Catalog;
use crate::clock::Clock;
use crate::config::Config;
use crate::inventory::Inventory;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which keys `--enforce` covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Enforce {
    /// Record only.
    #[default]
    Off,
    /// Every key (and calls with unknown tokens, for the client rule).
    All,
    /// These inventory keys.
    Keys(Vec<String>),
}

/// What to run: the command line's choices; what it leaves out comes from `[proxy]`.
#[derive(Debug, Clone, Default)]
pub struct ProxyRequest {
    /// `None`: `[proxy] listen`, else `127.0.0.1:8788`.
    pub listen: Option<String>,
    /// `None`: `[airwallex] base_url`, else production.
    pub upstream: Option<String>,
    /// `None`: `[proxy] enforce`.
    pub enforce: Option<Enforce>,
    /// Client addresses or CIDRs allowed to use the proxy, checked under `--enforce` (empty:
    /// `[proxy] allowed_clients`; both empty: any).
    pub allowed_clients: Vec<String>,
    pub upstream_ca: Vec<PathBuf>,
    /// Hold transfers to beneficiaries created or changed less than this many minutes ago.
    pub money_guard_minutes: Option<u64>,
    /// `None`: `proxy-spill/` beside the database.
    pub spill_dir: Option<PathBuf>,
    pub db: PathBuf,
    /// Event loops to serve on (`None`: the caller's runtime alone).
    pub threads: Option<super::ServerThreads>,
}

/// The request with `[proxy]` filled in where the command line said nothing.
pub fn resolve(mut req: ProxyRequest, config: &Config) -> ProxyRequest {
    let c = &config.proxy;
    req.listen = req
        .listen
        .or_else(|| c.listen.clone())
        .or_else(|| Some("127.0.0.1:8788".to_string()));
    req.upstream = req.upstream.or_else(|| c.upstream.clone());
    req.enforce = req.enforce.or_else(|| {
        Some(match &c.enforce {
            crate::config::EnforceSetting::Off => Enforce::Off,
            crate::config::EnforceSetting::All => Enforce::All,
            crate::config::EnforceSetting::Keys(k) => Enforce::Keys(k.clone()),
        })
    });
    if req.allowed_clients.is_empty() {
        req.allowed_clients = c.allowed_clients.clone();
    }
    req.upstream_ca.extend(c.upstream_ca.iter().cloned());
    req.money_guard_minutes = req.money_guard_minutes.or(c.money_guard_minutes);
    req.spill_dir = req.spill_dir.or_else(|| c.spill_dir.clone());
    req
}

/// Why the job could not run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("--enforce names {0:?}, which is not a declared key (declared: {1})")]
    UnknownKey(String, String),
    #[error("[proxy] allowed_clients: {0}")]
    Clients(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct ProxyOutcome {
    pub counters: serde_json::Value,
}

/// The policy from the declared keys.
pub fn policy(req: &ProxyRequest, config: &Config, catalog: &Catalog) -> Result<Policy, JobError> {
    let inventory = Inventory::from_config(config, catalog);
    let enforce = req.enforce.clone().unwrap_or_default();
    if let Enforce::Keys(names) = &enforce {
        for n in names {
            if !inventory.entries.iter().any(|e| &e.facts.name == n) {
                let known: Vec<&str> = inventory
                    .entries
                    .iter()
                    .map(|e| e.facts.name.as_str())
                    .collect();
                return Err(JobError::UnknownKey(n.clone(), known.join(", ")));
            }
        }
    }
    let mut keys = Vec::new();
    for e in &inventory.entries {
        let f = &e.facts;
        let Some(fp) = &f.fingerprint else {
            tracing::warn!(
                "proxy: key {:?}: secret not resolvable ({}); its calls are recorded under its fingerprint and its scopes are not enforced",
                f.name,
                f.secret_problem.as_deref().unwrap_or("unknown reason")
            );
            continue;
        };
        keys.push(KeyPolicy {
            name: f.name.clone(),
            fingerprint: fp.clone(),
            allowed: Some(allowed_templates(&f.declared_scopes, catalog)),
            enforce: match &enforce {
                Enforce::Off => false,
                Enforce::All => true,
                Enforce::Keys(names) => names.contains(&f.name),
            },
            ip_whitelist: f.ip_whitelist.clone(),
        });
    }
    Policy::new(
        keys,
        enforce == Enforce::All,
        &req.allowed_clients,
        req.money_guard_minutes
            .filter(|m| *m > 0)
            .map(|m| Duration::from_secs(m.saturating_mul(60))),
    )
    .map_err(JobError::Clients)
}

/// Runs the proxy until `shutdown`; `ready` gets the bound address once it listens. Findings it
/// records queue their alerts through `alerts` (the `[alerts]` planner), for the alert sender
/// to deliver.
pub async fn run(
    req: ProxyRequest,
    config: &Config,
    clock: Arc<dyn Clock>,
    alerts: Option<Arc<dyn crate::store::AlertPlanner>>,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(SocketAddr),
) -> Result<ProxyOutcome, JobError> {
    serve(req, config, clock, alerts, shutdown, |addr, _| ready(addr)).await
}

/// `run`, with the live counters handed to `ready` too (the daemon exposes them in `/metrics`).
pub async fn serve(
    req: ProxyRequest,
    config: &Config,
    clock: Arc<dyn Clock>,
    alerts: Option<Arc<dyn crate::store::AlertPlanner>>,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(SocketAddr, Arc<super::Counters>),
) -> Result<ProxyOutcome, JobError> {
    let req = resolve(req, config);
    let listen = req.listen.clone().unwrap_or_default();
    let catalog = Catalog::builtin_ref();
    let upstream_url = req
        .upstream
        .clone()
        .or_else(|| config.airwallex.base_url.clone())
        .unwrap_or_else(|| crate::airwallex::PRODUCTION_URL.to_string());
    let upstream =
        Upstream::parse(&upstream_url, &config.airwallex.allow_hosts).map_err(ProxyError::from)?;
    let policy = policy(&req, config, catalog)?;
    // Beside a SQLite file; for a PostgreSQL URL, in the working directory.
    let spill_dir = req.spill_dir.clone().unwrap_or_else(|| {
        crate::store::postgres_url(&req.db)
            .map(|_| std::path::Path::new("."))
            .or_else(|| req.db.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join("proxy-spill")
    });
    let mut settings = ProxySettings::new(upstream.clone(), spill_dir.clone());
    settings.upstream_ca = req.upstream_ca.clone();
    if let Some(q) = config.proxy.queue_capacity {
        settings.writer.queue_capacity = q;
    }
    let store = LazySqliteStore::new(&req.db, Duration::from_millis(250), clock.clone())
        .with_alerts(alerts);
    let lookup: Arc<dyn ProxyLookup> =
        Arc::new(LazySqliteLookup::new(&req.db, Duration::from_millis(250)));
    let enforcing = policy.enforces_anything();
    let guard = policy.money_guard;
    let proxy = Proxy::new(settings, policy, Box::new(store), Some(lookup), clock)?;
    let listener = Proxy::bind(&listen)
        .await
        .map_err(|source| JobError::Listen {
            addr: listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| JobError::Listen {
        addr: listen.clone(),
        source,
    })?;
    tracing::info!(
        "{}; recording into {} (spill: {}){}{}",
        Proxy::listen_note(addr, &upstream.url),
        req.db.display(),
        spill_dir.display(),
        if enforcing { "; enforcing" } else { "" },
        guard.map_or(String::new(), |g| format!(
            "; money guard: transfers to beneficiaries younger than {} min are held",
            g.as_secs() / 60
        ))
    );
    let egress = proxy.egress_address().await;
    for line in proxy.whitelist_report(egress) {
        if line.contains("NOT in") {
            tracing::warn!("proxy: {line}");
        } else {
            tracing::info!("proxy: {line}");
        }
    }
    let counters = proxy.counters();
    ready(addr, counters.clone());
    let ticker = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let now = counters.requests.load(std::sync::atomic::Ordering::Relaxed);
                if now != last {
                    tracing::info!("proxy: counters {}", counters.snapshot());
                    last = now;
                }
            }
        })
    };
    let served = match &req.threads {
        Some(t) => proxy.serve_threads(listener, shutdown, t).await,
        None => proxy.serve(listener, shutdown).await,
    }
    .map_err(|source| JobError::Listen {
        addr: listen.clone(),
        source,
    });
    ticker.abort();
    let snapshot = counters.snapshot();
    tracing::info!("proxy: stopped; counters {snapshot}");
    tokio::task::spawn_blocking(move || proxy.join()).await.ok();
    served?;
    Ok(ProxyOutcome { counters: snapshot })
}
