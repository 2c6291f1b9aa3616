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
        for line in crate::daemon::check(&config_path, chrono::Utc::now())?.lines() {
            say!("{line}");
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
