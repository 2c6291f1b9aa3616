//! `awxguard store migrate`: bring the database (`--db`, `AWXGUARD_DB`, `[store] url|path`) up
//! to this build's schema explicitly, before rolling a new version out to many hosts at once.

use super::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Apply the schema steps the database has not had (idempotent); a database newer than
    /// this build is refused.
    Migrate,
}

pub fn run(ctx: &Context, cmd: StoreCommand) -> anyhow::Result<u8> {
    match cmd {
        StoreCommand::Migrate => {
            let target = ctx.db_path()?;
            let m = crate::store::migrate(&target)?;
            if m.from == m.to {
                say!(
                    "{} ({}): schema version {}, up to date",
                    m.database,
                    m.backend,
                    m.to
                );
            } else {
                say!(
                    "{} ({}): schema version {} -> {}",
                    m.database,
                    m.backend,
                    m.from,
                    m.to
                );
            }
            Ok(0)
        }
    }
}
