//! `awxguard proxy`: the recording and enforcing proxy in front of Airwallex.

use super::Context;
use crate::proxy::job::{self, Enforce, ProxyRequest};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on; point the integration's Airwallex base URL at it [default: [proxy]
    /// listen, else 127.0.0.1:8788].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Airwallex API to forward to [default: [airwallex] base_url, else https://api.airwallex.com].
    /// HTTPS to a documented Airwallex host or a host in [airwallex] allow_hosts, or loopback.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Refuse (403) calls needing a scope the key does not declare, and calls from clients
    /// outside --allowed-client: for every key, or only for the keys named (comma-separated or
    /// repeated).
    #[arg(long, value_name = "KEY", num_args = 0.., value_delimiter = ',')]
    pub enforce: Option<Vec<String>>,
    /// Client address or CIDR allowed to use the proxy (repeatable; default: any).
    #[arg(long = "allowed-client", value_name = "CIDR")]
    pub allowed_clients: Vec<String>,
    /// PEM file of a CA (or self-signed certificate) to trust for the upstream, besides the
    /// public roots (repeatable).
    #[arg(long = "upstream-ca", value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
    /// Hold (403) transfers to beneficiaries created or changed less than this many minutes ago
    /// (0: off).
    #[arg(long, value_name = "MINUTES")]
    pub money_guard: Option<u64>,
    /// Where events go while the database refuses them [default: proxy-spill/ beside the
    /// database; for PostgreSQL, in the working directory: give each proxy its own].
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Threads serving requests, each its own single-threaded event loop; connections are dealt
    /// out in turn and stay on their loop [default: one per core]. The recording thread and
    /// blocking lookups run beside them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

pub fn run(ctx: &Context, args: ProxyArgs) -> anyhow::Result<u8> {
    // The accepting loop is this thread's single-threaded runtime; each further loop gets its
    // own thread and runtime.
    ctx.use_threads(1);
    let count = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let threads = crate::proxy::ServerThreads {
        count,
        spawn: std::sync::Arc::new(|served: crate::proxy::ServerFuture| {
            std::thread::Builder::new()
                .name("awxguard-serve".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(served),
                        Err(e) => tracing::warn!("proxy: a serving loop has no runtime: {e}"),
                    }
                })
        }),
    };
    let req = ProxyRequest {
        listen: args.listen,
        upstream: args.upstream,
        enforce: match args.enforce {
            None => None,
            Some(v) if v.is_empty() => Some(Enforce::All),
            Some(v) => Some(Enforce::Keys(v)),
        },
        allowed_clients: args.allowed_clients,
        upstream_ca: args.upstream_ca,
        money_guard_minutes: args.money_guard,
        spill_dir: args.spill_dir,
        db: ctx.db_path()?,
        threads: Some(threads),
    };
    let outcome = ctx.block_on(job::run(
        req,
        &ctx.config,
        std::sync::Arc::new(crate::clock::SystemClock),
        ctx.config.alerts.as_ref().map(|c| {
            std::sync::Arc::new(crate::alert::Planner::new(c.clone()))
                as std::sync::Arc<dyn crate::store::AlertPlanner>
        }),
        shutdown_signal(),
        |addr| tell!("awxguard proxy: listening on http://{addr}"),
    ))?;
    tell!("awxguard proxy: stopped; {}", outcome.counters);
    Ok(0)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
