//! What is staged, for the pre-commit hook: the index against HEAD (`git diff --cached --raw`),
//! then only the changed blobs. It never walks the work tree, so it costs the same in a 20-file
//! and a 20,000-file repository. A secret counts when the staged change adds it: one the file
//! already held at HEAD is the history scan's business, not the commit's.
//!
//! The hook runs on every commit, so this path starts no git process in the usual case: what is
//! staged is read from the index and HEAD's trees in process (`git::index`, which steps aside
//! for `git diff --cached` in the cases it does not handle), and `git add` writes what it
//! stages as loose objects, which are read here straight from the object store (a zlib stream
//! under `objects/xx/...`). A blob that is not there as a loose object (packed by `git gc`, kept
//! in an alternate, a `GIT_DIR` set up elsewhere) comes from one `git cat-file --batch` started
//! only for those. Object ids name their content, so a loose object found by id is that blob
//! whichever store it was found in.

use super::git::index::{self, Change};
use super::git::odb::{self, Kind, Odb, Read};
use super::git::{
    build_findings, ignore_for, is_ignored, is_scanned_mode, scan_blob, scan_blobs, BlobCounts,
    BlobRequest, CommitInfo, Git, GitError, Intro, Introductions,
};
use super::{Match, Matcher, ScanOptions, ScanOutcome, ScanStats};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The commit id findings of a staged scan carry.
pub const STAGED: &str = "staged";

/// Below this many staged blobs, reading and scanning them on one thread is faster than
/// starting a pool.
const PARALLEL_FROM: usize = 64;

/// What is staged in a repository, being found out on a thread of its own (the index read in
/// process, else `git diff --cached` started): the caller starts it first and loads the rules
/// meanwhile, on the other core.
pub struct StagedDiff {
    git: Git,
    reading: std::thread::JoinHandle<Result<How, GitError>>,
}

enum How {
    /// Read in process (`git::index`): the changes, and where the objects are.
    Read {
        objects: PathBuf,
        changes: Vec<Change>,
    },
    /// `git diff --cached`, running.
    Started(std::process::Child),
}

/// Starts finding out what is staged in the repository at `repo`.
pub fn start(repo: &Path) -> Result<StagedDiff, GitError> {
    let git = Git::new(repo);
    let repo = repo.to_path_buf();
    let reading = std::thread::Builder::new()
        .name("index".into())
        .spawn(move || read_or_start(&repo))
        .map_err(|e| git.io("diff", e))?;
    Ok(StagedDiff { git, reading })
}

/// What is staged: read from the index in process when it can be (`git::index`), else
/// `git diff --cached --raw` started.
fn read_or_start(repo: &Path) -> Result<How, GitError> {
    if let Some((layout, changes)) = index::staged_changes(repo) {
        let objects = layout.objects();
        return Ok(How::Read { objects, changes });
    }
    let git = Git::new(repo);
    let child = git
        .command()
        .args([
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GitError::Spawn)?;
    Ok(How::Started(child))
}

/// Scans the blobs staged in the index of the repository at `repo`.
pub fn scan_staged(
    matcher: &Matcher,
    repo: &Path,
    opts: &ScanOptions,
) -> Result<ScanOutcome, GitError> {
    scan_started(matcher, start(repo)?, opts)
}

/// Scans what the started `diff` says is staged.
pub fn scan_started(
    matcher: &Matcher,
    diff: StagedDiff,
    opts: &ScanOptions,
) -> Result<ScanOutcome, GitError> {
    let started = Instant::now();
    let StagedDiff { git, reading } = diff;
    let repo = git.repo.clone();
    let ignore = ignore_for(&repo, opts);
    let how = reading
        .join()
        .map_err(|_| git.io("diff", std::io::Error::other("the index reader stopped")))??;
    let mut stats = ScanStats::default();
    let (objects, intros) = match how {
        How::Read { objects, changes } => {
            let intros = intros_of(&changes, &ignore, &mut stats);
            (Some(Odb::new(objects)), intros)
        }
        How::Started(child) => {
            // While git reads the index: where the objects are.
            let objects = objects_dir(&repo).map(Odb::new);
            let out = child.wait_with_output().map_err(|e| GitError::Io {
                repo: repo.clone(),
                command: "diff".into(),
                source: e,
            })?;
            if !out.status.success() {
                // Outside a repository `git diff` turns into `diff --no-index` and complains
                // about options; say what is really wrong.
                let failure = git.failure("diff", &out.stderr);
                return Err(git.check_repository().err().unwrap_or(failure));
            }
            (objects, parse_diff(&out.stdout, &ignore, &mut stats))
        }
    };

    let counts = BlobCounts::default();
    let too_large = AtomicU64::new(0);
    let hits: Mutex<HashMap<String, Vec<Match>>> = Mutex::new(HashMap::new());
    let not_loose: Mutex<Vec<BlobRequest>> = Mutex::new(Vec::new());
    let one = |i: &Intro| match objects
        .as_ref()
        .map(|odb| odb.read_loose(&i.oid, opts.max_file_size))
        .unwrap_or(Read::NotHere)
    {
        Read::Object(Kind::Blob, data) => {
            let found = scan_blob(matcher, &i.path, &data, &counts);
            if !found.is_empty() {
                hits.lock()
                    .expect("hits poisoned")
                    .insert(i.oid.clone(), found);
            }
        }
        Read::TooLarge => {
            too_large.fetch_add(1, Ordering::Relaxed);
        }
        Read::Object(..) | Read::NotHere => {
            not_loose
                .lock()
                .expect("requests poisoned")
                .push(BlobRequest {
                    oid: i.oid.clone(),
                    path: i.path.clone(),
                })
        }
    };
    if intros.len() < PARALLEL_FROM {
        intros.iter().for_each(one);
    } else {
        intros.par_iter().for_each(one);
    }
    counts.add_to(&mut stats);
    stats.skipped_too_large += too_large.into_inner();
    let mut hits = hits.into_inner().expect("hits poisoned");
    let rest = not_loose.into_inner().expect("requests poisoned");
    if !rest.is_empty() {
        hits.extend(scan_blobs(&git, matcher, &rest, opts, &mut stats)?);
    }

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

/// The staged files of `git diff --cached --raw -z` output that are regular files and not ignored.
fn parse_diff(
    out: &[u8],
    ignore: &Option<ignore::gitignore::Gitignore>,
    stats: &mut ScanStats,
) -> Vec<Intro> {
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
        if is_ignored(ignore, &path) {
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
    intros
}

/// The staged changes read in process that are regular files and not ignored, as `parse_diff`
/// gives them.
fn intros_of(
    changes: &[Change],
    ignore: &Option<ignore::gitignore::Gitignore>,
    stats: &mut ScanStats,
) -> Vec<Intro> {
    let mut intros = Vec::new();
    for c in changes {
        if c.new_mode != 0o100644 && c.new_mode != 0o100755 {
            continue;
        }
        let path = String::from_utf8_lossy(&c.path).into_owned();
        if is_ignored(ignore, &path) {
            stats.skipped_ignored += 1;
            continue;
        }
        intros.push(Intro {
            commit: 0,
            oid: odb::hex(&c.new_oid),
            path,
            parents: if c.old_mode == 0 {
                Vec::new()
            } else {
                vec![odb::hex(&c.old_oid)]
            },
        });
    }
    intros
}

/// The object directory git would use for `repo`, found without running git: the environment's
/// (`GIT_OBJECT_DIRECTORY`, `GIT_DIR`, which git sets for hooks), else `.git/objects` of the
/// work tree holding `repo`, through a `.git` file (linked work trees, submodules) and
/// `commondir`. A wrong guess costs only speed: an object not found here comes from `cat-file`,
/// and one found here is the blob its id names.
fn objects_dir(repo: &Path) -> Option<PathBuf> {
    // Relative paths in these variables are relative to where git runs (`git -C repo`).
    let var = |name: &str| std::env::var_os(name).map(|v| repo.join(v));
    if let Some(dir) = var("GIT_OBJECT_DIRECTORY") {
        return Some(dir);
    }
    let git_dir = index::git_dir(repo)?;
    let common = var("GIT_COMMON_DIR").unwrap_or_else(|| index::common_dir(&git_dir));
    Some(common.join("objects"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        crate::scan::git::test_git(dir, args).trim().to_string()
    }

    #[test]
    fn loose_blobs_are_read_and_packed_ones_are_left_to_cat_file() {
        let d = tempfile::tempdir().unwrap();
        git(d.path(), &["init", "-q"]);
        std::fs::write(d.path().join("a.txt"), "hello\nworld\n").unwrap();
        git(d.path(), &["add", "a.txt"]);
        let oid = git(d.path(), &["rev-parse", ":a.txt"]);
        let objects = Odb::new(objects_dir(d.path()).expect("objects dir"));
        match objects.read_loose(&oid, 1 << 20) {
            Read::Object(Kind::Blob, data) => assert_eq!(data, b"hello\nworld\n"),
            _ => panic!("a staged blob is a loose object"),
        }
        assert!(matches!(objects.read_loose(&oid, 4), Read::TooLarge));
        git(d.path(), &["commit", "-q", "-m", "one"]);
        git(d.path(), &["gc", "-q", "--prune=now"]);
        assert!(matches!(objects.read_loose(&oid, 1 << 20), Read::NotHere));
    }

    #[test]
    fn a_linked_work_tree_finds_the_common_object_store() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("main");
        std::fs::create_dir(&main).unwrap();
        git(&main, &["init", "-q"]);
        std::fs::write(main.join("a.txt"), "x\n").unwrap();
        git(&main, &["add", "a.txt"]);
        git(&main, &["commit", "-q", "-m", "one"]);
        let linked = d.path().join("linked");
        git(&main, &["worktree", "add", "-q", linked.to_str().unwrap()]);
        let want = std::fs::canonicalize(main.join(".git/objects")).unwrap();
        let got = std::fs::canonicalize(objects_dir(&linked).unwrap()).unwrap();
        assert_eq!(got, want);
    }
}
