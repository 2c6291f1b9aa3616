//! `awxguard hook`: installs or removes the pre-commit hook that runs `awxguard scan --staged`
//! (the hook itself: `scan::hook`).

use super::Context;
use crate::scan::hook::{self, Uninstalled};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Write a pre-commit hook that blocks commits adding Airwallex credentials.
    Install(InstallArgs),
    /// Remove awxguard's pre-commit hook (and put back the hook it replaced, if any).
    Uninstall(RepoArg),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Replace a pre-commit hook awxguard did not write (kept as pre-commit.awxguard-backup).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub repo: RepoArg,
}

#[derive(Debug, Args)]
pub struct RepoArg {
    /// The repository (any directory inside its work tree).
    #[arg(value_name = "REPO", default_value = ".")]
    pub repo: PathBuf,
}

pub fn run(_ctx: &Context, cmd: HookCommand) -> anyhow::Result<u8> {
    match cmd {
        HookCommand::Install(a) => {
            let done = hook::install(&a.repo.repo, a.force)?;
            if let Some(b) = &done.backup {
                say!("kept the previous hook as {}", b.display());
            }
            say!(
                "{} {} (runs `awxguard scan --staged`)",
                done.verb,
                done.hook.display()
            );
        }
        HookCommand::Uninstall(a) => match hook::uninstall(&a.repo)? {
            Uninstalled::Nothing(h) => {
                say!("no pre-commit hook at {}; nothing to do", h.display())
            }
            Uninstalled::Removed { hook, restored } => {
                say!("removed {}", hook.display());
                if let Some(b) = restored {
                    say!("restored the previous hook from {}", b.display());
                }
            }
        },
    }
    Ok(0)
}
