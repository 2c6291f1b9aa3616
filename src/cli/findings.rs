//! `awxguard findings`: what the database knows. List findings with their lifecycle, and
//! acknowledge the ones a person has judged (with a reason and, ideally, an expiry, so
//! suppressions are reviewed rather than forgotten).

use super::Context;
use crate::finding::Status;
use crate::report::Report;
use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
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

/// Parses `2026-12-31`, an RFC 3339 time, or a duration from now (`30d`, `12w`, `48h`).
pub fn parse_expiry(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| {
        anyhow::anyhow!("--expires {s:?}: give a date (2026-12-31) or a duration (30d, 12w, 48h)")
    })?;
    let d = match unit {
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        "w" => chrono::Duration::weeks(n),
        _ => anyhow::bail!("--expires {s:?}: unit must be h, d or w (e.g. 30d)"),
    };
    Ok(now + d)
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
            if reason.trim().is_empty() {
                anyhow::bail!("--reason must say why the finding is acceptable");
            }
            let expires_at = expires
                .as_deref()
                .map(|e| parse_expiry(e, now))
                .transpose()?;
            if expires_at.is_some_and(|e| e <= now) {
                anyhow::bail!("--expires is in the past");
            }
            let full = store
                .acknowledge(&id, &reason, by.as_deref(), expires_at, now)
                .context("cannot acknowledge")?;
            match expires_at {
                Some(e) => tell!(
                    "acknowledged {full} until {}",
                    e.format("%Y-%m-%d %H:%M UTC")
                ),
                None => tell!(
                    "acknowledged {full} with no expiry (consider --expires so it gets reviewed)"
                ),
            }
            Ok(0)
        }
        FindingsCommand::Unack { id } => {
            if store.unacknowledge(&id)? {
                tell!("acknowledgement of {id} removed");
            } else {
                tell!("{id} was not acknowledged");
            }
            Ok(0)
        }
    }
}
