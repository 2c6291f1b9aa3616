//! `awxguard report`: the store's current state as an HTML page, JSON or text (the job and the
//! renderers: `crate::report::state`). Reads the database only.

use super::Context;
use crate::report::state::html::Paper;
use crate::report::state::{parse_since, run as state_report, StateRequest};
use anyhow::Context as _;
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// What counts as new and resolved: a date (2026-11-17), an RFC 3339 time or an age (7d,
    /// 12h) [default: 7 days ago].
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only this key (inventory name or fingerprint): its section, leaks, anomalies and blast
    /// radius.
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// The paper the HTML report is laid out for when printed.
    #[arg(long, value_enum, default_value = "a4", value_name = "PAPER")]
    pub paper: Paper,
}

pub fn run(ctx: &Context, args: ReportArgs) -> anyhow::Result<u8> {
    let now = ctx.clock().now();
    let since = match &args.since {
        Some(s) => Some(parse_since(s, now).map_err(|e| anyhow::anyhow!("--since: {e}"))?),
        None => None,
    };
    let req = StateRequest {
        since,
        key: args.key,
    };
    let store = ctx.open_store_read_only()?;
    let report = state_report(&req, &ctx.config, ctx.clock(), store.as_ref())?;
    let open: Vec<crate::finding::Finding> = report
        .findings
        .iter()
        .filter(|f| f.status != Some(crate::finding::Status::Resolved))
        .cloned()
        .collect();
    let code = crate::finding::exit_code(&open, ctx.global.fail_on);
    let format = ctx.global.format;
    let style = ctx.style();
    match &ctx.global.output {
        Some(path) => {
            crate::report::state::write_file(&report, format, style, args.paper, path)
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            match crate::report::render_state(&report, format, style, args.paper, &mut lock)
                .and_then(|_| lock.flush())
            {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(code)
}
