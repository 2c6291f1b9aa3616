//! Which commit introduced which blob: `git log --raw` read and parsed.

use super::{is_scanned_mode, Git, GitError};
use std::collections::HashSet;
use std::io::Write;
use std::process::Stdio;

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

pub(super) fn is_object_id(s: &str) -> bool {
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
pub(super) fn stash_commits(git: &Git) -> Vec<String> {
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
pub(super) fn log_introductions(
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
