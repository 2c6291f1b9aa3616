//! The history scans: every blob reachable from any ref, or the blobs a range introduced; and
//! the findings of matched blobs, tied to the commits that introduced them.

use super::blobs::{cat_file, scan_blobs, Blob, BlobRequest};
use super::log::{is_object_id, log_introductions, stash_commits, Introductions};
use super::{ignore_for, is_ignored, Git, GitError, Selection};
use crate::finding::{Commit, Finding};
use crate::scan::{
    findings_from_matches, text_of, Match, Matcher, ScanOptions, ScanOutcome, ScanStats,
};
use crate::secret::fingerprint;
use ignore::gitignore::Gitignore;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

/// Scans the history of `repo` as `selection` says.
pub fn scan_history(
    matcher: &Matcher,
    repo: &Path,
    selection: &Selection,
    opts: &ScanOptions,
) -> Result<ScanOutcome, GitError> {
    let started = Instant::now();
    let git = Git::new(repo);
    git.check_repository()?;
    let ignore = ignore_for(repo, opts);
    let mut stats = ScanStats::default();
    let findings = match selection {
        Selection::All => scan_all(&git, matcher, opts, &ignore, &mut stats)?,
        Selection::Range(range) => scan_range(&git, matcher, range, opts, &ignore, &mut stats)?,
    };
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(ScanOutcome {
        findings,
        stats,
        problems: Vec::new(),
    })
}

fn scan_all(
    git: &Git,
    matcher: &Matcher,
    opts: &ScanOptions,
    ignore: &Option<Gitignore>,
    stats: &mut ScanStats,
) -> Result<Vec<Finding>, GitError> {
    let stashes = stash_commits(git);
    // Every reachable blob once, with the first path git met it under.
    let mut cmd = git.command();
    cmd.args([
        "rev-list",
        "--objects",
        "--all",
        "--filter=object:type=blob",
        "--filter-provided-objects",
        // A partial clone lacks blobs: list them as missing (`?id`) instead of failing.
        "--missing=print",
    ]);
    if !stashes.is_empty() {
        cmd.args(&stashes);
    }
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(git.failure("rev-list", &out.stderr));
    }
    let mut blobs = Vec::new();
    for line in out.stdout.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        if line.starts_with('?') {
            stats.unreadable += 1;
            continue;
        }
        let (oid, path) = line.split_once(' ').unwrap_or((&line, ""));
        // A path with a newline in it comes out cut in two; its second half is no object id.
        // (Findings take their paths from `git log -z`, which keeps every byte.)
        if !is_object_id(oid) {
            continue;
        }
        if is_ignored(ignore, path) {
            stats.skipped_ignored += 1;
            continue;
        }
        blobs.push(BlobRequest {
            oid: oid.to_string(),
            path: path.to_string(),
        });
    }
    let hits = scan_blobs(git, matcher, &blobs, opts, stats)?;
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    // Provenance, only for the blobs that matched: one `git log --raw` over every ref (tree
    // diffs only, no patches), keeping the lines that introduce a matched blob at any path.
    let keep: HashSet<String> = hits.keys().cloned().collect();
    let intro = log_introductions(git, &["--all", "--reverse"], &stashes, Some(&keep))?;
    let hint: HashMap<&str, &str> = blobs
        .iter()
        .filter(|b| keep.contains(&b.oid))
        .map(|b| (b.oid.as_str(), b.path.as_str()))
        .collect();
    build_findings(git, matcher, &hits, &intro, &hint, false, ignore, opts)
}

fn scan_range(
    git: &Git,
    matcher: &Matcher,
    range: &str,
    opts: &ScanOptions,
    ignore: &Option<Gitignore>,
    stats: &mut ScanStats,
) -> Result<Vec<Finding>, GitError> {
    let sides: Vec<&str> = if let Some((a, b)) = range.split_once("...") {
        vec![a, b]
    } else if let Some((a, b)) = range.split_once("..") {
        vec![a, b]
    } else {
        vec![range]
    };
    for side in sides.iter().filter(|s| !s.is_empty()) {
        git.check_revision(side)?;
    }
    if range.starts_with('-') {
        return Err(GitError::BadRevision {
            repo: git.repo.clone(),
            rev: range.to_string(),
            message: "a range cannot start with `-`".into(),
        });
    }
    let intro = log_introductions(git, &["--reverse"], &[range.to_string()], None)?;
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    for i in &intro.intros {
        if is_ignored(ignore, &i.path) {
            stats.skipped_ignored += 1;
            continue;
        }
        if seen.insert(i.oid.as_str()) {
            blobs.push(BlobRequest {
                oid: i.oid.clone(),
                path: i.path.clone(),
            });
        }
    }
    let hits = scan_blobs(git, matcher, &blobs, opts, stats)?;
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    build_findings(
        git,
        matcher,
        &hits,
        &intro,
        &HashMap::new(),
        true,
        ignore,
        opts,
    )
}

/// Turns matched blobs into findings, one per secret occurrence and path, tied to the earliest
/// commit that introduced it and listing the later ones. With `new_only`, a secret the path
/// already held in a parent commit is not counted as introduced (ranges, the index).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_findings(
    git: &Git,
    matcher: &Matcher,
    hits: &HashMap<String, Vec<Match>>,
    intro: &Introductions,
    hint_paths: &HashMap<&str, &str>,
    new_only: bool,
    ignore: &Option<Gitignore>,
    opts: &ScanOptions,
) -> Result<Vec<Finding>, GitError> {
    // Secrets the parents already held, by parent blob id: (rule, fingerprint).
    let mut before: HashMap<String, HashSet<(usize, String)>> = HashMap::new();
    if new_only {
        let parents: Vec<&str> = {
            let mut v: Vec<&str> = intro
                .intros
                .iter()
                .filter(|i| hits.contains_key(&i.oid))
                .flat_map(|i| i.parents.iter().map(String::as_str))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut texts: Vec<Option<Vec<u8>>> = vec![None; parents.len()];
        cat_file(git, &parents, opts.max_file_size, |i, b| {
            if let Blob::Data(d) = b {
                texts[i] = Some(d);
            }
        })?;
        for (oid, text) in parents.iter().zip(texts) {
            let set = text
                .as_deref()
                .and_then(text_of)
                .map(|t| {
                    matcher
                        .scan("", &t)
                        .into_iter()
                        .map(|m| (m.rule, fingerprint(m.secret.as_bytes())))
                        .collect()
                })
                .unwrap_or_default();
            before.insert(oid.to_string(), set);
        }
    }

    let keep_secrets = opts.keep_secrets.as_deref();
    // Finding id -> (finding, commit indices).
    let mut merged: HashMap<String, (Finding, Vec<usize>)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut add = |f: Finding, commit: Option<usize>| match merged.get_mut(&f.id) {
        Some((first, commits)) => {
            if let Some(c) = commit {
                let earliest = commits.first().copied();
                if !commits.contains(&c) {
                    commits.push(c);
                }
                // Keep the place (line, column) of the earliest introduction.
                if earliest.is_some_and(|e| c < e) {
                    *first = f;
                }
                commits.sort_unstable();
            }
        }
        None => {
            order.push(f.id.clone());
            merged.insert(f.id.clone(), (f, commit.into_iter().collect()));
        }
    };
    let mut attributed: HashSet<&str> = HashSet::new();
    for i in &intro.intros {
        let Some(matches) = hits.get(&i.oid) else {
            continue;
        };
        if is_ignored(ignore, &i.path) {
            continue;
        }
        attributed.insert(i.oid.as_str());
        findings_from_matches(matcher, matches, &i.path, None, keep_secrets, |m, fp| {
            !new_only
                || !i.parents.iter().any(|p| {
                    before
                        .get(p)
                        .is_some_and(|s| s.contains(&(m.rule, fp.into())))
                })
        })
        .into_iter()
        .for_each(|f| add(f, Some(i.commit)));
    }
    // Blobs no commit introduced (a tag pointing straight at a blob): reported without a commit.
    let mut rest: Vec<(&String, &Vec<Match>)> = hits
        .iter()
        .filter(|(oid, _)| !attributed.contains(oid.as_str()))
        .collect();
    rest.sort_by_key(|(oid, _)| oid.as_str());
    for (oid, matches) in rest {
        let path = match hint_paths.get(oid.as_str()) {
            Some(p) if !p.is_empty() => p.to_string(),
            _ => format!("blob {oid}"),
        };
        findings_from_matches(matcher, matches, &path, None, keep_secrets, |_, _| true)
            .into_iter()
            .for_each(|f| add(f, None));
    }
    Ok(order
        .into_iter()
        .filter_map(|id| merged.remove(&id))
        .map(|(mut f, commits)| {
            if let Some((&first, later)) = commits.split_first() {
                let c = &intro.commits[first];
                f.commit = Some(Commit {
                    id: c.id.clone(),
                    author: c.author.clone(),
                    date: c.date.clone(),
                    also: later.iter().map(|&i| intro.commits[i].id.clone()).collect(),
                });
            }
            f
        })
        .collect())
}
