//! `awxguard inventory`: the declared Airwallex keys (and, with `discover`, the undeclared ones),
//! what each is declared to do, what one login says it can do, and when it was last used (the
//! job: `privilege::audit::inventory`, whose discovery findings the privilege rules judge).

use super::Context;
use crate::privilege::audit::{self, InventoryMode, InventoryRequest};
use crate::report::Report;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(subcommand)]
    pub command: Option<InventoryCommand>,
    /// Usage events (JSON Lines file or directory; repeatable) for the "last used" column;
    /// adds to `[audit] usage` in the config.
    #[arg(long, global = true, value_name = "FILE|DIR")]
    pub usage: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Log in once per key (within Airwallex's login rate limit) and show what each key can
    /// really do, from its token's permissions.
    Verify,
    /// Search config directories and env files for Airwallex keys and match them to the
    /// inventory by fingerprint; keys nobody declared are listed as shadow keys.
    Discover {
        /// Directories or files to search (ignored files included).
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
}

pub fn run(ctx: &Context, args: InventoryArgs) -> anyhow::Result<u8> {
    let mode = match args.command {
        None => InventoryMode::List,
        Some(InventoryCommand::Verify) => InventoryMode::Verify,
        Some(InventoryCommand::Discover { paths }) => InventoryMode::Discover(paths),
    };
    let req = InventoryRequest {
        mode,
        usage: args.usage,
    };
    // the usage evidence the database holds gives "last used" too
    let store = ctx.open_store_if_present()?;
    let outcome = ctx.block_on(audit::inventory(req, &ctx.config, ctx.clock(), store))?;
    ctx.emit(&Report::from(outcome))
}
