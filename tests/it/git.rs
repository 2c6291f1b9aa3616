//! Git history, ranges and the index, on real repositories built in temporary directories.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A git repository in a temp dir, isolated from the machine's git config (its own HOME, no
/// system config), with deterministic authors and dates.
pub struct Repo {
    _tmp: TestDir,
    pub dir: PathBuf,
    home: PathBuf,
    tick: std::cell::Cell<u32>,
}

impl Repo {
    pub fn new() -> Repo {
        let tmp = tempdir();
        let dir = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let r = Repo {
            _tmp: tmp,
            dir,
            home,
            tick: std::cell::Cell::new(0),
        };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    /// Sets the environment every git process (ours and awxguard's) runs with.
    pub fn env(&self, c: &mut Command) {
        let t = self.tick.get();
        let date = format!("2026-01-01T00:{:02}:{:02}Z", t / 60, t % 60);
        c.env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Ann Author")
            .env("GIT_AUTHOR_EMAIL", "ann@example.invalid")
            .env("GIT_COMMITTER_NAME", "Ann Author")
            .env("GIT_COMMITTER_EMAIL", "ann@example.invalid")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("AWXGUARD_CONFIG");
    }

    pub fn git_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.current_dir(&self.dir)
            .args([
                "-c",
                "user.name=Ann Author",
                "-c",
                "user.email=ann@example.invalid",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
            ])
            .args(args);
        self.env(&mut c);
        c
    }

    /// Runs git and asserts it succeeded; returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let o = self.git_cmd(args).output().expect("run git");
        assert!(
            o.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
        write(&self.dir, rel, text);
    }

    /// Stages everything and commits; returns the commit id.
    pub fn commit(&self, msg: &str) -> String {
        self.tick.set(self.tick.get() + 1);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Runs awxguard in `dir` (the repository unless told otherwise) with the repo's git env.
    pub fn awx_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = awxguard(dir);
        self.env(&mut c);
        c.args(args).output().expect("run awxguard")
    }

    pub fn awx(&self, args: &[&str]) -> Output {
        self.awx_in(&self.dir, args)
    }

    /// Runs a JSON scan with `args`, asserting the exit code; returns the report.
    pub fn scan_json(&self, args: &[&str], want: i32) -> serde_json::Value {
        let mut all = vec!["scan", "--format", "json"];
        all.extend_from_slice(args);
        let o = self.awx(&all);
        assert_eq!(
            code(&o),
            want,
            "stdout:\n{}\nstderr:\n{}",
            stdout(&o),
            stderr(&o)
        );
        json(&o)
    }
}

/// `AIRWALLEX_API_KEY=<key>` as an .env line.
pub fn env_line(k: &str) -> String {
    format!("AIRWALLEX_API_KEY={k}\n")
}

fn findings(j: &serde_json::Value) -> Vec<serde_json::Value> {
    j["findings"].as_array().unwrap().clone()
}

fn fingerprints(j: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = findings(j)
        .iter()
        .map(|f| f["secret"]["fingerprint"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn key_added_and_deleted_later_is_found_with_the_commit_that_added_it() {
    let r = Repo::new();
    let k = key("history-only");
    r.write("README.md", "hello\n");
    r.commit("init");
    r.write("config/.env", env_line(&k));
    let added = r.commit("add config");
    std::fs::remove_file(r.dir.join("config/.env")).unwrap();
    r.commit("remove the key");

    // The work tree is clean ...
    let o = r.awx(&["scan", "."]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // ... history is not.
    let j = r.scan_json(&["--git"], 1);
    let f = findings(&j);
    assert_eq!(f.len(), 1, "{j:#}");
    assert_eq!(f[0]["rule"], "leak.airwallex.api-key");
    assert_eq!(f[0]["path"], "config/.env");
    assert_eq!(f[0]["line"], 1);
    assert_eq!(f[0]["commit"]["id"], added.as_str());
    assert_eq!(f[0]["commit"]["author"], "Ann Author <ann@example.invalid>");
    assert_eq!(f[0]["commit"]["date"], "2026-01-01T00:00:02Z");
    assert!(f[0]["commit"].get("also").is_none(), "{j:#}");
    assert_eq!(f[0]["secret"]["fingerprint"], fingerprint(&k));
}

#[test]
fn a_key_kept_across_edits_is_one_finding_with_the_later_commits_listed() {
    let r = Repo::new();
    let k = key("kept");
    r.write(".env", env_line(&k));
    let first = r.commit("add");
    r.write(".env", format!("{}OTHER=1\n", env_line(&k)));
    let second = r.commit("edit");
    r.write(".env", format!("# top\n{}OTHER=2\n", env_line(&k)));
    let third = r.commit("edit again");
    let j = r.scan_json(&["--git", "."], 1);
    let f = findings(&j);
    assert_eq!(f.len(), 1, "{j:#}");
    assert_eq!(f[0]["commit"]["id"], first.as_str());
    assert_eq!(f[0]["line"], 1, "the place is the earliest commit's");
    assert_eq!(
        f[0]["commit"]["also"],
        serde_json::json!([second, third]),
        "{j:#}"
    );
    // Three blobs held the key, each scanned once.
    assert_eq!(j["summary"]["scan"]["files"], 3);
}

#[test]
fn keys_on_side_branches_tags_and_stashes_are_found() {
    let r = Repo::new();
    let (kb, kt, ks1, ks2) = (
        key("branch"),
        key("tag"),
        key("stash-unstaged"),
        key("stash-staged"),
    );
    r.write("app.py", "print('hi')\n");
    r.commit("init");
    // An unmerged branch.
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("feature.env", env_line(&kb));
    let on_branch = r.commit("feature key");
    r.git(&["checkout", "-q", "main"]);
    // A commit reachable only from a tag.
    r.git(&["checkout", "-q", "--detach"]);
    r.write("release.env", env_line(&kt));
    let tagged = r.commit("tagged key");
    r.git(&["tag", "-a", "v1", "-m", "v1"]);
    r.git(&["checkout", "-q", "main"]);
    // Two stashes: an unstaged edit (older, kept only in the stash reflog) and a staged file.
    r.write(
        "app.py",
        format!("print('hi')\nAIRWALLEX_API_KEY = '{ks1}'\n"),
    );
    r.git(&["stash", "-q"]);
    r.write("staged.env", env_line(&ks2));
    r.git(&["add", "staged.env"]);
    r.git(&["stash", "-q"]);
    assert_eq!(r.git(&["stash", "list"]).lines().count(), 2);

    let j = r.scan_json(&["--git"], 1);
    assert_eq!(
        fingerprints(&j),
        sorted(vec![
            fingerprint(&kb),
            fingerprint(&kt),
            fingerprint(&ks1),
            fingerprint(&ks2)
        ]),
        "{j:#}"
    );
    let by_path = |p: &str| {
        findings(&j)
            .into_iter()
            .find(|f| f["path"] == p)
            .unwrap_or_else(|| panic!("no finding for {p}: {j:#}"))
    };
    assert_eq!(by_path("feature.env")["commit"]["id"], on_branch.as_str());
    assert_eq!(by_path("release.env")["commit"]["id"], tagged.as_str());
    assert_eq!(by_path("app.py")["line"], 2);
    assert!(
        by_path("staged.env")["commit"]["id"]
            .as_str()
            .unwrap()
            .len()
            == 40
    );
}

#[test]
fn every_unique_blob_is_scanned_once_and_binary_blobs_are_counted() {
    let r = Repo::new();
    r.write("a.txt", "same text\n");
    r.commit("one");
    r.write("b.txt", "same text\n");
    r.commit("two: the same blob at another path");
    r.write("a.txt", "changed\n");
    r.commit("three");
    r.write("img.bin", b"\x89PNG\0\0\0binary".as_slice());
    r.commit("four");
    r.git(&["checkout", "-q", "-b", "other"]);
    r.commit("empty");
    let j = r.scan_json(&["--git"], 0);
    let s = &j["summary"]["scan"];
    assert_eq!(s["files"], 2, "{j:#}");
    assert_eq!(s["skipped_binary"], 1, "{j:#}");
}

#[test]
fn the_same_key_at_two_paths_is_reported_at_each() {
    let r = Repo::new();
    let k = key("copied");
    r.write("one/.env", env_line(&k));
    let c1 = r.commit("one");
    r.write("two/.env", env_line(&k));
    let c2 = r.commit("copy");
    let j = r.scan_json(&["--git"], 1);
    let mut got: Vec<(String, String)> = findings(&j)
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["commit"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("one/.env".to_string(), c1), ("two/.env".to_string(), c2)]
    );
}

#[test]
fn awxguardignore_applies_to_history_paths() {
    let r = Repo::new();
    r.write("fixtures/.env", env_line(&key("fixture")));
    r.write(".awxguardignore", "fixtures/\n");
    r.commit("fixtures");
    let j = r.scan_json(&["--git"], 0);
    assert_eq!(j["summary"]["scan"]["skipped_ignored"], 1, "{j:#}");
    let j = r.scan_json(&["--git", "--no-ignore"], 1);
    assert_eq!(findings(&j).len(), 1);
}

#[test]
fn a_range_reports_keys_introduced_inside_it_only() {
    let r = Repo::new();
    let (before, inside, outside_after) = (key("before"), key("inside"), key("after"));
    r.write(".env", env_line(&before));
    let base = r.commit("key before the range");
    // Inside the range: the old key's file is edited (the old key is not new), a new key is
    // added and removed again.
    r.write(".env", format!("{}DEBUG=1\n", env_line(&before)));
    r.commit("edit");
    r.write("tmp.env", env_line(&inside));
    let added = r.commit("oops");
    std::fs::remove_file(r.dir.join("tmp.env")).unwrap();
    let tip = r.commit("remove it again");
    // After the range's end.
    r.write("late.env", env_line(&outside_after));
    r.commit("later");

    let j = r.scan_json(&["--git", "--range", &format!("{base}..{tip}")], 1);
    assert_eq!(fingerprints(&j), vec![fingerprint(&inside)], "{j:#}");
    assert_eq!(findings(&j)[0]["commit"]["id"], added.as_str());
    assert_eq!(findings(&j)[0]["path"], "tmp.env");

    // --since REV means REV..HEAD.
    let j = r.scan_json(&["--git", "--since", &base], 1);
    assert_eq!(
        fingerprints(&j),
        sorted(vec![fingerprint(&inside), fingerprint(&outside_after)]),
        "{j:#}"
    );
    // Nothing new since the tip of the range but the late key; nothing at all since HEAD.
    let j = r.scan_json(&["--since", &tip], 1);
    assert_eq!(fingerprints(&j), vec![fingerprint(&outside_after)]);
    let j = r.scan_json(&["--git", "--since", "HEAD"], 0);
    assert_eq!(findings(&j).len(), 0);
}

#[test]
fn a_range_on_a_merged_branch_sees_its_commits() {
    let r = Repo::new();
    let k = key("merged-branch");
    r.write("a.txt", "a\n");
    let base = r.commit("base");
    r.git(&["checkout", "-q", "-b", "topic"]);
    r.write("topic.env", env_line(&k));
    r.commit("topic key");
    r.git(&["checkout", "-q", "main"]);
    r.write("b.txt", "b\n");
    r.commit("main moves on");
    r.git(&["merge", "-q", "--no-ff", "-m", "merge topic", "topic"]);
    let j = r.scan_json(&["--git", "--range", &format!("{base}..main")], 1);
    assert_eq!(fingerprints(&j), vec![fingerprint(&k)]);
    let j = r.scan_json(&["--git", "--range", "topic..main"], 0);
    assert_eq!(findings(&j).len(), 0, "{j:#}");
}

#[test]
fn bad_revisions_and_non_repositories_fail_with_exit_2_naming_them() {
    let r = Repo::new();
    r.write("a.txt", "a\n");
    r.commit("one");
    let o = r.awx(&["scan", "--git", "--since", "no-such-branch"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no-such-branch"), "{}", stderr(&o));
    let o = r.awx(&["scan", "--range", "HEAD..nope"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("\"nope\""), "{}", stderr(&o));
    let o = r.awx(&["scan", "--range", "--output=x"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));

    let plain = tempdir();
    for args in [&["scan", "--git", "."][..], &["scan", "--staged"][..]] {
        let o = r.awx_in(plain.path(), args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(
            stderr(&o).contains("not a git repository"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let o = r.awx(&["scan", "--git", "no/such/dir"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no/such/dir"), "{}", stderr(&o));
}

#[test]
fn history_reports_never_hold_the_secret() {
    let r = Repo::new();
    let k = key("never-in-clear");
    r.write(
        "deploy/values.yaml",
        format!("airwallex:\n  api_key: \"{k}\"\n"),
    );
    r.commit("add");
    r.write("deploy/values.yaml", "airwallex:\n  api_key: from-vault\n");
    r.commit("fix");
    for format in ["json", "human"] {
        let o = r.awx(&["scan", "--git", "--format", format]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stdout(&o).contains("deploy/values.yaml"));
        assert_no_secret(&stdout(&o), &k, format);
        assert_no_secret(&stderr(&o), &k, "stderr");
    }
    let o = r.awx(&["scan", "--git"]);
    assert!(stdout(&o).contains("commit "), "{}", stdout(&o));
}

// --- the index ---------------------------------------------------------------------------------

#[test]
fn staged_scans_the_index_only_not_unstaged_or_committed_files() {
    let r = Repo::new();
    let (committed, unstaged, untracked, staged) = (
        key("committed"),
        key("unstaged"),
        key("untracked"),
        key("staged"),
    );
    r.write("old.env", env_line(&committed));
    r.write("tracked.env", "NAME=x\n");
    r.commit("history");
    r.write("tracked.env", env_line(&unstaged));
    r.write("untracked.env", env_line(&untracked));
    r.write("clean.txt", "nothing here\n");
    r.git(&["add", "clean.txt"]);
    let j = r.scan_json(&["--staged"], 0);
    assert_eq!(findings(&j).len(), 0, "{j:#}");
    assert_eq!(j["summary"]["scan"]["files"], 1);

    r.write("new/staged.env", env_line(&staged));
    r.git(&["add", "new/staged.env"]);
    let j = r.scan_json(&["--staged"], 1);
    let f = findings(&j);
    assert_eq!(fingerprints(&j), vec![fingerprint(&staged)], "{j:#}");
    assert_eq!(f[0]["path"], "new/staged.env");
    assert_eq!(f[0]["commit"]["id"], "staged");
    assert_eq!(j["summary"]["scan"]["files"], 2);
}

#[test]
fn staged_reads_the_index_not_the_work_tree() {
    let r = Repo::new();
    r.write("a.txt", "a\n");
    r.commit("init");
    let k = key("index-vs-tree");
    // Staged with a key, then fixed in the work tree only: the commit would still hold it.
    r.write(".env", env_line(&k));
    r.git(&["add", ".env"]);
    r.write(".env", "AIRWALLEX_API_KEY=\n");
    let j = r.scan_json(&["--staged"], 1);
    assert_eq!(fingerprints(&j), vec![fingerprint(&k)]);
    // And the other way round.
    r.git(&["add", ".env"]);
    r.write(".env", env_line(&k));
    r.scan_json(&["--staged"], 0);
}

#[test]
fn staged_counts_only_keys_the_change_adds() {
    let r = Repo::new();
    let (old, new) = (key("already-committed"), key("newly-added"));
    r.write(".env", env_line(&old));
    r.commit("old key (rotated since, still in history)");
    r.write(".env", format!("{}OTHER=1\n", env_line(&old)));
    r.git(&["add", ".env"]);
    r.scan_json(&["--staged"], 0);
    r.write(".env", format!("{}{}", env_line(&old), env_line(&new)));
    r.git(&["add", ".env"]);
    let j = r.scan_json(&["--staged"], 1);
    assert_eq!(fingerprints(&j), vec![fingerprint(&new)], "{j:#}");
    assert_eq!(findings(&j)[0]["line"], 2);
}

#[test]
fn staged_works_before_the_first_commit_and_from_a_subdirectory() {
    let r = Repo::new();
    let k = key("first-commit");
    r.write("src/settings.py", format!("AIRWALLEX_API_KEY = \"{k}\"\n"));
    r.git(&["add", "."]);
    let o = r.awx_in(
        &r.dir.join("src"),
        &["scan", "--staged", "--format", "json"],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(findings(&j)[0]["path"], "src/settings.py");
}

#[test]
fn an_allow_comment_in_staged_content_passes() {
    let r = Repo::new();
    let k = key("allowed-fixture");
    r.write(
        "tests/fixture.env",
        format!("AIRWALLEX_API_KEY={k} # awxguard:allow test fixture\n"),
    );
    r.git(&["add", "."]);
    let j = r.scan_json(&["--staged"], 0);
    assert_eq!(findings(&j).len(), 0, "{j:#}");
}

#[test]
fn a_history_of_thousands_of_blobs_misses_nothing() {
    // 3000 blobs in one commit, written with fast-import (quick), a key in one of them.
    let r = Repo::new();
    let k = key("needle");
    let mut stream = String::from(
        "commit refs/heads/main\nmark :1\n\
         author Ann Author <ann@example.invalid> 1767225600 +0000\n\
         committer Ann Author <ann@example.invalid> 1767225600 +0000\ndata 4\nmany\n",
    );
    for i in 0..3000 {
        let text = if i == 2999 {
            env_line(&k)
        } else {
            format!("file number {i}\n")
        };
        stream.push_str(&format!(
            "M 100644 inline d{}/f{i}.txt\ndata {}\n{text}\n",
            i / 100,
            text.len()
        ));
    }
    stream.push('\n');
    let mut c = r.git_cmd(&["fast-import", "--quiet"]);
    let mut child = c.stdin(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let j = r.scan_json(&["--git"], 1);
    assert_eq!(j["summary"]["scan"]["files"], 3000, "{}", j["summary"]);
    assert_eq!(fingerprints(&j), vec![fingerprint(&k)]);
    assert_eq!(findings(&j)[0]["path"], "d29/f2999.txt");
}

#[test]
fn a_users_git_config_does_not_change_what_is_found() {
    let r = Repo::new();
    for (k, v) in [
        ("log.showRoot", "false"),
        ("color.ui", "always"),
        ("diff.relative", "true"),
        ("core.quotePath", "true"),
        ("diff.renames", "copies"),
    ] {
        r.git(&["config", k, v]);
    }
    let k = key("root-commit");
    r.write("ünïcode dir/.env", env_line(&k));
    r.write("sub/readme.txt", "hi\n");
    let root = r.commit("root");
    let j = r.scan_json(&["--git"], 1);
    assert_eq!(findings(&j)[0]["commit"]["id"], root.as_str(), "{j:#}");
    assert_eq!(findings(&j)[0]["path"], "ünïcode dir/.env");

    let k2 = key("outside-subdir");
    r.write("top.env", env_line(&k2));
    r.git(&["add", "top.env"]);
    let o = r.awx_in(
        &r.dir.join("sub"),
        &["scan", "--staged", "--format", "json"],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(findings(&json(&o))[0]["path"], "top.env");
}

#[test]
fn verify_logs_in_with_a_key_found_only_in_history() {
    use awxguard::airwallex::simulator::{Behaviour, SimState, Simulator};
    let r = Repo::new();
    let (cid, k) = (client_id("history-verify"), key("history-verify"));
    let sim = Simulator::spawn(SimState::default().with_key(&cid, &k, Behaviour::Live)).unwrap();
    r.write(
        ".env",
        format!("AIRWALLEX_CLIENT_ID={cid}\nAIRWALLEX_API_KEY={k}\n"),
    );
    r.commit("add");
    std::fs::remove_file(r.dir.join(".env")).unwrap();
    r.commit("remove");
    // The config stays out of the history: awxguard reads it from the working directory.
    r.write(
        "awxguard.toml",
        format!("[airwallex]\nbase_url = \"{}\"\nretries = 0\n", sim.url()),
    );
    let j = r.scan_json(&["--git", "--verify"], 1);
    let f = &findings(&j)[0];
    assert_eq!(f["verification"], "live", "{j:#}");
    assert_eq!(f["severity"], "critical");
    assert_eq!(sim.requests().len(), 1);
    assert_no_secret(&j.to_string(), &k, "json report");
}

#[test]
fn a_baseline_written_from_history_suppresses_those_findings_and_not_new_ones() {
    let r = Repo::new();
    r.write(".env", env_line(&key("accepted")));
    r.commit("old key, rotated long ago");
    let b = r.dir.join("..").join("baseline.json");
    let b = b.to_str().unwrap();
    r.scan_json(&["--git", "--write-baseline", b], 0);
    r.scan_json(&["--git", "--baseline", b], 0);
    r.write("new.env", env_line(&key("fresh")));
    r.git(&["add", "new.env"]);
    let j = r.scan_json(&["--staged", "--baseline", b], 1);
    assert_eq!(fingerprints(&j), vec![fingerprint(&key("fresh"))]);
    r.commit("new key");
    let j = r.scan_json(&["--git", "--baseline", b], 1);
    assert_eq!(fingerprints(&j), vec![fingerprint(&key("fresh"))]);
}

#[test]
fn a_partial_clone_counts_missing_blobs_instead_of_fetching_them() {
    let r = Repo::new();
    r.write(".env", env_line(&key("partial")));
    r.write("a.txt", "a\n");
    r.commit("one");
    r.git(&["config", "uploadpack.allowFilter", "true"]);
    let clone = r.dir.join("../partial");
    let url = format!("file://{}", r.dir.display());
    r.git(&[
        "clone",
        "-q",
        "--filter=blob:none",
        "--no-checkout",
        &url,
        clone.to_str().unwrap(),
    ]);
    let o = r.awx_in(&clone, &["scan", "--git", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["summary"]["scan"]["unreadable"], 2, "{j:#}");
    assert!(j["summary"]["notes"][0]
        .as_str()
        .unwrap()
        .contains("partial clone"));
    // Nothing was fetched behind the user's back.
    let o = r.awx_in(&clone, &["scan", "--git", "--format", "json"]);
    assert_eq!(json(&o)["summary"]["scan"]["unreadable"], 2);
}
