//! The git modes of `awxguard scan` (`--git`, `--since`, `--range`, `--staged`): picks the
//! repository and the selection from the command line and runs the git scanners.

use super::scan::ScanArgs;
use crate::scan::git::{scan_history, Selection};
use crate::scan::staged::{self, StagedDiff};
use crate::scan::{Matcher, ScanOptions, ScanOutcome};
use std::path::PathBuf;

/// A git mode the command line asks for, with the staged diff already started (it runs while
/// the rules load).
pub enum GitMode {
    History(PathBuf, Selection),
    Staged(PathBuf, StagedDiff),
}

/// The git mode of the command line, if any (`None`: scan files as usual). `--staged` starts
/// `git diff --cached` here.
pub fn start(args: &ScanArgs) -> anyhow::Result<Option<GitMode>> {
    let selection = match (&args.since, &args.range) {
        (Some(rev), _) => Some(Selection::Range(format!("{rev}..HEAD"))),
        (None, Some(range)) => Some(Selection::Range(range.clone())),
        (None, None) if args.git => Some(Selection::All),
        (None, None) => None,
    };
    if selection.is_none() && !args.staged {
        return Ok(None);
    }
    let repo = match args.paths.as_slice() {
        [] => PathBuf::from("."),
        [one] if one.as_os_str() != "-" => one.clone(),
        _ => anyhow::bail!("--git, --staged, --since and --range take one repository path"),
    };
    Ok(Some(match selection {
        Some(sel) => GitMode::History(repo, sel),
        None => {
            let diff = staged::start(&repo)?;
            GitMode::Staged(repo, diff)
        }
    }))
}

/// Runs a git mode and returns its outcome with a note saying what was covered.
pub fn run(
    matcher: &Matcher,
    mode: GitMode,
    opts: &ScanOptions,
) -> anyhow::Result<(ScanOutcome, String)> {
    let (outcome, what, repo) = match mode {
        GitMode::History(repo, sel) => {
            let what = match &sel {
                Selection::All => "every blob reachable from any ref or stash entry".to_string(),
                Selection::Range(r) => format!("the blobs introduced by {r}"),
            };
            (scan_history(matcher, &repo, &sel, opts)?, what, repo)
        }
        GitMode::Staged(repo, diff) => (
            staged::scan_started(matcher, diff, opts)?,
            "what is staged in the index".to_string(),
            repo,
        ),
    };
    let mut note = format!("git: scanned {what} in {}", repo.display());
    if outcome.stats.unreadable > 0 {
        note.push_str(&format!(
            "; {} blobs are not in the repository (a partial clone?) and were not scanned: \
             fetch them or scan a full clone",
            outcome.stats.unreadable
        ));
    }
    Ok((outcome, note))
}
