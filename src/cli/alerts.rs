//! `awxguard alerts`: try the alert path (`test`), show the outbox (`list`), deliver what is due
//! (`deliver`); and the delivery at the end of every run that recorded findings.

use super::Context;
use crate::alert::DeliveryReport;
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
    let Some(cfg) = ctx.config.alerts.as_ref() else {
        anyhow::bail!(
            "alerts are not configured: add an [alerts] section with a sink ([alerts.email], \
             [alerts.webhook] or [alerts.file]) to the config (see examples/awxguard.toml)"
        );
    };
    match cmd {
        AlertsCommand::Test => {
            let (doc, outcomes) = ctx.block_on(crate::alert::send_test(cfg, ctx.clock()));
            say!("test alert {} (Message-ID {})", doc.id, doc.message_id);
            let mut failed = false;
            for o in outcomes {
                match o.result {
                    Ok(r) => say!("{:<8} {}: accepted: {}", o.sink, o.target, r.reply),
                    Err(e) => {
                        failed = true;
                        say!("{:<8} {}: FAILED: {e}", o.sink, o.target);
                    }
                }
            }
            Ok(if failed { 2 } else { 0 })
        }
        AlertsCommand::List { limit } => {
            let store = ctx.open_store_read_only()?;
            let listing = crate::alert::list(store.as_ref(), limit)?;
            if ctx.global.format == Format::Json {
                say!("{}", serde_json::to_string_pretty(&listing)?);
                return Ok(0);
            }
            say!("waiting: {}", listing.waiting.len());
            for w in &listing.waiting {
                let a = &w.alert;
                say!(
                    "  {:<9} key {}  {} finding{} ({})  due {}",
                    a.kind.as_str(),
                    a.key,
                    a.finding_ids.len(),
                    if a.finding_ids.len() == 1 { "" } else { "s" },
                    a.severity,
                    a.due_at.format("%Y-%m-%d %H:%M UTC"),
                );
            }
            say!("deliveries: {}", listing.deliveries.len());
            for d in &listing.deliveries {
                let state = match (d.state.as_str(), d.attempts) {
                    ("sent", _) => "sent",
                    (_, 0) => "queued",
                    _ => "failing",
                };
                say!("  {state:<8} {:<8} {}  {}", d.sink, d.message_id, d.subject);
                match state {
                    "sent" => say!(
                        "           sent {} after {} attempt(s): {}",
                        d.sent_at.as_deref().unwrap_or("-"),
                        d.attempts,
                        d.reply.as_deref().unwrap_or("")
                    ),
                    "failing" => say!(
                        "           {} attempt(s), next at {}: {}",
                        d.attempts,
                        d.next_attempt_at,
                        d.last_error.as_deref().unwrap_or("")
                    ),
                    _ => {}
                }
            }
            Ok(0)
        }
        AlertsCommand::Deliver => {
            let store = ctx.open_store()?;
            let report =
                ctx.block_on(crate::alert::deliver_due(store, &ctx.config, ctx.clock()))?;
            print_report(&report, false);
            Ok(if report.failed.is_empty() { 0 } else { 2 })
        }
    }
}

fn print_report(r: &DeliveryReport, to_stderr: bool) {
    let out = |line: String| {
        if to_stderr {
            tell!("{line}");
        } else {
            say!("{line}");
        }
    };
    for s in &r.sent {
        out(format!(
            "alert {} sent by {}: {} ({})",
            s.alert, s.sink, s.reply, s.subject
        ));
    }
    for f in &r.failed {
        out(format!(
            "alert {} NOT sent by {} (attempt {}, next at {}): {}",
            f.alert,
            f.sink,
            f.attempts,
            f.next_attempt_at.format("%Y-%m-%d %H:%M:%S UTC"),
            f.error
        ));
    }
    if !to_stderr && r.sent.is_empty() && r.failed.is_empty() {
        out("nothing due".into());
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
            print_report(&r, true);
            if !r.failed.is_empty() {
                tell!("alerts stay in the outbox and are retried: see `awxguard alerts list`");
            }
        }
        Err(e) => tell!("warning: alert delivery: {e:#}"),
    }
}
