//! `awxguard demo`: the main job on generated sample data and a local Airwallex simulator (the
//! demo itself: `crate::demo`).

use super::Context;
use crate::demo::{self, DemoRequest};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write the sample data here and keep it (default: a temporary directory, removed
    /// afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: DemoArgs) -> anyhow::Result<u8> {
    let format = match ctx.global.format {
        crate::report::Format::Json => "json",
        _ => "human",
    };
    let req = DemoRequest {
        dir: args.dir,
        format,
    };
    ctx.block_on(demo::run(req, ctx.clock()))?;
    Ok(0)
}
