//! The working-tree walk: parallel over directories and files, honouring `.gitignore`,
//! `.awxguardignore` and `.git/info/exclude`, skipping `.git/`, following symlinks with loop
//! detection. Ignored paths are counted, not silently dropped, so the summary can say what was
//! left out. Problems (unreadable, vanished, loops) are reported and the walk goes on.

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match as IgnoreMatch;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Files whose patterns exclude paths from a scan.
pub const IGNORE_FILES: &[&str] = &[".gitignore", ".awxguardignore"];

#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Honour ignore files.
    pub respect_ignore: bool,
    /// Follow symbolic links (with loop detection).
    pub follow_symlinks: bool,
}

/// A file the walk hands to its visitor.
pub struct FileEntry<'a> {
    pub path: &'a Path,
    /// The path to show: relative to the walk's base (`base_of`), whatever the roots were.
    pub display: String,
    /// Where in `display` the part that says something about the file starts (what rules'
    /// keywords, `requires` and `near` read, `context()`): 0 under the base; for a root outside
    /// it (shown absolute), the part below the root, so the directories above what was scanned
    /// (`/tmp/awx-checkout/...`) never make every file look like an Airwallex file.
    pub context_from: usize,
}

impl FileEntry<'_> {
    /// The path as rules read it for context (see `context_from`).
    pub fn context(&self) -> &str {
        &self.display[self.context_from.min(self.display.len())..]
    }
}

/// Something the walk could not do; reported, never fatal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub error: String,
}

#[derive(Default)]
pub struct WalkCounts {
    pub ignored: AtomicU64,
    pub problems: Mutex<Vec<Problem>>,
}

impl WalkCounts {
    pub fn problem(&self, path: impl Into<String>, error: impl Into<String>) {
        self.problems
            .lock()
            .expect("problems poisoned")
            .push(Problem {
                path: path.into(),
                error: error.into(),
            });
    }
}

struct IgnoreNode {
    matcher: Gitignore,
    parent: Option<Arc<IgnoreNode>>,
}

fn is_ignored(chain: &Option<Arc<IgnoreNode>>, path: &Path, is_dir: bool) -> bool {
    let mut cur = chain.as_ref();
    while let Some(node) = cur {
        match node.matcher.matched(path, is_dir) {
            IgnoreMatch::Ignore(_) => return true,
            IgnoreMatch::Whitelist(_) => return false,
            IgnoreMatch::None => cur = node.parent.as_ref(),
        }
    }
    false
}

/// Extends `parent` with the ignore files found in `dir` (none found: the parent itself).
fn extend_chain(
    parent: &Option<Arc<IgnoreNode>>,
    dir: &Path,
    names: &[String],
    counts: &WalkCounts,
) -> Option<Arc<IgnoreNode>> {
    let mut builder: Option<GitignoreBuilder> = None;
    let mut add = |file: PathBuf| {
        // Read safely and capped: a FIFO, a device (`.gitignore -> /dev/zero`) or a giant is
        // reported and skipped, never read.
        let text = match crate::files::read_capped(
            &file,
            crate::files::cap::IGNORE_FILE,
            "ignore files",
        ) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                counts.problem(
                    file.display().to_string(),
                    format!("ignore file skipped: {e}"),
                );
                return;
            }
        };
        let text = String::from_utf8_lossy(&text);
        let b = builder.get_or_insert_with(|| GitignoreBuilder::new(dir));
        let mut bad = None;
        for line in text.trim_start_matches('\u{feff}').lines() {
            if let Err(err) = b.add_line(Some(file.clone()), line) {
                bad.get_or_insert(err);
            }
        }
        if let Some(err) = bad {
            counts.problem(file.display().to_string(), format!("ignore file: {err}"));
        }
    };
    if names.iter().any(|n| n == ".git") {
        let exclude = dir.join(".git/info/exclude");
        if exclude.exists() {
            add(exclude);
        }
    }
    for name in IGNORE_FILES {
        if names.iter().any(|n| n == name) {
            add(dir.join(name));
        }
    }
    match builder.map(|b| b.build()) {
        None => parent.clone(),
        Some(Ok(matcher)) => Some(Arc::new(IgnoreNode {
            matcher,
            parent: parent.clone(),
        })),
        Some(Err(err)) => {
            counts.problem(dir.display().to_string(), format!("ignore file: {err}"));
            parent.clone()
        }
    }
}

/// Ignore files of the directories above `root` up to the top of its git work tree, so that
/// scanning `repo/src` honours `repo/.gitignore` as git would.
fn ancestor_chain(root: &Path, counts: &WalkCounts) -> Option<Arc<IgnoreNode>> {
    let mut dirs = Vec::new();
    let mut cur = root.parent();
    let mut found_repo = root.join(".git").exists();
    while let Some(d) = cur {
        if found_repo {
            break;
        }
        dirs.push(d.to_path_buf());
        if d.join(".git").exists() {
            found_repo = true;
        }
        cur = d.parent();
    }
    if !found_repo {
        return None;
    }
    let mut chain = None;
    for d in dirs.iter().rev() {
        let names: Vec<String> = std::iter::once(".git")
            .chain(IGNORE_FILES.iter().copied())
            .filter(|n| d.join(n).exists())
            .map(str::to_string)
            .collect();
        chain = extend_chain(&chain, d, &names, counts);
    }
    chain
}

#[cfg(unix)]
fn dir_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dir_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

struct Ctx<'a, F> {
    opts: &'a WalkOptions,
    counts: &'a WalkCounts,
    visit: &'a F,
}

/// `path` made absolute with `.` and `..` resolved lexically (symbolic links are left alone, as
/// the user named them).
pub fn absolute(path: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The top of the git work tree holding `path` (a directory, or a file's directory), found by
/// looking for `.git` (a directory, or the file of a linked work tree or submodule) upwards.
pub fn work_tree_of(path: &Path) -> Option<PathBuf> {
    let abs = absolute(path);
    let start = if abs.is_dir() {
        abs.as_path()
    } else {
        abs.parent()?
    };
    start
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// What findings' paths are relative to, so that a file is named the same however the scan was
/// called (`scan`, `scan src`, `scan src config`, `scan /abs/repo/src`): the top of the git work
/// tree holding the roots when they all lie in one, else the current directory.
pub fn base_of(roots: &[PathBuf]) -> PathBuf {
    let cwd = std::env::current_dir()
        .map(|d| absolute(&d))
        .unwrap_or_default();
    let Some(first) = roots.first() else {
        return cwd;
    };
    match work_tree_of(first) {
        Some(top) if roots.iter().all(|r| absolute(r).starts_with(&top)) => top,
        _ => cwd,
    }
}

/// `roots` without repeats and without roots inside another one (`scan . src` scans `src`
/// once), in the order given.
pub fn distinct_roots(roots: &[PathBuf]) -> Vec<PathBuf> {
    let abs: Vec<PathBuf> = roots.iter().map(|r| absolute(r)).collect();
    let mut out: Vec<PathBuf> = Vec::new();
    for (i, r) in roots.iter().enumerate() {
        let inside_other = abs
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && abs[i].starts_with(o) && (abs[i] != *o || j < i));
        if !inside_other {
            out.push(r.clone());
        }
    }
    out
}

/// How `root` is shown relative to `base`: `src/` for a directory `base/src`, `` for the base
/// itself, the absolute path for a root outside it; `file` roots get no trailing slash. The flag
/// says whether the root lies under `base`.
fn shown_root(root: &Path, base: &Path, is_file: bool) -> (String, bool) {
    let abs = absolute(root);
    let (rel, inside) = match abs.strip_prefix(base) {
        Ok(rel) => (rel.to_string_lossy().into_owned(), true),
        Err(_) => (abs.to_string_lossy().into_owned(), false),
    };
    if is_file || rel.is_empty() || rel.ends_with('/') {
        (rel, inside)
    } else {
        (format!("{rel}/"), inside)
    }
}

/// A directory's shown path (ending in `/`, or empty for the base) and where its context part
/// starts (`FileEntry::context_from`).
struct Shown {
    display: String,
    context_from: usize,
}

/// Walks `roots` in parallel, calling `visit` for every file that is not ignored; files are
/// shown relative to `base` (see `base_of`).
pub fn walk<F>(roots: &[PathBuf], base: &Path, opts: &WalkOptions, counts: &WalkCounts, visit: &F)
where
    F: Fn(FileEntry<'_>) + Sync,
{
    let ctx = Ctx {
        opts,
        counts,
        visit,
    };
    rayon::scope(|s| {
        for root in roots {
            let meta = match std::fs::metadata(root) {
                Ok(m) => m,
                Err(e) => {
                    counts.problem(root.display().to_string(), e.to_string());
                    continue;
                }
            };
            if meta.is_file() {
                let (display, inside) = shown_root(root, base, true);
                let context_from = if inside {
                    0
                } else {
                    display.rfind('/').map_or(0, |i| i + 1)
                };
                (ctx.visit)(FileEntry {
                    path: root,
                    display,
                    context_from,
                });
                continue;
            }
            if !meta.is_dir() {
                counts.problem(
                    root.display().to_string(),
                    format!(
                        "is {}, not a regular file or a directory; not read (give - to scan \
                         standard input)",
                        crate::files::kind_of(&meta)
                    ),
                );
                continue;
            }
            let abs = std::path::absolute(root).unwrap_or_else(|_| root.clone());
            let chain = if opts.respect_ignore {
                ancestor_chain(&abs, counts)
            } else {
                None
            };
            let (prefix, inside) = shown_root(root, base, false);
            let shown = Shown {
                context_from: if inside { 0 } else { prefix.len() },
                display: prefix,
            };
            let ancestors = Arc::new(vec![dir_id(&meta)]);
            let ctx = &ctx;
            s.spawn(move |s| walk_dir(s, ctx, abs, shown, chain, ancestors));
        }
    });
}

fn walk_dir<'s, F>(
    s: &rayon::Scope<'s>,
    ctx: &'s Ctx<'s, F>,
    dir: PathBuf,
    shown_dir: Shown,
    parent_chain: Option<Arc<IgnoreNode>>,
    ancestors: Arc<Vec<(u64, u64)>>,
) where
    F: Fn(FileEntry<'_>) + Sync,
{
    let Shown {
        display,
        context_from,
    } = shown_dir;
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) => {
            ctx.counts.problem(shown(&display, &dir), e.to_string());
            return;
        }
    };
    let mut entries = Vec::new();
    for e in rd {
        match e {
            Ok(e) => entries.push(e),
            Err(e) => ctx.counts.problem(shown(&display, &dir), e.to_string()),
        }
    }
    let names: Vec<String> = entries
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let chain = if ctx.opts.respect_ignore {
        extend_chain(&parent_chain, &dir, &names, ctx.counts)
    } else {
        None
    };
    for (entry, name) in entries.into_iter().zip(names) {
        if name == ".git" {
            continue;
        }
        let path = entry.path();
        let rel = format!("{display}{name}");
        let Ok(mut ft) = entry.file_type() else {
            ctx.counts.problem(rel, "cannot read file type");
            continue;
        };
        let mut meta = None;
        if ft.is_symlink() {
            if !ctx.opts.follow_symlinks {
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(m) => {
                    ft = m.file_type();
                    meta = Some(m);
                }
                Err(e) => {
                    ctx.counts
                        .problem(rel, format!("broken or unreadable symlink: {e}"));
                    continue;
                }
            }
        }
        let is_dir = ft.is_dir();
        if ctx.opts.respect_ignore && is_ignored(&chain, &path, is_dir) {
            ctx.counts.ignored.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if is_dir {
            let m = match meta {
                Some(m) => m,
                None => match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        ctx.counts.problem(rel, e.to_string());
                        continue;
                    }
                },
            };
            let id = dir_id(&m);
            if cfg!(unix) && ancestors.contains(&id) {
                ctx.counts.problem(
                    rel,
                    "symlink loop: this directory is one of its own ancestors; skipped",
                );
                continue;
            }
            let mut next = Vec::with_capacity(ancestors.len() + 1);
            next.extend_from_slice(&ancestors);
            next.push(id);
            let chain = chain.clone();
            let child = Shown {
                display: format!("{rel}/"),
                context_from,
            };
            s.spawn(move |s| walk_dir(s, ctx, path, child, chain, Arc::new(next)));
        } else if ft.is_file() {
            // No stat here: the visitor opens the file and reads its size from the descriptor.
            s.spawn(move |_| {
                (ctx.visit)(FileEntry {
                    path: &path,
                    display: rel,
                    context_from,
                })
            });
        }
        // sockets, fifos and devices are not files to scan
    }
}

fn shown(display: &str, dir: &Path) -> String {
    if display.is_empty() {
        dir.display().to_string()
    } else {
        display.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_repeated_roots_are_walked_once() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            distinct_roots(&[
                p("/r/src"),
                p("/r"),
                p("/r/"),
                p("/r/src/../config"),
                p("/q")
            ]),
            [p("/r"), p("/q")]
        );
        assert_eq!(
            distinct_roots(&[p("/r/a"), p("/r/ab")]),
            [p("/r/a"), p("/r/ab")]
        );
        assert_eq!(absolute(Path::new("/r/src/../a/./b")), p("/r/a/b"));
    }
}
