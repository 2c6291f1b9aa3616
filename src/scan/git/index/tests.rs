//! The in-process reading of the index is checked against `git diff --cached --raw` itself on
//! real repositories in every state it claims to handle, and must step aside where it does not.

use super::*;
use crate::scan::git::test_git as git;
use std::process::Command;

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// What git says is staged, in the form `staged_changes` gives.
fn git_says(dir: &Path) -> Vec<String> {
    let out = git(
        dir,
        &[
            "diff",
            "--cached",
            "--raw",
            "-z",
            "--no-abbrev",
            "--no-renames",
            "--ignore-submodules",
            "--diff-filter=AMT",
        ],
    );
    let mut lines = Vec::new();
    let mut tokens = out.split('\0');
    while let Some(meta) = tokens.next() {
        let Some(meta) = meta.strip_prefix(':') else {
            continue;
        };
        let path = tokens.next().unwrap();
        let f: Vec<&str> = meta.split(' ').collect();
        if f[1] == "160000" {
            continue;
        }
        lines.push(format!("{} {} {} {} {path}", f[0], f[1], f[2], f[3]));
    }
    lines
}

fn we_say(dir: &Path) -> Option<Vec<String>> {
    let (_, changes) = staged_changes(dir)?;
    Some(
        changes
            .iter()
            .filter(|c| c.new_mode != 0o160000)
            .map(|c| {
                format!(
                    "{:06o} {:06o} {} {} {}",
                    c.old_mode,
                    c.new_mode,
                    odb::hex(&c.old_oid),
                    odb::hex(&c.new_oid),
                    String::from_utf8_lossy(&c.path)
                )
            })
            .collect(),
    )
}

fn same_as_git(dir: &Path) {
    let want = git_says(dir);
    let got = we_say(dir).expect("read in process");
    assert_eq!(got, want, "in {}", dir.display());
}

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q", "-b", "main"]);
    d
}

fn many_files(dir: &Path) {
    for i in 0..60 {
        write(
            dir,
            &format!("src/d{}/f{i}.py", i % 7),
            &format!("x = {i}\n"),
        );
        write(dir, &format!("top{i}.txt"), &format!("{i}\n"));
    }
    write(dir, "a-b", "dash sorts before the slash\n");
    write(dir, "a/c", "in a directory\n");
    write(dir, "a0", "zero sorts after the slash\n");
}

#[test]
fn unborn_branch_everything_staged_is_added() {
    let d = repo();
    same_as_git(d.path());
    many_files(d.path());
    git(d.path(), &["add", "-A"]);
    same_as_git(d.path());
    assert_eq!(we_say(d.path()).unwrap().len(), 123);
}

#[test]
fn changes_after_commits_loose_and_packed_with_deltas() {
    let d = repo();
    let p = d.path();
    many_files(p);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "one"]);
    same_as_git(p);
    assert!(we_say(p).unwrap().is_empty());
    // Several commits touching the same trees, then packed: trees become deltas.
    for round in 0..4 {
        write(
            p,
            &format!("src/d1/f{round}.py"),
            &format!("round {round}\n"),
        );
        write(p, "src/d3/f3.py", &format!("round {round}\n"));
        git(p, &["add", "-A"]);
        git(p, &["commit", "-q", "-m", "more"]);
    }
    git(p, &["gc", "-q", "--aggressive", "--prune=now"]);
    let pack = std::fs::read_dir(p.join(".git/objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    let listing = git(p, &["verify-pack", "-v", pack.to_str().unwrap()]);
    assert!(
        listing
            .lines()
            .any(|l| l.contains(" tree ") && l.split_whitespace().count() == 7),
        "some tree is stored as a delta: {listing}"
    );
    // Modified, added in a new directory, deleted (not shown), mode change, a file turned into
    // a directory and a directory into a file, a symlink turned into a file.
    write(p, "src/d1/f1.py", "changed\n");
    write(p, "src/new/deep/er/n.py", "new\n");
    std::fs::remove_file(p.join("src/d2/f2.py")).unwrap();
    std::fs::remove_file(p.join("top3.txt")).unwrap();
    write(p, "top3.txt/inside", "was a file\n");
    std::fs::remove_dir_all(p.join("a")).unwrap();
    write(p, "a", "was a directory\n");
    git(p, &["add", "-A"]);
    git(p, &["update-index", "--chmod=+x", "top5.txt"]);
    same_as_git(p);
    git(p, &["commit", "-q", "-m", "shapes"]);
    std::os::unix::fs::symlink("top7.txt", p.join("link")).unwrap();
    git(p, &["add", "link"]);
    git(p, &["commit", "-q", "-m", "link"]);
    std::fs::remove_file(p.join("link")).unwrap();
    write(p, "link", "now a file\n");
    git(p, &["add", "link"]);
    same_as_git(p);
    assert_eq!(we_say(p).unwrap().len(), 1);
}

#[test]
fn index_version_4_and_no_cache_tree() {
    let d = repo();
    let p = d.path();
    many_files(p);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "one"]);
    write(p, "src/d4/f4.py", "changed\n");
    write(p, "src/d4/zz.py", "added\n");
    git(p, &["add", "-A"]);
    git(p, &["update-index", "--index-version", "4"]);
    same_as_git(p);
    // read-tree without --prefix leaves no cache tree: every tree is compared.
    git(p, &["read-tree", "HEAD"]);
    write(p, "src/d5/f5.py", "changed again\n");
    git(p, &["add", "src/d5/f5.py"]);
    same_as_git(p);
}

#[test]
fn a_merge_conflict_shows_only_what_git_shows() {
    let d = repo();
    let p = d.path();
    write(p, "c.txt", "base\n");
    write(p, "other.txt", "o\n");
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "base"]);
    git(p, &["checkout", "-q", "-b", "side"]);
    write(p, "c.txt", "side\n");
    git(p, &["commit", "-q", "-am", "side"]);
    git(p, &["checkout", "-q", "main"]);
    write(p, "c.txt", "main\n");
    write(p, "clean.txt", "merged cleanly\n");
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "main"]);
    let merge = Command::new("git")
        .arg("-C")
        .arg(p)
        .args(["merge", "-q", "side"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(!merge.status.success(), "the merge conflicts");
    write(p, "staged.txt", "staged during the merge\n");
    git(p, &["add", "staged.txt"]);
    same_as_git(p);
}

#[test]
fn a_linked_work_tree_reads_its_own_index_and_head() {
    let d = tempfile::tempdir().unwrap();
    let main = d.path().join("main");
    std::fs::create_dir(&main).unwrap();
    git(&main, &["init", "-q", "-b", "main"]);
    many_files(&main);
    git(&main, &["add", "-A"]);
    git(&main, &["commit", "-q", "-m", "one"]);
    git(&main, &["pack-refs", "--all"]);
    let linked = d.path().join("linked");
    git(
        &main,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "topic",
            linked.to_str().unwrap(),
        ],
    );
    write(&linked, "src/d2/f2.py", "changed in the linked tree\n");
    git(&linked, &["add", "-A"]);
    same_as_git(&linked);
    same_as_git(&linked.join("src"));
    assert_eq!(we_say(&linked).unwrap().len(), 1);
    assert!(we_say(&main).unwrap().is_empty());
}

#[test]
fn what_it_does_not_handle_is_left_to_git() {
    let d = repo();
    let p = d.path();
    many_files(p);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "one"]);
    write(p, "ita.txt", "intent to add\n");
    git(p, &["add", "-N", "ita.txt"]);
    assert!(we_say(p).is_none(), "intent-to-add");
    git(p, &["rm", "-q", "--cached", "ita.txt"]);
    assert!(we_say(p).is_some());
    git(p, &["update-index", "--split-index"]);
    assert!(we_say(p).is_none(), "split index");
    git(p, &["update-index", "--no-split-index"]);
    assert!(we_say(p).is_some());
    git(p, &["commit", "-q", "--allow-empty", "-m", "two"]);
    assert!(we_say(p).is_some());
    let head = git(p, &["rev-parse", "HEAD"]);
    git(p, &["replace", "--graft", head.trim()]);
    assert!(we_say(p).is_none(), "replace refs");
}
