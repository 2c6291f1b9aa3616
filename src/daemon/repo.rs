//! The scheduled repository scan: optionally `git fetch`, then only the blobs introduced since
//! the last scan. The commit each ref pointed at when it was scanned is remembered in the store
//! (`daemon_repo_refs`). The first time a repository is seen, its whole history is scanned (every
//! ref and stash entry); after that each ref that moved is scanned as the range `OLD..NEW`, a new
//! ref from the scanned tip it shares most history with, and a ref whose old commit is gone
//! (history rewritten and collected) from there too. Each piece is a run of the scan job
//! (`scan::job::run` with a range selection), recorded in the store like `awxguard scan --git
//! --record`, so its findings and alerts go the same way. The refs are remembered only once
//! every piece is recorded: a failed run is retried whole next time, and findings seen twice are
//! `open`, never alerted twice.

use crate::clock::Clock;
use crate::config::{Config, ScheduledRepo};
use crate::scan::git::{Git, GitError, Selection};
use crate::scan::job::{self as scan_job, Input, ScanError, ScanReport, ScanRequest};
use crate::store::{JobCounts, Store, StoreError};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest a `git fetch` may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a repository scan failed (it is retried at its next time).
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0}: the repository is gone: {1}")]
    Missing(PathBuf, std::io::Error),
    #[error("git fetch in {repo} failed: {message}")]
    Fetch { repo: PathBuf, message: String },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("scanning {range} of {repo}")]
    Scan {
        repo: PathBuf,
        range: String,
        #[source]
        source: Box<ScanError>,
    },
    #[error("cannot remember the scanned refs of {0}")]
    Store(PathBuf, #[source] StoreError),
    #[error("the repository scan stopped: {0}")]
    Panicked(String),
}

/// What one scheduled scan did.
#[derive(Debug, Clone, Default)]
pub struct RepoOutcome {
    pub counts: JobCounts,
    /// One line for the job run's record and the log.
    pub detail: String,
}

/// Removes credentials from URLs in git's messages (`https://user:token@host/...`).
fn scrub_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `git fetch --all --prune`, bounded by `FETCH_TIMEOUT` (killed when it runs over or the
/// daemon stops the job).
async fn fetch(repo: &Path) -> Result<(), RepoError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(["fetch", "--all", "--prune", "--quiet"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("NOTIFY_SOCKET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let fail = |message: String| RepoError::Fetch {
        repo: repo.to_path_buf(),
        message: scrub_urls(&message),
    };
    let child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot run git: {e}")))?;
    let out = tokio::time::timeout(FETCH_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("no answer in {} s", FETCH_TIMEOUT.as_secs())))?
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(match Git::new(repo).failure("fetch", &out.stderr) {
            GitError::Failed { message, .. } | GitError::NotARepository { message, .. }
                if message != "no message" =>
            {
                message
            }
            _ => format!("exit status {}", out.status),
        }));
    }
    Ok(())
}

/// Every ref that points (perhaps through an annotated tag) at a commit, by name.
pub fn list_refs(git: &Git) -> Result<BTreeMap<String, String>, GitError> {
    let out = git.output(&[
        "for-each-ref",
        "--format=%(refname)%09%(objecttype)%09%(objectname)%09%(*objecttype)%09%(*objectname)",
    ])?;
    let mut refs = BTreeMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 5 {
            continue;
        }
        let commit = match (f[1], f[3]) {
            ("commit", _) => f[2],
            ("tag", "commit") => f[4],
            _ => continue,
        };
        refs.insert(f[0].to_string(), commit.to_string());
    }
    Ok(refs)
}

fn has_commit(git: &Git, oid: &str) -> bool {
    git.output(&["cat-file", "-e", &format!("{oid}^{{commit}}")])
        .is_ok()
}

/// How many commits `tip` has that `base` does not.
fn commits_between(git: &Git, base: &str, tip: &str) -> Option<u64> {
    let out = git
        .output(&["rev-list", "--count", &format!("{base}..{tip}")])
        .ok()?;
    String::from_utf8_lossy(&out).trim().parse().ok()
}

/// What to scan: `None` for the whole history, else the ranges (`BASE..TIP`, or `TIP` alone
/// when no scanned commit is left to start from).
pub fn plan(
    git: &Git,
    previous: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    if previous.is_empty() {
        return None;
    }
    let known: Vec<&String> = {
        let mut seen = HashSet::new();
        previous
            .values()
            .filter(|c| seen.insert(c.as_str()))
            .filter(|c| has_commit(git, c))
            .collect()
    };
    let mut covered: HashSet<&str> = previous.values().map(String::as_str).collect();
    let mut ranges = Vec::new();
    for (name, tip) in current {
        if covered.contains(tip.as_str()) {
            continue;
        }
        let base = previous
            .get(name)
            .filter(|old| known.contains(old))
            .cloned()
            .or_else(|| {
                known
                    .iter()
                    .filter_map(|k| commits_between(git, k, tip).map(|n| (n, *k)))
                    .min()
                    .map(|(_, k)| k.clone())
            });
        ranges.push(match base {
            Some(b) => format!("{b}..{tip}"),
            None => tip.clone(),
        });
        covered.insert(tip);
    }
    Some(ranges)
}

fn add(counts: &mut JobCounts, r: &ScanReport) {
    counts.findings += r.findings.len() as u64;
    if let Some(s) = &r.store {
        counts.new += s.record.new as u64;
        counts.resolved += s.record.resolved as u64;
    }
    counts.items += r.stats.files;
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RepoError> + Send + 'static,
) -> Result<T, RepoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RepoError::Panicked(e.to_string()))?
}

/// Runs one scheduled scan of `job`'s repository.
pub async fn scan(
    job: &ScheduledRepo,
    config: &Config,
    clock: &dyn Clock,
    store: Arc<dyn Store>,
) -> Result<RepoOutcome, RepoError> {
    if job.fetch {
        fetch(&job.path).await?;
    }
    let repo = job
        .path
        .canonicalize()
        .map_err(|e| RepoError::Missing(job.path.clone(), e))?;
    let key = repo.display().to_string();
    let (s, r, k) = (store.clone(), repo.clone(), key.clone());
    let (current, previous, plan) = blocking(move || {
        let git = Git::new(&r);
        git.check_repository()?;
        let current = list_refs(&git)?;
        let previous: BTreeMap<String, String> = s
            .repo_refs(&k)
            .map_err(|e| RepoError::Store(r.clone(), e))?
            .into_iter()
            .collect();
        let plan = plan(&git, &previous, &current);
        Ok((current, previous, plan))
    })
    .await?;
    let mut out = RepoOutcome::default();
    let request = |selection: Selection| {
        let mut req = ScanRequest::new(Input::History {
            repo: repo.clone(),
            selection,
        });
        req.record = true;
        req
    };
    let pieces = match plan {
        None if current.is_empty() => {
            out.detail = format!("{}: no commits yet", repo.display());
            return Ok(out);
        }
        None => vec![(request(Selection::All), "the whole history".to_string())],
        Some(ranges) => ranges
            .into_iter()
            .map(|r| (request(Selection::Range(r.clone())), r))
            .collect(),
    };
    let full = previous.is_empty();
    let n = pieces.len();
    for (req, range) in pieces {
        let report = scan_job::run(req, config, clock, Some(store.clone()))
            .await
            .map_err(|source| RepoError::Scan {
                repo: repo.clone(),
                range: range.clone(),
                source: Box::new(source),
            })?;
        add(&mut out.counts, &report);
    }
    let refs: Vec<(String, String)> = current.into_iter().collect();
    let now = clock.now();
    let (s, r) = (store.clone(), repo.clone());
    blocking(move || {
        s.set_repo_refs(&key, &refs, now)
            .map_err(|e| RepoError::Store(r, e))
    })
    .await?;
    let c = &out.counts;
    out.detail = if full {
        format!(
            "{}: whole history (first scan): {} blobs, {} findings, {} new",
            repo.display(),
            c.items,
            c.findings,
            c.new
        )
    } else if n == 0 {
        format!("{}: no ref moved", repo.display())
    } else {
        format!(
            "{}: {n} new range(s): {} blobs, {} findings, {} new",
            repo.display(),
            c.items,
            c.findings,
            c.new
        )
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_scrubbed() {
        assert_eq!(
            scrub_urls("unable to access 'https://bot:ghp_secret@git.example.com/a.git/': 403"),
            "unable to access 'https://***@git.example.com/a.git/': 403"
        );
        assert_eq!(
            scrub_urls("https://git.example.com/a.git and ssh://git@host/x"),
            "https://git.example.com/a.git and ssh://***@host/x"
        );
    }
}
