//! What is staged, read without running git: the index (`.git/index`, versions 2 to 4) against
//! HEAD's tree, which is what `git diff --cached --raw --diff-filter=AMT` prints. The index's
//! cache-tree extension names the tree of every directory the staged change left alone, so only
//! the directories it touched are compared entry by entry: a 20,000-file repository costs a
//! parse of its index and a handful of tree objects.
//!
//! Anything this reader does not handle gives `None` and the caller runs `git diff --cached`,
//! which does: a split or sparse index, intent-to-add entries, repository extensions (SHA-256,
//! reftable, per-worktree config), replace refs and grafts, alternates' objects, object
//! directories or work trees set through the environment, a missing object.

use super::odb::{self, Kind, Odb, Oid, Read};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One staged change: a path added, modified or changed in type (never a deletion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub old_mode: u32,
    pub new_mode: u32,
    /// All zero for an added path.
    pub old_oid: Oid,
    pub new_oid: Oid,
    pub path: Vec<u8>,
}

/// Where git keeps a work tree's repository, found without running git.
pub(crate) struct Layout {
    pub git_dir: PathBuf,
    /// Refs, objects and config (the main repository's `.git` for a linked work tree).
    pub common_dir: PathBuf,
    pub index: PathBuf,
}

impl Layout {
    pub fn objects(&self) -> PathBuf {
        self.common_dir.join("objects")
    }
}

/// Variables that move git's view of the repository in ways this reader does not follow.
const UNFOLLOWED_ENV: &[&str] = &[
    "GIT_WORK_TREE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_REPLACE_REF_BASE",
    "GIT_NAMESPACE",
    "GIT_GRAFT_FILE",
];

/// The repository holding `repo`, as `git -C repo` would find it (`GIT_DIR` and
/// `GIT_INDEX_FILE` honoured, relative to `repo`); `None` when the environment points git
/// elsewhere in a way not followed here.
pub(crate) fn layout(repo: &Path) -> Option<Layout> {
    if UNFOLLOWED_ENV.iter().any(|v| std::env::var_os(v).is_some()) {
        return None;
    }
    let git_dir = git_dir(repo)?;
    let common_dir = common_dir(&git_dir);
    let index = std::env::var_os("GIT_INDEX_FILE")
        .map(|v| repo.join(v))
        .unwrap_or_else(|| git_dir.join("index"));
    Some(Layout {
        git_dir,
        common_dir,
        index,
    })
}

/// The git directory of the work tree holding `repo`: `GIT_DIR` (relative to `repo`, as for
/// `git -C repo`), else `.git` of the nearest work tree, through a `.git` file (linked work
/// trees, submodules).
pub(crate) fn git_dir(repo: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("GIT_DIR") {
        return Some(repo.join(dir));
    }
    let top = crate::scan::walk::work_tree_of(repo)?;
    let dot_git = top.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    Some(top.join(text.strip_prefix("gitdir:")?.trim()))
}

/// Where refs, objects and config live: `commondir` of a linked work tree's git directory.
pub(crate) fn common_dir(git_dir: &Path) -> PathBuf {
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => git_dir.join(c.trim()),
        Err(_) => git_dir.to_path_buf(),
    }
}

/// The staged changes of the repository holding `repo`, in path order, or `None` when git must
/// be asked.
pub(crate) fn staged_changes(repo: &Path) -> Option<(Layout, Vec<Change>)> {
    let layout = layout(repo)?;
    if !plain_repository(&layout) {
        return None;
    }
    let data = match std::fs::symlink_metadata(&layout.index) {
        // No index yet (a new repository): nothing is staged.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some(read_small(&layout.index)?),
    };
    let (entries, cache) = match &data {
        None => (Vec::new(), None),
        Some(data) => parse_index(data)?,
    };
    let odb = Odb::new(layout.objects());
    let head_tree = match head_commit(&layout)? {
        None => None,
        Some(commit) => Some(tree_of_commit(&odb, &commit)?),
    };
    let mut out = Vec::new();
    diff_dir(&odb, 0, head_tree, &entries, cache.as_ref(), &mut out)?;
    Some((layout, out))
}

fn read_small(path: &Path) -> Option<Vec<u8>> {
    crate::files::read_capped(path, crate::files::cap::GIT_METADATA, "git metadata").ok()
}

/// No repository extension (object format, ref storage, worktree config), no replace refs or
/// grafts, no alternates: the repository reads as plain SHA-1 objects and files.
fn plain_repository(l: &Layout) -> bool {
    let Some(config) = read_small(&l.common_dir.join("config")) else {
        return false;
    };
    let config = String::from_utf8_lossy(&config).to_ascii_lowercase();
    if config.contains("[extensions") {
        return false;
    }
    let exists = |p: PathBuf| std::fs::symlink_metadata(p).is_ok();
    let replace_refs = std::fs::read_dir(l.common_dir.join("refs/replace"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    !(replace_refs
        || exists(l.common_dir.join("reftable"))
        || exists(l.common_dir.join("info/grafts"))
        || exists(l.objects().join("info/alternates")))
}

/// HEAD's commit: `Some(None)` on an unborn branch, `None` when it cannot be told here.
fn head_commit(l: &Layout) -> Option<Option<Oid>> {
    let mut text = read_small(&l.git_dir.join("HEAD"))?;
    for _ in 0..5 {
        let line = text.strip_suffix(b"\n").unwrap_or(&text);
        let Some(name) = line.strip_prefix(b"ref:") else {
            return odb::parse_hex(line).map(Some);
        };
        let name = std::str::from_utf8(name).ok()?.trim();
        if !name.starts_with("refs/") || name.split('/').any(|p| p.is_empty() || p == "..") {
            return None;
        }
        // refs/worktree/ and refs/bisect/ are per work tree; HEAD names a branch in practice.
        let base = if name.starts_with("refs/worktree/") || name.starts_with("refs/bisect/") {
            &l.git_dir
        } else {
            &l.common_dir
        };
        match std::fs::read(base.join(name)) {
            Ok(t) => text = t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return packed_ref(l, name);
            }
            Err(_) => return None,
        }
    }
    None
}

/// A ref from `packed-refs`: `Some(None)` when it is not there (an unborn branch).
fn packed_ref(l: &Layout, name: &str) -> Option<Option<Oid>> {
    let path = l.common_dir.join("packed-refs");
    let text = match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(None),
        _ => read_small(&path)?,
    };
    for line in text.split(|&b| b == b'\n') {
        if line.starts_with(b"#") || line.starts_with(b"^") {
            continue;
        }
        if line.windows(13).any(|w| w == b"refs/replace/") {
            return None;
        }
        if let Some((oid, refname)) = split_once(line, b' ') {
            if refname == name.as_bytes() {
                return odb::parse_hex(oid).map(Some);
            }
        }
    }
    Some(None)
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = memchr::memchr(sep, s)?;
    Some((&s[..at], &s[at + 1..]))
}

/// Commits and trees larger than this are left to git.
const MAX_META_OBJECT: u64 = 64 << 20;

fn tree_of_commit(odb: &Odb, commit: &Oid) -> Option<Oid> {
    match odb.read(commit, MAX_META_OBJECT) {
        Read::Object(Kind::Commit, body) => {
            let hex = body.strip_prefix(b"tree ")?.get(..40)?;
            odb::parse_hex(hex)
        }
        _ => None,
    }
}

/// One stage-0 (or conflicted) index entry; its path borrowed from the index read (versions 2
/// and 3: no allocation per entry) or built from the previous one's prefix (version 4).
struct Entry<'a> {
    path: std::borrow::Cow<'a, [u8]>,
    mode: u32,
    oid: Oid,
    stage: u8,
}

/// A directory of the cache-tree extension: its tree id while still valid.
struct CacheNode {
    name: Vec<u8>,
    oid: Option<Oid>,
    children: Vec<CacheNode>,
}

const TREE_MODE: u32 = 0o040000;

/// The index's entries and its cache tree.
fn parse_index(data: &[u8]) -> Option<(Vec<Entry<'_>>, Option<CacheNode>)> {
    // The trailing checksum is git's to verify; a torn index fails the structure checks here.
    let body = data.get(..data.len().checked_sub(20)?)?;
    if body.get(..4)? != b"DIRC" {
        return None;
    }
    let version = be32(body.get(4..8)?);
    if !(2..=4).contains(&version) {
        return None;
    }
    let count = be32(body.get(8..12)?) as usize;
    let mut entries = Vec::with_capacity(count.min(body.len() / 62));
    let mut at = 12;
    let mut previous: Vec<u8> = Vec::new();
    for _ in 0..count {
        let fixed = body.get(at..at + 62)?;
        let mode = be32(&fixed[24..28]);
        let oid: Oid = fixed[40..60].try_into().ok()?;
        let flags = u16::from_be_bytes([fixed[60], fixed[61]]);
        let mut name_at = at + 62;
        if flags & 0x4000 != 0 {
            if version < 3 {
                return None;
            }
            let extended = u16::from_be_bytes(body.get(name_at..name_at + 2)?.try_into().ok()?);
            // Only skip-worktree is understood; intent-to-add and the rest go to git.
            if extended & !0x4000 != 0 {
                return None;
            }
            name_at += 2;
        }
        if mode & 0o170000 == TREE_MODE {
            return None; // a sparse index's directory entry
        }
        let stage = ((flags >> 12) & 3) as u8;
        let path = if version == 4 {
            let (strip, used) = offset_varint(body.get(name_at..)?)?;
            let keep = previous.len().checked_sub(usize::try_from(strip).ok()?)?;
            let suffix_at = name_at + used;
            let nul = memchr::memchr(0, body.get(suffix_at..)?)?;
            previous.truncate(keep);
            previous.extend_from_slice(&body[suffix_at..suffix_at + nul]);
            at = suffix_at + nul + 1;
            std::borrow::Cow::Owned(previous.clone())
        } else {
            let len = usize::from(flags & 0xfff);
            let len = if len < 0xfff {
                len
            } else {
                memchr::memchr(0, body.get(name_at..)?)?
            };
            if *body.get(name_at + len)? != 0 {
                return None;
            }
            let path = &body[name_at..name_at + len];
            // Padded with 1 to 8 NULs to a multiple of eight bytes.
            at += (name_at - at + len + 8) & !7;
            std::borrow::Cow::Borrowed(path)
        };
        entries.push(Entry {
            path,
            mode,
            oid,
            stage,
        });
    }
    let mut cache = None;
    while at + 8 <= body.len() {
        let sig = &body[at..at + 4];
        let size = be32(&body[at + 4..at + 8]) as usize;
        let ext = body.get(at + 8..(at + 8).checked_add(size)?)?;
        if sig == b"TREE" {
            let mut pos = 0;
            cache = Some(parse_cache_node(ext, &mut pos, 0)?);
        } else if !sig[0].is_ascii_uppercase() {
            // A lower-case signature is an extension git requires readers to understand
            // (`link`: split index, `sdir`: sparse index).
            return None;
        }
        at += 8 + size;
    }
    (at == body.len()).then_some((entries, cache))
}

fn parse_cache_node(data: &[u8], pos: &mut usize, depth: usize) -> Option<CacheNode> {
    if depth > 4096 {
        return None;
    }
    let rest = data.get(*pos..)?;
    let nul = memchr::memchr(0, rest)?;
    let name = rest[..nul].to_vec();
    let line_end = memchr::memchr(b'\n', &rest[nul + 1..])? + nul + 1;
    let counts = std::str::from_utf8(&rest[nul + 1..line_end]).ok()?;
    let (entries, subtrees) = counts.split_once(' ')?;
    let entries: i64 = entries.parse().ok()?;
    let subtrees: usize = subtrees.parse().ok()?;
    *pos += line_end + 1;
    let oid = if entries >= 0 {
        let oid: Oid = data.get(*pos..*pos + 20)?.try_into().ok()?;
        *pos += 20;
        Some(oid)
    } else {
        None
    };
    let mut children = Vec::with_capacity(subtrees.min(1024));
    for _ in 0..subtrees {
        children.push(parse_cache_node(data, pos, depth + 1)?);
    }
    Some(CacheNode {
        name,
        oid,
        children,
    })
}

/// git's offset varint (index v4 path prefixes, pack OFS_DELTA): value and bytes used.
fn offset_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut at = 0;
    let mut c = *b.get(at)?;
    at += 1;
    let mut v = u64::from(c & 0x7f);
    while c & 0x80 != 0 {
        c = *b.get(at)?;
        at += 1;
        v = v.checked_add(1)?.checked_mul(128)? | u64::from(c & 0x7f);
    }
    Some((v, at))
}

/// A tree's entries by name: mode and id.
fn read_tree(odb: &Odb, oid: &Oid) -> Option<HashMap<Vec<u8>, (u32, Oid)>> {
    let Read::Object(Kind::Tree, body) = odb.read(oid, MAX_META_OBJECT) else {
        return None;
    };
    let mut entries = HashMap::new();
    let mut rest = &body[..];
    while !rest.is_empty() {
        let (mode, after) = split_once(rest, b' ')?;
        let (name, after) = split_once(after, 0)?;
        let id: Oid = after.get(..20)?.try_into().ok()?;
        rest = &after[20..];
        let mode = u32::from_str_radix(std::str::from_utf8(mode).ok()?, 8).ok()?;
        entries.insert(name.to_vec(), (canonical_mode(mode), id));
    }
    Some(entries)
}

/// The mode git compares: old trees may say 100664 for a plain file.
fn canonical_mode(mode: u32) -> u32 {
    match mode & 0o170000 {
        0o100000 if mode & 0o100 != 0 => 0o100755,
        0o100000 => 0o100644,
        0o040000 => TREE_MODE,
        _ => mode,
    }
}

/// Compares the index entries under one directory (`entries`, all starting with the directory's
/// path of `prefix` bytes) with its tree at HEAD, skipping it whole when the cache tree says it
/// still has HEAD's tree.
fn diff_dir(
    odb: &Odb,
    prefix: usize,
    head: Option<Oid>,
    entries: &[Entry<'_>],
    cache: Option<&CacheNode>,
    out: &mut Vec<Change>,
) -> Option<()> {
    if let (Some(h), Some(valid)) = (head, cache.and_then(|c| c.oid)) {
        if h == valid {
            return Some(());
        }
    }
    let tree = match head {
        Some(h) => read_tree(odb, &h)?,
        None => HashMap::new(),
    };
    let mut i = 0;
    while i < entries.len() {
        let e = &entries[i];
        let rest = &e.path[prefix..];
        match memchr::memchr(b'/', rest) {
            Some(slash) => {
                let name = &rest[..slash];
                let sub = prefix + slash + 1;
                let dir = &e.path[..sub];
                let end = entries[i..]
                    .iter()
                    .position(|x| !x.path.starts_with(dir))
                    .map_or(entries.len(), |n| i + n);
                let head_sub = tree
                    .get(name)
                    .filter(|(mode, _)| *mode == TREE_MODE)
                    .map(|(_, oid)| *oid);
                let cache_sub =
                    cache.and_then(|c| c.children.iter().find(|n| n.name.as_slice() == name));
                diff_dir(odb, sub, head_sub, &entries[i..end], cache_sub, out)?;
                i = end;
            }
            None => {
                if e.stage == 0 {
                    let before = tree.get(rest).filter(|(mode, _)| *mode != TREE_MODE);
                    let (old_mode, old_oid) = before.copied().unwrap_or((0, [0; 20]));
                    if before.is_none() || old_mode != e.mode || old_oid != e.oid {
                        out.push(Change {
                            old_mode,
                            new_mode: e.mode,
                            old_oid,
                            new_oid: e.oid,
                            path: e.path.to_vec(),
                        });
                    }
                }
                i += 1;
            }
        }
    }
    Some(())
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests;
