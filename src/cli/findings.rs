//! `awxguard findings`: what the database knows. List findings with their lifecycle, and
//! acknowledge the ones a person has judged (the rules: `store::acknowledge`).

use super::Context;
use crate::finding::Status;
use crate::report::Report;
use crate::store::acknowledge::{self, AckRequest};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// List stored findings (most severe first).
    List {
        /// Only findings with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only findings of this scope (`audit`, `scan`, ...).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Acknowledge a finding: it stays in the database and in reports, marked acknowledged, and
    /// no longer fails a run until the acknowledgement expires.
    Ack {
        /// Finding id (or a unique prefix of it).
        id: String,
        /// Why this is acceptable (required: suppressions must say why).
        #[arg(long)]
        reason: String,
        /// When the acknowledgement lapses: a date (2026-12-31) or a duration (30d, 12w).
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// Who acknowledged it.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Remove an acknowledgement.
    Unack {
        /// Finding id (or a unique prefix of it).
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    New,
    Open,
    Resolved,
    Acknowledged,
}

impl StatusArg {
    fn status(self) -> Status {
        match self {
            StatusArg::New => Status::New,
            StatusArg::Open => Status::Open,
            StatusArg::Resolved => Status::Resolved,
            StatusArg::Acknowledged => Status::Acknowledged,
        }
    }
}

pub fn run(ctx: &Context, cmd: FindingsCommand) -> anyhow::Result<u8> {
    let now = ctx.clock().now();
    // Listing only reads: opened read-only (a read-only file will do). Nothing here creates a
    // database: a path without one is a mistyped path (issue 16).
    let store = match &cmd {
        FindingsCommand::List { .. } => ctx.open_store_read_only()?,
        _ => ctx.open_store_existing()?,
    };
    match cmd {
        FindingsCommand::List { status, scope } => {
            let listing = crate::store::findings::listing(
                store.as_ref(),
                scope.as_deref(),
                status.map(StatusArg::status),
                now,
            )?;
            ctx.emit(&Report::from(listing))
        }
        FindingsCommand::Ack {
            id,
            reason,
            expires,
            by,
        } => {
            let req = AckRequest {
                id,
                reason,
                expires,
                by,
            };
            tell!("{}", acknowledge::acknowledge(store.as_ref(), &req, now)?);
            Ok(0)
        }
        FindingsCommand::Unack { id } => {
            tell!("{}", acknowledge::unacknowledge(store.as_ref(), &id)?);
            Ok(0)
        }
    }
}
