//! `awxguard alerts`: try the alert path (`test`).

use super::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Send a test alert to each configured sink and print exactly what each server said.
    Test,
}

pub fn run(ctx: &Context, cmd: AlertsCommand) -> anyhow::Result<u8> {
    let Some(cfg) = ctx.config.alerts.as_ref() else {
        anyhow::bail!(
            "alerts are not configured: add an [alerts] section with a sink ([alerts.email], \
             [alerts.webhook] or [alerts.file]) to the config (see examples/awxguard.toml)"
        );
    };
    let clock = crate::clock::from_env();
    match cmd {
        AlertsCommand::Test => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (doc, outcomes) = rt.block_on(crate::alert::send_test(cfg, clock.as_ref()));
            println!("test alert {} (Message-ID {})", doc.id, doc.message_id);
            let mut failed = false;
            for o in outcomes {
                match o.result {
                    Ok(r) => println!("{:<8} {}: accepted: {}", o.sink, o.target, r.reply),
                    Err(e) => {
                        failed = true;
                        println!("{:<8} {}: FAILED: {e}", o.sink, o.target);
                    }
                }
            }
            Ok(if failed { 2 } else { 0 })
        }
    }
}
