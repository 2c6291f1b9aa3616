//! `awxguard alerts`: try the alert path (`test`), show the outbox (`list`), deliver what is due
//! (`deliver`); and the delivery at the end of every run that recorded findings.

use super::Context;
use crate::report::Format;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Send a test alert to each configured sink and print exactly what each server said.
    Test,
    /// Show the outbox: alerts waiting (for the digest or the next round), deliveries pending
    /// (failing, with the last error and the next attempt) and sent (with the server's reply).
    List {
        /// Show at most this many deliveries (newest first).
        #[arg(long, default_value = "50")]
        limit: usize,
    },
    /// Deliver what is due now: repeats, digests whose time has come, and deliveries to retry
    /// (for cron; the daemon does this by itself). Exit 2 when a delivery failed.
    Deliver,
}

pub fn run(ctx: &Context, cmd: AlertsCommand) -> anyhow::Result<u8> {
    let cfg = crate::alert::configured(&ctx.config)?;
    match cmd {
        AlertsCommand::Test => {
            let report = ctx.block_on(crate::alert::send_test(cfg, ctx.clock()));
            print(report.lines(), false);
            Ok(if report.failed() { 2 } else { 0 })
        }
        AlertsCommand::List { limit } => {
            let store = ctx.open_store_read_only()?;
            let listing = crate::alert::list(store.as_ref(), limit)?;
            if ctx.global.format == Format::Json {
                say!("{}", serde_json::to_string_pretty(&listing)?);
            } else {
                print(listing.lines(), false);
            }
            Ok(0)
        }
        AlertsCommand::Deliver => {
            let store = ctx.open_store()?;
            let report =
                ctx.block_on(crate::alert::deliver_due(store, &ctx.config, ctx.clock()))?;
            print(report.lines(true), false);
            Ok(if report.failed.is_empty() && report.dead.is_empty() {
                0
            } else {
                2
            })
        }
    }
}

fn print(lines: Vec<String>, to_stderr: bool) {
    for line in lines {
        if to_stderr {
            tell!("{line}");
        } else {
            say!("{line}");
        }
    }
}

/// At the end of a run that recorded findings with alerts configured: deliver what the run
/// queued (and anything else due). A sink that fails leaves its alerts in the outbox for the
/// next run, `awxguard alerts deliver` or the daemon; it never changes the run's exit code.
pub fn after_run(ctx: &Context) {
    let Some(a) = ctx.alerting.borrow_mut().take() else {
        return;
    };
    if !a.planner.recorded() {
        return;
    }
    let result = ctx.block_on(crate::alert::deliver_due(
        a.store.clone(),
        &ctx.config,
        ctx.clock(),
    ));
    match result {
        Ok(r) => {
            print(r.lines(false), true);
            if !r.failed.is_empty() {
                tell!("alerts stay in the outbox and are retried: see `awxguard alerts list`");
            }
        }
        Err(e) => tell!("warning: alert delivery: {e:#}"),
    }
}
