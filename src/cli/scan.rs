//! `awxguard scan`: leaked Airwallex credentials in files, directories, standard input, git
//! history or the index. Arguments become a `scan::job::ScanRequest`; the job does the rest.

mod checks;

use super::Context;
use crate::report::Report;
use crate::scan::git::Selection;
use crate::scan::job::{self, Input, ScanRequest};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads standard input.
    #[arg(value_name = "PATH", default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Scan ignored files too (.gitignore, .awxguardignore, .git/info/exclude).
    #[arg(long)]
    pub no_ignore: bool,
    /// Do not follow symbolic links.
    #[arg(long)]
    pub no_follow: bool,
    /// Skip files larger than this many bytes [default: 26214400 (25 MiB)].
    #[arg(long, value_name = "BYTES")]
    pub max_file_size: Option<u64>,
    /// Add the rules in this directory (or file) of TOML rule files; repeatable.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Disable a rule by id; repeatable.
    #[arg(long = "disable", value_name = "RULE")]
    pub disable: Vec<String>,
    /// Scan git history instead of files: every blob reachable from any ref (branches, tags,
    /// stashes) once, each finding tied to the commit that introduced it. PATH is the repository.
    #[arg(long, conflicts_with = "staged", help_heading = "Git")]
    pub git: bool,
    /// Scan only what is staged in the index (for the pre-commit hook): the secrets the staged
    /// change adds. PATH is the repository.
    #[arg(long, help_heading = "Git")]
    pub staged: bool,
    /// Only the blobs introduced by the commits in REV..HEAD, for CI (implies --git).
    #[arg(long, value_name = "REV", conflicts_with_all = ["staged", "range"], help_heading = "Git")]
    pub since: Option<String>,
    /// Only the blobs introduced by the commits in the range A..B or A...B, for CI and pre-push
    /// hooks (implies --git).
    #[arg(
        long,
        value_name = "A..B",
        conflicts_with = "staged",
        help_heading = "Git"
    )]
    pub range: Option<String>,
    /// Record the findings in the database (`--db`, `AWXGUARD_DB`): lifecycle new, open,
    /// resolved per scanned target, acknowledgements honoured, leaks linked to inventory keys by
    /// `awxguard audit`. Staged and standard-input scans are never recorded.
    #[arg(long)]
    pub record: bool,
    /// Verification and baselines (--verify, --baseline, --write-baseline).
    #[command(flatten, next_help_heading = "Verification and baselines")]
    pub checks: checks::CheckArgs,
}

/// What the command line asks to scan.
fn input(args: &ScanArgs) -> anyhow::Result<Input> {
    let selection = match (&args.since, &args.range) {
        (Some(rev), _) => Some(Selection::Range(format!("{rev}..HEAD"))),
        (None, Some(range)) => Some(Selection::Range(range.clone())),
        (None, None) if args.git => Some(Selection::All),
        (None, None) => None,
    };
    let stdin = |p: &PathBuf| p.as_os_str() == "-";
    if selection.is_some() || args.staged {
        let repo = match args.paths.as_slice() {
            [] => PathBuf::from("."),
            [one] if !stdin(one) => one.clone(),
            _ => anyhow::bail!("--git, --staged, --since and --range take one repository path"),
        };
        return Ok(match selection {
            Some(selection) => Input::History { repo, selection },
            None => Input::Staged { repo },
        });
    }
    if args.paths.len() == 1 && stdin(&args.paths[0]) {
        return Ok(Input::Stdin);
    }
    if args.paths.iter().any(stdin) {
        anyhow::bail!("`-` (standard input) cannot be combined with other paths");
    }
    Ok(Input::Paths(args.paths.clone()))
}

/// The config sections a scan reads: `[scan]`, and `[airwallex]` to verify. A recorded scan
/// reads the whole file: its alerts name the declared keys its leaks belong to.
pub fn sections(args: &ScanArgs) -> crate::config::Sections {
    if args.record {
        return crate::config::Sections::All;
    }
    crate::config::Sections::Scan {
        airwallex: args.checks.verify,
        store: false,
    }
}

pub fn run(ctx: &Context, args: ScanArgs) -> anyhow::Result<u8> {
    let req = ScanRequest {
        input: input(&args)?,
        no_ignore: args.no_ignore,
        no_follow: args.no_follow,
        max_file_size: args.max_file_size,
        rules: args.rules,
        disable: args.disable,
        verify: args.checks.verify,
        baseline: args.checks.baseline,
        write_baseline: args.checks.write_baseline,
        record: args.record,
    };
    let store = match req.record_scope() {
        Some(_) => Some(ctx.open_store()?),
        None => None,
    };
    // Without --verify the job has nothing async: it runs here, and no runtime starts.
    let outcome = if req.is_local() {
        job::run_local(req, &ctx.config, ctx.clock(), store)?
    } else {
        ctx.block_on(job::run(req, &ctx.config, ctx.clock(), store))?
    };
    let decided = outcome.exit;
    let code = ctx.emit(&Report::from(outcome))?;
    Ok(decided.unwrap_or(code))
}
