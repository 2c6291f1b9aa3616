//! `awxguard demo`: the whole story on generated data and a local Airwallex simulator (the demo
//! itself: `crate::demo`); prints its guided summary.

use super::Context;
use crate::demo::{self, DemoRequest};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write everything here (default: a new directory under the temporary directory, kept so
    /// the report can be opened).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: DemoArgs) -> anyhow::Result<u8> {
    let req = DemoRequest { dir: args.dir };
    let outcome = ctx.block_on(demo::run(req, ctx.clock()))?;
    for line in outcome.summary() {
        say!("{line}");
    }
    Ok(0)
}
