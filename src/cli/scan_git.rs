//! The git modes of `awxguard scan` (`--git`, `--since`, `--range`, `--staged`): picks the
//! repository and the selection from the command line and runs the git scanners.

use super::scan::ScanArgs;
use crate::scan::git::{scan_history, Selection};
use crate::scan::staged::scan_staged;
use crate::scan::{Matcher, ScanOptions, ScanOutcome};
use std::path::PathBuf;

/// Runs a git mode when the command line asks for one and returns its outcome with a note
/// saying what was covered; `None` means scan files as usual.
pub fn run(
    matcher: &Matcher,
    args: &ScanArgs,
    opts: &ScanOptions,
) -> anyhow::Result<Option<(ScanOutcome, String)>> {
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
    let (outcome, what) = match &selection {
        Some(sel) => {
            let what = match sel {
                Selection::All => "every blob reachable from any ref or stash entry".to_string(),
                Selection::Range(r) => format!("the blobs introduced by {r}"),
            };
            (scan_history(matcher, &repo, sel, opts)?, what)
        }
        None => (
            scan_staged(matcher, &repo, opts)?,
            "what is staged in the index".to_string(),
        ),
    };
    let mut note = format!("git: scanned {what} in {}", repo.display());
    if outcome.stats.unreadable > 0 {
        note.push_str(&format!(
            "; {} blobs are not in the repository (a partial clone?) and were not scanned:              fetch them or scan a full clone",
            outcome.stats.unreadable
        ));
    }
    Ok(Some((outcome, note)))
}
