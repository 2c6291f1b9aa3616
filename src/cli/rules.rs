//! `awxguard rules`: list the rules in force and run every rule's examples (the jobs:
//! `rulebook::list` and `rulebook::check`).

use super::Context;
use crate::rulebook::{self, RulesRequest};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run every rule's examples (must be found) and negative examples (must not be).
    Check(RuleDirs),
    /// List the rules in force.
    List {
        #[command(flatten)]
        dirs: RuleDirs,
        /// Print only the detector regexes, one per line (a pattern file for `rg -f`, e.g. the
        /// benchmark's ripgrep baseline).
        #[arg(long)]
        regexes: bool,
    },
}

#[derive(Debug, Args)]
pub struct RuleDirs {
    /// Add the leak rules in this directory (or file); repeatable.
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Add the privilege rules in this directory (or file); repeatable.
    #[arg(long = "privilege-rules", value_name = "DIR")]
    privilege_rules: Vec<PathBuf>,
    /// Add the watch rules in this directory (or file); repeatable.
    #[arg(long = "watch-rules", value_name = "DIR")]
    watch_rules: Vec<PathBuf>,
    /// Add the anomaly rules in this directory (or file); repeatable.
    #[arg(long = "anomaly-rules", value_name = "DIR")]
    anomaly_rules: Vec<PathBuf>,
}

impl RuleDirs {
    fn request(self) -> RulesRequest {
        RulesRequest {
            leak: self.rules,
            privilege: self.privilege_rules,
            watch: self.watch_rules,
            anomaly: self.anomaly_rules,
        }
    }
}

pub fn run(ctx: &Context, cmd: RulesCommand) -> anyhow::Result<u8> {
    let now = ctx.clock().now();
    let (lines, code) = match cmd {
        RulesCommand::Check(dirs) => {
            let outcome = rulebook::check(&dirs.request(), &ctx.config, now)?;
            (outcome.lines(), u8::from(!outcome.passed()))
        }
        RulesCommand::List { dirs, regexes } if regexes => {
            (rulebook::regexes(&dirs.request(), &ctx.config, now)?, 0)
        }
        RulesCommand::List { dirs, .. } => (
            rulebook::list(&dirs.request(), &ctx.config, now)?.lines(),
            0,
        ),
    };
    for l in lines {
        say!("{l}");
    }
    Ok(code)
}
