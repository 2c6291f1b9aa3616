//! `awxguard scan`: leaked Airwallex credentials in files, directories and standard input.

mod checks;

use super::Context;
use crate::report::Report;
use crate::rules::LeakRules;
use crate::scan::{self, Matcher, ScanOptions};
use anyhow::Context as _;
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

/// The matcher for the rules the config and command line put in force.
pub fn build_matcher(
    ctx: &Context,
    extra: &[PathBuf],
    disable: &[String],
) -> anyhow::Result<Matcher> {
    let mut dirs = ctx.config.scan.rule_dirs.clone();
    dirs.extend_from_slice(extra);
    let mut off = ctx.config.scan.disable.clone();
    off.extend_from_slice(disable);
    let rules = LeakRules::load(&dirs, &off)?;
    let now = crate::clock::from_env().now().timestamp();
    Ok(Matcher::new(rules, now))
}

pub fn options(ctx: &Context, args: &ScanArgs) -> ScanOptions {
    let defaults = ScanOptions::default();
    ScanOptions {
        respect_ignore: !args.no_ignore,
        follow_symlinks: !args.no_follow && ctx.config.scan.follow_symlinks.unwrap_or(true),
        max_file_size: args
            .max_file_size
            .or(ctx.config.scan.max_file_size)
            .unwrap_or(defaults.max_file_size),
        keep_secrets: args.checks.verify.then(Default::default),
    }
}

pub fn run(ctx: &Context, args: ScanArgs) -> anyhow::Result<u8> {
    // A staged scan's `git diff --cached` starts first and runs while the rules load.
    let git_mode = super::scan_git::start(&args)?;
    let matcher = build_matcher(ctx, &args.rules, &args.disable)?;
    let opts = options(ctx, &args);
    if let Some(mode) = git_mode {
        let (outcome, note) = super::scan_git::run(&matcher, mode, &opts)?;
        let mut report = Report::new("scan", outcome.findings);
        report.summary.scan = Some(outcome.stats);
        report.summary.notes.push(note);
        let scope = record_scope(&args);
        return checks::finish(ctx, &args.checks, &matcher, &opts, report, scope.as_deref());
    }
    let outcome = if args.paths.len() == 1 && args.paths[0].as_os_str() == "-" {
        scan::scan_reader(&matcher, std::io::stdin().lock(), &opts)
            .context("cannot read standard input")?
    } else {
        for p in &args.paths {
            if p.as_os_str() == "-" {
                anyhow::bail!("`-` (standard input) cannot be combined with other paths");
            }
            // A root that does not exist is a mistake in the command, not a skipped file.
            std::fs::symlink_metadata(p).with_context(|| format!("cannot scan {}", p.display()))?;
        }
        scan::scan_paths(&matcher, &args.paths, &opts)
    };
    let mut report = Report::new("scan", outcome.findings);
    report.summary.scan = Some(outcome.stats);
    report.summary.problems = outcome.problems;
    report.summary.problems.sort_by(|a, b| a.path.cmp(&b.path));
    // After the scan: baseline, verification, baseline writing, recording, render (checks.rs).
    let scope = record_scope(&args);
    checks::finish(ctx, &args.checks, &matcher, &opts, report, scope.as_deref())
}

/// The store scope of a scan: what was scanned, so that only a later scan of the same target can
/// resolve its findings (`scan:tree:/srv/app`, `scan:git:/srv/app`, `scan:git:/srv/app:main..HEAD`).
/// Only with `--record`; staged and standard-input scans are transient and never recorded.
fn record_scope(args: &ScanArgs) -> Option<String> {
    if !args.record || args.staged || args.paths.iter().any(|p| p.as_os_str() == "-") {
        return None;
    }
    let targets: Vec<String> = args
        .paths
        .iter()
        .map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        })
        .collect();
    let targets = targets.join(",");
    let git = args.git || args.since.is_some() || args.range.is_some();
    Some(match (git, &args.since, &args.range) {
        (false, _, _) => format!("scan:tree:{targets}"),
        (true, Some(rev), _) => format!("scan:git:{targets}:{rev}..HEAD"),
        (true, None, Some(range)) => format!("scan:git:{targets}:{range}"),
        (true, None, None) => format!("scan:git:{targets}"),
    })
}
