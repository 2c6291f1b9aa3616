//! `awxguard audit`: inventory, one login per key, discovery, usage evidence, the least-privilege
//! rules, the findings store, the report (the job: `privilege::audit`).

use super::Context;
use crate::privilege::audit::{self, AuditRequest};
use crate::report::Report;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Usage events: a JSON Lines file or a directory of them (repeatable); adds to
    /// `[audit] usage` in the config. The events ingested into the database (`awxguard usage
    /// ingest`) are evidence too, with these files when both are there. Without evidence, usage
    /// rules say "not judged".
    #[arg(long, value_name = "FILE|DIR")]
    pub usage: Vec<PathBuf>,
    /// Do not log in: judge the declared facts only (status `unverified`).
    #[arg(long)]
    pub no_verify: bool,
    /// Search this directory or file (config directories, env files) for keys; repeatable;
    /// adds to `[audit] discover`. Undeclared keys found are shadow keys.
    #[arg(long, value_name = "PATH")]
    pub discover: Vec<PathBuf>,
    /// Scan this source tree or repository for leaked keys (repeatable; ignore files apply, as
    /// in `awxguard scan`): a declared key found there is leaked (`privilege.key-leaked`).
    #[arg(long = "scan", value_name = "PATH")]
    pub scan: Vec<PathBuf>,
    /// Add the privilege rules in this directory (repeatable); adds to `[audit] rules`.
    #[arg(long = "privilege-rules", value_name = "DIR")]
    pub privilege_rules: Vec<PathBuf>,
    /// Do not record the findings in the database (no lifecycle); the usage evidence it holds
    /// (`awxguard usage ingest`) is still read when the database exists.
    #[arg(long)]
    pub no_store: bool,
}

pub fn run(ctx: &Context, args: AuditArgs) -> anyhow::Result<u8> {
    let req = AuditRequest {
        usage: args.usage,
        no_verify: args.no_verify,
        discover: args.discover,
        scan: args.scan,
        privilege_rules: args.privilege_rules,
        record: !args.no_store,
    };
    // without recording, the database is only read (the usage evidence it holds)
    let store = if req.record {
        Some(ctx.open_store()?)
    } else {
        ctx.open_store_if_present()?
    };
    let outcome = ctx.block_on(audit::run(req, &ctx.config, ctx.clock(), store))?;
    let report = Report::from(outcome);
    let started = std::time::Instant::now();
    let code = ctx.emit(&report)?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        findings = report.findings.len(),
        "report rendered"
    );
    Ok(code)
}
