//! Git scanning through git's own plumbing (no libgit2, no gix): every blob reachable from any ref
//! (`rev-list --objects`), the blobs a range of commits introduced (`log --raw`), and the index
//! (`diff --cached --raw`, in `staged.rs`). Blobs stream out of one `cat-file --batch` and are
//! scanned in parallel; which commit introduced a blob is worked out only for blobs that matched.
//!
//! Here: running git and its errors, and which paths are scanned. `blobs`: reading and scanning
//! blobs; `log`: which commit introduced which blob; `history`: the history scans and their
//! findings.

mod blobs;
mod history;
pub(crate) mod index;
mod log;
pub(crate) mod odb;

/// Runs `git` in `dir` for a unit test, with a fixed identity and no system config; its output.
#[cfg(test)]
pub(crate) fn test_git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) use blobs::{scan_blob, scan_blobs, BlobCounts, BlobRequest};
pub(crate) use history::build_findings;
pub use history::scan_history;
pub(crate) use log::{CommitInfo, Intro, Introductions};

use super::ScanOptions;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a git scan could not run. Each message names the repository or revision involved.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git (is it installed and on PATH?): {0}")]
    Spawn(std::io::Error),
    #[error("{repo} is not a git repository: {message}")]
    NotARepository { repo: PathBuf, message: String },
    #[error("bad revision {rev:?} in {repo}: {message}")]
    BadRevision {
        repo: PathBuf,
        rev: String,
        message: String,
    },
    #[error("git {command} failed in {repo}: {message}")]
    Failed {
        repo: PathBuf,
        command: String,
        message: String,
    },
    #[error("reading from git {command} in {repo}: {source}")]
    Io {
        repo: PathBuf,
        command: String,
        source: std::io::Error,
    },
}

/// Which history to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every blob reachable from any ref (branches, tags, remotes, notes) and every stash entry.
    All,
    /// The blobs introduced by the commits of a range such as `main..HEAD` or `v1.2...v1.3`.
    Range(String),
}

/// The mode of a regular file or an executable; links and submodules are not scanned.
pub(crate) fn is_scanned_mode(mode: &str) -> bool {
    mode == "100644" || mode == "100755"
}

/// A repository and how to run git in it.
pub struct Git {
    pub repo: PathBuf,
}

impl Git {
    pub fn new(repo: &Path) -> Git {
        Git {
            repo: repo.to_path_buf(),
        }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new("git");
        // Pathspecs given to git are paths, never magic; output is never coloured or paged; a
        // partial clone's missing blobs are counted as unreadable, not fetched over the network.
        c.arg("-C")
            .arg(&self.repo)
            .env("GIT_LITERAL_PATHSPECS", "1")
            .env("GIT_NO_LAZY_FETCH", "1")
            .env_remove("GIT_PAGER")
            .stdin(Stdio::null());
        c
    }

    /// Runs git with `args` and returns its standard output.
    pub fn output(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let out = self
            .command()
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Err(self.failure(args.first().copied().unwrap_or(""), &out.stderr));
        }
        Ok(out.stdout)
    }

    /// The error for a git command that failed with `stderr`.
    pub fn failure(&self, command: &str, stderr: &[u8]) -> GitError {
        let message = String::from_utf8_lossy(stderr)
            .lines()
            .map(|l| l.trim_start_matches("fatal: ").trim())
            .filter(|l| !l.is_empty())
            .take(3)
            .collect::<Vec<_>>()
            .join("; ");
        if message.contains("not a git repository") {
            return GitError::NotARepository {
                repo: self.repo.clone(),
                message,
            };
        }
        GitError::Failed {
            repo: self.repo.clone(),
            command: command.to_string(),
            message: if message.is_empty() {
                "no message".into()
            } else {
                message
            },
        }
    }

    pub(crate) fn io(&self, command: &str, source: std::io::Error) -> GitError {
        GitError::Io {
            repo: self.repo.clone(),
            command: command.to_string(),
            source,
        }
    }

    /// Fails with a clear message unless `repo` is a git repository (bare or not).
    pub fn check_repository(&self) -> Result<(), GitError> {
        if !self.repo.is_dir() {
            return Err(GitError::NotARepository {
                repo: self.repo.clone(),
                message: "no such directory".into(),
            });
        }
        self.output(&["rev-parse", "--git-dir"]).map(|_| ())
    }

    /// Fails with a clear message unless `rev` names a commit.
    pub fn check_revision(&self, rev: &str) -> Result<(), GitError> {
        let bad = |message: &str| GitError::BadRevision {
            repo: self.repo.clone(),
            rev: rev.to_string(),
            message: message.to_string(),
        };
        if rev.starts_with('-') || rev.is_empty() {
            return Err(bad("a revision cannot be empty or start with `-`"));
        }
        let spec = format!("{rev}^{{commit}}");
        let out = self
            .command()
            .args(["rev-parse", "--verify", "--quiet", &spec])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(GitError::Spawn)?;
        if out.success() {
            Ok(())
        } else {
            Err(bad("no such commit, branch or tag"))
        }
    }
}

/// `.awxguardignore` at the top of the work tree, applied to repository paths.
pub(crate) fn ignore_for(repo: &Path, opts: &ScanOptions) -> Option<Gitignore> {
    if !opts.respect_ignore {
        return None;
    }
    let top = crate::scan::walk::work_tree_of(repo)?;
    let file = top.join(".awxguardignore");
    if !file.is_file() {
        return None;
    }
    let mut b = GitignoreBuilder::new(&top);
    b.add(&file);
    b.build().ok()
}

pub(crate) fn is_ignored(ignore: &Option<Gitignore>, path: &str) -> bool {
    ignore
        .as_ref()
        .is_some_and(|g| !path.is_empty() && g.matched_path_or_any_parents(path, false).is_ignore())
}
