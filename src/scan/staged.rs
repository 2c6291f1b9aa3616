//! What is staged, for the pre-commit hook: the index against HEAD (`git diff --cached --raw`),
//! then only the changed blobs out of `cat-file`. It never walks the work tree, so it costs the
//! same in a 20-file and a 20,000-file repository. A secret counts when the staged change adds
//! it: one the file already held at HEAD is the history scan's business, not the commit's.

use super::git::{
    build_findings, ignore_for, is_ignored, is_scanned_mode, scan_blobs, BlobRequest, CatFile,
    CommitInfo, Git, GitError, Intro, Introductions,
};
use super::{Matcher, ScanOptions, ScanOutcome, ScanStats};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// The commit id findings of a staged scan carry.
pub const STAGED: &str = "staged";

/// Scans the blobs staged in the index of the repository at `repo`.
pub fn scan_staged(
    matcher: &Matcher,
    repo: &Path,
    opts: &ScanOptions,
) -> Result<ScanOutcome, GitError> {
    let started = Instant::now();
    let git = Git::new(repo);
    // Start `cat-file` now: its start-up overlaps `git diff`'s, which is most of the latency.
    let reader = CatFile::spawn(&git)?;
    let out = git
        .output(&[
            "diff",
            "--cached",
            "--raw",
            "-z",
            "--no-abbrev",
            "--no-renames",
            "--no-ext-diff",
            "--ignore-submodules",
            "--diff-filter=AMT",
            "--no-color",
            "--no-relative",
        ])
        // Outside a repository `git diff` turns into `diff --no-index` and complains about
        // options; say what is really wrong.
        .map_err(|e| git.check_repository().err().unwrap_or(e))?;
    let ignore = ignore_for(repo, opts);
    let mut stats = ScanStats::default();
    let mut intros = Vec::new();
    let mut tokens = out.split(|&b| b == 0);
    while let Some(meta) = tokens.next() {
        let Some(meta) = meta.strip_prefix(b":") else {
            continue;
        };
        let Some(path) = tokens.next() else { break };
        let meta = String::from_utf8_lossy(meta);
        // `old_mode new_mode old_id new_id status`
        let f: Vec<&str> = meta.split(' ').collect();
        if f.len() < 5 || !is_scanned_mode(f[1]) {
            continue;
        }
        let path = String::from_utf8_lossy(path).into_owned();
        if is_ignored(&ignore, &path) {
            stats.skipped_ignored += 1;
            continue;
        }
        let parents = if f[2].bytes().all(|b| b == b'0') {
            Vec::new()
        } else {
            vec![f[2].to_string()]
        };
        intros.push(Intro {
            commit: 0,
            oid: f[3].to_string(),
            path,
            parents,
        });
    }
    let blobs: Vec<BlobRequest> = intros
        .iter()
        .map(|i| BlobRequest {
            oid: i.oid.clone(),
            path: i.path.clone(),
        })
        .collect();
    let hits = scan_blobs(&git, matcher, &blobs, opts, &mut stats, Some(reader))?;
    let findings = if hits.is_empty() {
        Vec::new()
    } else {
        let intro = Introductions {
            commits: vec![CommitInfo {
                id: STAGED.into(),
                author: String::new(),
                date: String::new(),
            }],
            intros,
        };
        build_findings(
            &git,
            matcher,
            &hits,
            &intro,
            &HashMap::new(),
            true,
            &ignore,
            opts,
        )?
    };
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(ScanOutcome {
        findings,
        stats,
        problems: Vec::new(),
    })
}
