//! Git scanning through git's own plumbing (no libgit2, no gix): every blob reachable from any ref
//! (`rev-list --objects`), the blobs a range of commits introduced (`log --raw`), and the index
//! (`diff --cached --raw`, in `staged.rs`). Blobs stream out of one `cat-file --batch` and are
//! scanned in parallel; which commit introduced a blob is worked out only for blobs that matched.

use super::{findings_from_matches, text_of, Match, Matcher, ScanOptions, ScanOutcome, ScanStats};
use crate::finding::{Commit, Finding};
use crate::secret::fingerprint;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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

    fn io(&self, command: &str, source: std::io::Error) -> GitError {
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

/// The top of the work tree holding `repo` (None for a bare repository), found without running
/// git: the nearest directory at or above `repo` with a `.git` entry.
pub(crate) fn work_tree_top(repo: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(repo).ok()?;
    abs.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// `.awxguardignore` at the top of the work tree, applied to repository paths.
pub(crate) fn ignore_for(repo: &Path, opts: &ScanOptions) -> Option<Gitignore> {
    if !opts.respect_ignore {
        return None;
    }
    let top = work_tree_top(repo)?;
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

/// What `cat-file` gave for one requested blob.
pub(crate) enum Blob {
    Data(Vec<u8>),
    TooLarge,
    Missing,
}

/// Streams the blobs `oids` out of one `git cat-file --batch`, calling `each(index, blob)` in
/// request order. Blobs over `max` bytes are read past, not kept.
pub(crate) fn cat_file(
    git: &Git,
    oids: &[&str],
    max: u64,
    mut each: impl FnMut(usize, Blob),
) -> Result<(), GitError> {
    if oids.is_empty() {
        return Ok(());
    }
    let mut child = git
        .command()
        .args(["cat-file", "--batch", "--buffer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GitError::Spawn)?;
    const CMD: &str = "cat-file";
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let result = std::thread::scope(|s| {
        // Feed the ids from another thread so neither pipe can fill up and block the other.
        s.spawn(move || {
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, &mut stdin);
            for oid in oids {
                if w.write_all(oid.as_bytes()).is_err() || w.write_all(b"\n").is_err() {
                    return;
                }
            }
            let _ = w.flush();
            drop(w);
            drop(stdin);
        });
        let err_reader = s.spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        let mut r = BufReader::with_capacity(256 * 1024, stdout);
        let mut header = Vec::new();
        for i in 0..oids.len() {
            header.clear();
            r.read_until(b'\n', &mut header)
                .map_err(|e| git.io(CMD, e))?;
            if header.is_empty() {
                let text = err_reader.join().unwrap_or_default();
                return Err(git.failure(CMD, &text));
            }
            let line = std::str::from_utf8(&header).unwrap_or("").trim_end();
            let mut parts = line.split(' ');
            let (_oid, kind, size) = (parts.next(), parts.next(), parts.next());
            let Some(size) = size.and_then(|s| s.parse::<u64>().ok()) else {
                each(i, Blob::Missing);
                continue;
            };
            if kind != Some("blob") || size > max {
                std::io::copy(&mut (&mut r).take(size + 1), &mut std::io::sink())
                    .map_err(|e| git.io(CMD, e))?;
                each(
                    i,
                    if kind == Some("blob") {
                        Blob::TooLarge
                    } else {
                        Blob::Missing
                    },
                );
                continue;
            }
            let mut data = vec![0; size as usize];
            r.read_exact(&mut data).map_err(|e| git.io(CMD, e))?;
            let mut nl = [0u8; 1];
            r.read_exact(&mut nl).map_err(|e| git.io(CMD, e))?;
            each(i, Blob::Data(data));
        }
        Ok(())
    });
    let status = child.wait().map_err(|e| git.io(CMD, e))?;
    result?;
    if !status.success() {
        return Err(git.failure(CMD, b"exited with an error"));
    }
    Ok(())
}

/// A blob to scan, with a path to scan it under.
pub(crate) struct BlobRequest {
    pub oid: String,
    pub path: String,
}

/// What a blob scan counted, shared by its threads.
#[derive(Default)]
pub(crate) struct BlobCounts {
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
}

impl BlobCounts {
    pub fn add_to(self, stats: &mut ScanStats) {
        stats.files += self.files.into_inner();
        stats.bytes += self.bytes.into_inner();
        stats.skipped_binary += self.binary.into_inner();
    }
}

/// Scans one blob's content under `path` (UTF-16 decoded; binary counted and skipped).
pub(crate) fn scan_blob(
    matcher: &Matcher,
    path: &str,
    data: &[u8],
    counts: &BlobCounts,
) -> Vec<Match> {
    let Some(text) = text_of(data) else {
        counts.binary.fetch_add(1, Ordering::Relaxed);
        return Vec::new();
    };
    counts.files.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    matcher.scan(path, &text)
}

/// Scans `blobs` in parallel (one `cat-file` feeding a pool of scanners); returns the matches per
/// blob id, for the blobs that matched. Counts land in `stats`.
pub(crate) fn scan_blobs(
    git: &Git,
    matcher: &Matcher,
    blobs: &[BlobRequest],
    opts: &ScanOptions,
    stats: &mut ScanStats,
) -> Result<HashMap<String, Vec<Match>>, GitError> {
    let counts = BlobCounts::default();
    let hits: Mutex<HashMap<String, Vec<Match>>> = Mutex::new(HashMap::new());
    let mut too_large = 0u64;
    let mut missing = 0u64;
    let oids: Vec<&str> = blobs.iter().map(|b| b.oid.as_str()).collect();
    let scan_one = |i: usize, data: Vec<u8>| {
        let b = &blobs[i];
        let found = scan_blob(matcher, &b.path, &data, &counts);
        if !found.is_empty() {
            hits.lock()
                .expect("hits poisoned")
                .insert(b.oid.clone(), found);
        }
    };
    let result = if blobs.len() < 64 {
        // A handful of blobs (the index, a short range): threads cost more than they save.
        cat_file(git, &oids, opts.max_file_size, |i, blob| match blob {
            Blob::Data(d) => scan_one(i, d),
            Blob::TooLarge => too_large += 1,
            Blob::Missing => missing += 1,
        })
    } else {
        // One `cat-file` reads (inflating and resolving deltas is most of the work, and one
        // process keeps its delta-base cache warm: two readers on halves were slower), a pool
        // of scanners matches.
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let (tx, rx) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(workers * 16);
        std::thread::scope(|s| {
            for _ in 0..workers {
                let rx = rx.clone();
                let scan_one = &scan_one;
                s.spawn(move || {
                    for (i, data) in rx.iter() {
                        scan_one(i, data);
                    }
                });
            }
            drop(rx);
            let r = cat_file(git, &oids, opts.max_file_size, |i, blob| match blob {
                Blob::Data(d) => {
                    let _ = tx.send((i, d));
                }
                Blob::TooLarge => too_large += 1,
                Blob::Missing => missing += 1,
            });
            drop(tx);
            r
        })
    };
    result?;
    counts.add_to(stats);
    stats.skipped_too_large += too_large;
    stats.unreadable += missing;
    Ok(hits.into_inner().expect("hits poisoned"))
}

/// A commit as findings show it.
#[derive(Debug, Clone)]
pub(crate) struct CommitInfo {
    pub id: String,
    pub author: String,
    pub date: String,
}

/// One blob introduced by one commit at one path; `parents` are the blob ids the path had in
/// the commit's parents (none for an added file).
#[derive(Debug, Clone)]
pub(crate) struct Intro {
    pub commit: usize,
    pub oid: String,
    pub path: String,
    pub parents: Vec<String>,
}

/// The output of `git log --raw -c -z` with our header format, in the order git gave it.
#[derive(Debug, Default)]
pub(crate) struct Introductions {
    pub commits: Vec<CommitInfo>,
    pub intros: Vec<Intro>,
}

/// The `--format` that `parse_log` reads: a \x01 marker, id, author, ISO date.
pub(crate) const LOG_FORMAT: &str = "--format=%x01%H%x00%an <%ae>%x00%aI";

fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_null_oid(oid: &str) -> bool {
    oid.bytes().all(|b| b == b'0')
}

/// Parses `git log --raw -z --no-abbrev -c` output written with `LOG_FORMAT`; `keep` says which
/// new blob ids to record (all when None).
pub(crate) fn parse_log(out: &[u8], keep: Option<&HashSet<String>>) -> Introductions {
    let mut res = Introductions::default();
    let mut tokens = out.split(|&b| b == 0);
    while let Some(tok) = tokens.next() {
        let t = trim_newlines(tok);
        if let Some(id) = t.strip_prefix(b"\x01") {
            let author = tokens.next().map(trim_newlines).unwrap_or_default();
            let date = tokens.next().map(trim_newlines).unwrap_or_default();
            res.commits.push(CommitInfo {
                id: String::from_utf8_lossy(id).into_owned(),
                author: String::from_utf8_lossy(author).into_owned(),
                date: String::from_utf8_lossy(date).into_owned(),
            });
        } else if t.first() == Some(&b':') {
            let Some(path) = tokens.next() else { break };
            let Some(commit) = res.commits.len().checked_sub(1) else {
                continue;
            };
            let meta = String::from_utf8_lossy(t);
            let colons = meta.bytes().take_while(|&b| b == b':').count();
            let fields: Vec<&str> = meta[colons..].split(' ').collect();
            // `:old new oldid newid S` or, for a merge, `::m1 m2 new p1 p2 newid SS`.
            let nparents = colons;
            if fields.len() < 2 * (nparents + 1) + 1 {
                continue;
            }
            let new_mode = fields[nparents];
            let parents = &fields[nparents + 1..2 * nparents + 1];
            let oid = fields[2 * nparents + 1];
            if !is_scanned_mode(new_mode) || is_null_oid(oid) {
                continue;
            }
            if keep.is_some_and(|k| !k.contains(oid)) {
                continue;
            }
            res.intros.push(Intro {
                commit,
                oid: oid.to_string(),
                path: String::from_utf8_lossy(path).into_owned(),
                parents: parents
                    .iter()
                    .filter(|p| !is_null_oid(p))
                    .map(|p| p.to_string())
                    .collect(),
            });
        }
    }
    res
}

fn trim_newlines(t: &[u8]) -> &[u8] {
    let start = t.iter().position(|&b| b != b'\n').unwrap_or(t.len());
    let end = t.iter().rposition(|&b| b != b'\n').map_or(start, |i| i + 1);
    &t[start..end.max(start)]
}

/// Commits of every stash entry (refs/stash keeps older entries only in its reflog).
fn stash_commits(git: &Git) -> Vec<String> {
    git.output(&["log", "-g", "--format=%H", "refs/stash", "--"])
        .map(|o| {
            String::from_utf8_lossy(&o)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `git log` over `revs` (passed on standard input), with `args`, and parses the output.
fn log_introductions(
    git: &Git,
    args: &[&str],
    revs: &[String],
    keep: Option<&HashSet<String>>,
) -> Result<Introductions, GitError> {
    let mut cmd = git.command();
    cmd.args([
        "log",
        "--raw",
        "-z",
        "--no-abbrev",
        "--no-renames",
        "--no-ext-diff",
        "--no-textconv",
        "--diff-merges=combined",
        // A user's config must not change what we parse.
        "--root",
        "--no-color",
        "--no-show-signature",
        "--no-relative",
        LOG_FORMAT,
    ])
    .args(args);
    let mut input = Vec::new();
    if !revs.is_empty() {
        cmd.arg("--stdin");
        for r in revs {
            input.extend_from_slice(r.as_bytes());
            input.push(b'\n');
        }
    }
    cmd.arg("--");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GitError::Spawn)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().map_err(|e| git.io("log", e))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(git.failure("log", &out.stderr));
    }
    Ok(parse_log(&out.stdout, keep))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_with_merges_and_odd_paths() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let out = format!(
            "\x01{c}\0Ann <a@x>\0 2026-01-01T00:00:00Z\0\n:000000 100644 {z} {a} A\0new\nline\0\
             :100644 000000 {a} {z} D\0gone\0\x01{b}\0Bob <b@x>\0 2026-01-02T00:00:00Z\0\0\
             ::100644 100644 100644 {a} {b} {c} MM\0:odd\0:160000 160000 {a} {b} M\0sub\0"
        );
        let r = parse_log(out.as_bytes(), None);
        assert_eq!(r.commits.len(), 2);
        assert_eq!(r.commits[1].author, "Bob <b@x>");
        assert_eq!(r.intros.len(), 2, "{:?}", r.intros);
        assert_eq!(r.intros[0].path, "new\nline");
        assert!(r.intros[0].parents.is_empty());
        assert_eq!(r.intros[1].path, ":odd");
        assert_eq!(r.intros[1].oid, c);
        assert_eq!(r.intros[1].parents, vec![a, b]);
        assert_eq!(r.intros[1].commit, 1);
    }
}
