//! `awxguard sandbox`: the local Airwallex simulator as a server, for trying awxguard (and its
//! integrations) without an Airwallex account. It serves on the process's runtime.

use super::Context;
use crate::airwallex::simulator::{SimState, Simulator};
use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: String,
    /// Simulator state (JSON): keys by client ID and key fingerprint, their behaviour and
    /// permissions, seeded data.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: SandboxArgs) -> anyhow::Result<u8> {
    let state = match &args.state {
        Some(p) => SimState::load(p).map_err(anyhow::Error::msg)?,
        None => SimState::default(),
    };
    ctx.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        tell!("awxguard sandbox: Airwallex simulator listening on http://{addr}");
        tokio::select! {
            r = Simulator::new(state).serve(listener) => r.context("simulator stopped")?,
            _ = tokio::signal::ctrl_c() => tell!("awxguard sandbox: stopping"),
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(0)
}
