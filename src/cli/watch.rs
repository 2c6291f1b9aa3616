//! `awxguard watch`: one poll of the money-movement watch with a read-only key: the lists read
//! since the last poll, the findings recorded under `watch:<key>` (the job: `watch::run`, which
//! checks its rule files before anything is sent).

use super::Context;
use crate::watch::WatchRequest;
use clap::Args;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The declared key to read with (default: `[watch] key`); a key that can only read.
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
}

pub fn run(ctx: &Context, args: WatchArgs) -> anyhow::Result<u8> {
    let store = ctx.open_store()?;
    let req = WatchRequest {
        key: args.key,
        calls: None,
    };
    let outcome = ctx.block_on(crate::watch::run(&req, &ctx.config, ctx.clock(), store))?;
    ctx.emit(&crate::report::Report::from(outcome))
}
