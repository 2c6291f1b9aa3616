//! `awxguard daemon`: runs the scheduled jobs, alert delivery and (optionally) the proxy until
//! stopped. The daemon builds and owns the process's runtime, so this subcommand runs before
//! `cli::run` builds one.

use super::GlobalArgs;
use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Check the config and print each job's schedule and next runs, then exit.
    #[arg(long)]
    pub check: bool,
}

pub fn run(global: &GlobalArgs, args: DaemonArgs) -> anyhow::Result<u8> {
    let config_path = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH));
    if args.check {
        let config = crate::config::Config::load(&config_path, true)?;
        if !config.daemon.has_work() {
            return Err(crate::daemon::DaemonError::NothingToDo(config_path).into());
        }
        let now = chrono::Utc::now();
        let tz = config.daemon.timezone;
        say!(
            "{}: ok; schedules in {tz}; health and metrics on http://{}",
            config_path.display(),
            config.daemon.listen
        );
        for p in crate::daemon::plan(&config, now, 3) {
            let next: Vec<String> = p
                .next
                .iter()
                .map(|t| {
                    t.with_timezone(&tz)
                        .format("%Y-%m-%d %H:%M:%S %Z")
                        .to_string()
                })
                .collect();
            say!(
                "  {:<24} {:<18} next: {}",
                p.job,
                p.schedule,
                next.join(", ")
            );
        }
        if config.daemon.proxy {
            say!(
                "  {:<24} listening on {}",
                "proxy",
                config.proxy.listen.as_deref().unwrap_or("127.0.0.1:8788")
            );
        }
        return Ok(0);
    }
    crate::daemon::run(crate::daemon::Options {
        config_path: config_path.clone(),
        db: global.db.clone(),
    })
    .with_context(|| format!("awxguard daemon --config {}", config_path.display()))?;
    Ok(0)
}
