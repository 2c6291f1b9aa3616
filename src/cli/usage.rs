//! `awxguard usage`: the usage evidence store. `ingest` reads events into it (then detects and
//! records anomalies), `stats` shows what it holds per key, `anomalies` lists what was recorded.

use super::Context;
use crate::usage::job::{AnomaliesRequest, IngestRequest};
use anyhow::Context as _;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Read usage events (JSON Lines files, directories of them, or - for standard input) into
    /// the evidence store; a file read before is read from where the last run stopped. Then
    /// detect anomalies over everything stored and record them.
    Ingest {
        /// Files, directories or - (standard input) [default: [usage] sources].
        #[arg(value_name = "FILE|DIR|-")]
        inputs: Vec<PathBuf>,
    },
    /// What the store holds per key: first and last event, event counts, silent days, the
    /// baseline it is on; and the gaps in the evidence.
    Stats {
        /// Only this key (inventory name or fingerprint).
        #[arg(long, value_name = "NAME")]
        key: Option<String>,
    },
    /// The anomalies recorded and still open (exit 1 when one is at or above --fail-on).
    Anomalies {
        /// Only anomalies whose window ends at or after this time (RFC 3339, or a date).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only this key.
        #[arg(long, value_name = "NAME")]
        key: Option<String>,
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
    },
}

fn parse_time(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| {
        format!("--since {s:?}: expected an RFC 3339 time or a date (2026-11-20)")
    })?;
    Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

pub fn run(ctx: &Context, cmd: UsageCommand) -> anyhow::Result<u8> {
    match cmd {
        UsageCommand::Ingest { inputs } => {
            crate::usage::job::rules(&ctx.config).context("cannot load the anomaly rules")?;
            let store = ctx.open_store()?;
            let fingerprints = crate::inventory::Inventory::fingerprints_of(&ctx.config);
            let req = IngestRequest {
                inputs,
                fingerprints,
            };
            let outcome = ctx.block_on(crate::usage::job::ingest(
                req,
                &ctx.config,
                ctx.clock(),
                store,
            ))?;
            ctx.emit(&crate::report::Report::from(outcome))
        }
        UsageCommand::Stats { key } => {
            let store = ctx.open_store_read_only()?;
            let o = ctx.block_on(crate::usage::job::stats(key, &ctx.config, store))?;
            ctx.emit(&crate::report::Report::from(o))
        }
        UsageCommand::Anomalies { since, key, all } => {
            let since = since.as_deref().map(parse_time).transpose()?;
            let store = ctx.open_store_read_only()?;
            let found = ctx.block_on(crate::usage::job::anomalies(
                AnomaliesRequest { since, key, all },
                ctx.clock(),
                store,
            ))?;
            ctx.emit(&crate::report::usage::anomalies(found))
        }
    }
}
