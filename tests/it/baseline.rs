//! Baselines: judged findings stay out across line shifts, a real `git rebase` and squashes
//! (keyed on rule, fingerprint and path); a renamed file makes its entry stale and its finding
//! comes back; the file is versioned JSON without the secret.

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Runs git in `dir` with a fixed identity and no user or system config.
fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_DATE", "2026-11-20T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-11-20T10:00:00Z")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

fn env_text(cid: &str, k: &str, padding: usize) -> String {
    let mut s = "# payouts\n".to_string();
    for i in 0..padding {
        s.push_str(&format!("# note {i}\n"));
    }
    s.push_str(&format!(
        "AIRWALLEX_CLIENT_ID={cid}\nAIRWALLEX_API_KEY={k}\n\n# end\n"
    ));
    s
}

fn scan_json(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["scan", "--format", "json"];
    args.extend_from_slice(extra);
    args.push(".");
    let o = run(dir, &args);
    let c = code(&o);
    assert!(c != 2, "{}", stderr(&o));
    (c, json(&o))
}

fn baseline_arg(b: &Path) -> String {
    b.display().to_string()
}

#[test]
fn baseline_is_versioned_json_without_the_secret_and_survives_line_shifts() {
    let d = tempdir();
    let out = tempdir();
    let b = out.path().join("awxguard-baseline.json");
    let bs = baseline_arg(&b);
    let (cid, k) = (client_id("bl-shift"), key("bl-shift"));
    write(d.path(), ".env", env_text(&cid, &k, 0));

    // Writing a baseline prints the findings it records and exits 0.
    let o = run(
        d.path(),
        &["scan", "--format", "json", "--write-baseline", &bs, "."],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["summary"]["findings"], 1);
    let text = std::fs::read_to_string(&b).unwrap();
    assert_no_secret(&text, &k, "baseline file");
    assert!(!text.contains(&cid), "no client ID in the baseline");
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["version"], 1);
    assert_eq!(file["tool"], "awxguard");
    let entry = &file["entries"][0];
    assert_eq!(entry["rule"], "leak.airwallex.api-key");
    assert_eq!(entry["fingerprint"], fingerprint(&k));
    assert_eq!(entry["path"], ".env");
    assert_eq!(entry["added"], "2026-11-24T12:00:00Z");
    assert!(entry.get("line").is_none() && entry.get("commit").is_none());

    // Twenty lines above the key: same entry, still suppressed.
    write(d.path(), ".env", env_text(&cid, &k, 20));
    let (_, plain) = scan_json(d.path(), &[]);
    assert_eq!(plain["findings"][0]["line"], 23);
    let (c, j) = scan_json(d.path(), &["--baseline", &bs]);
    assert_eq!(c, 0);
    assert_eq!(j["summary"]["findings"], 0);
    assert_eq!(j["summary"]["baseline"]["suppressed"], 1);
    assert_eq!(j["summary"]["baseline"]["stale"], serde_json::json!([]));

    // A new key is not covered.
    let k2 = key("bl-shift-new");
    write(d.path(), "deploy/.env", env_text(&cid, &k2, 0));
    let (c, j) = scan_json(d.path(), &["--baseline", &bs]);
    assert_eq!(c, 1);
    assert_eq!(j["summary"]["findings"], 1);
    assert_eq!(j["findings"][0]["secret"]["fingerprint"], fingerprint(&k2));
}

/// A repository on `main` with one key in `.env`, and a `feature` branch that adds a second key
/// in another file over two commits, while `main` moves on with lines inserted above the first
/// key.
fn diverged_repo(dir: &Path) -> (String, String) {
    let cid = client_id("bl-repo");
    let (k1, k2) = (key("bl-repo-1"), key("bl-repo-2"));
    git(dir, &["init", "-q"]);
    write(dir, ".env", env_text(&cid, &k1, 0));
    write(dir, "README.md", "payouts\n");
    commit_all(dir, "initial");
    git(dir, &["checkout", "-q", "-b", "feature"]);
    write(
        dir,
        "config/airwallex.yaml",
        format!("airwallex:\n  client_id: {cid}\n"),
    );
    commit_all(dir, "feature: config");
    write(
        dir,
        "config/airwallex.yaml",
        format!("airwallex:\n  client_id: {cid}\n  api_key: {k2}\n"),
    );
    commit_all(dir, "feature: key");
    git(dir, &["checkout", "-q", "main"]);
    write(dir, ".env", env_text(&cid, &k1, 7));
    write(dir, "README.md", "payouts\n\nmore docs\n");
    commit_all(dir, "main: docs above the key");
    git(dir, &["checkout", "-q", "feature"]);
    (k1, k2)
}

#[test]
fn baseline_survives_a_rebase() {
    let d = tempdir();
    let out = tempdir();
    let bs = baseline_arg(&out.path().join("baseline.json"));
    let (k1, _) = diverged_repo(d.path());
    let (_, before) = scan_json(d.path(), &[]);
    assert_eq!(before["summary"]["findings"], 2);
    assert_eq!(
        run(d.path(), &["scan", "--write-baseline", &bs, "."])
            .status
            .code(),
        Some(0)
    );

    git(d.path(), &["rebase", "-q", "main"]);
    // The rebase moved the first key down and rewrote every feature commit...
    let (_, after) = scan_json(d.path(), &[]);
    let line_of = |j: &Value| {
        j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["secret"]["fingerprint"] == fingerprint(&k1))
            .unwrap()["line"]
            .clone()
    };
    assert_ne!(line_of(&before), line_of(&after));
    // ...and the baseline still covers both findings, with no stale entry.
    let (c, j) = scan_json(d.path(), &["--baseline", &bs]);
    assert_eq!(c, 0, "{j}");
    assert_eq!(j["summary"]["findings"], 0);
    assert_eq!(j["summary"]["baseline"]["suppressed"], 2);
    assert_eq!(j["summary"]["baseline"]["stale"], serde_json::json!([]));
}

#[test]
fn baseline_survives_a_squash_by_reset_and_by_merge() {
    let d = tempdir();
    let out = tempdir();
    let bs = baseline_arg(&out.path().join("baseline.json"));
    diverged_repo(d.path());
    git(d.path(), &["rebase", "-q", "main"]);
    assert_eq!(
        run(d.path(), &["scan", "--write-baseline", &bs, "."])
            .status
            .code(),
        Some(0)
    );

    // Squash the feature's commits into one with reset --soft.
    git(d.path(), &["reset", "-q", "--soft", "main"]);
    git(d.path(), &["commit", "-q", "-m", "feature (squashed)"]);
    assert_eq!(
        git(d.path(), &["rev-list", "--count", "main..HEAD"]).trim(),
        "1"
    );
    let (c, j) = scan_json(d.path(), &["--baseline", &bs]);
    assert_eq!((c, j["summary"]["findings"].clone()), (0, 0.into()), "{j}");
    assert_eq!(j["summary"]["baseline"]["stale"], serde_json::json!([]));

    // Land it on main with merge --squash.
    git(d.path(), &["checkout", "-q", "main"]);
    git(d.path(), &["merge", "-q", "--squash", "feature"]);
    git(
        d.path(),
        &["commit", "-q", "-m", "Merge feature (squashed)"],
    );
    let (c, j) = scan_json(d.path(), &["--baseline", &bs]);
    assert_eq!((c, j["summary"]["findings"].clone()), (0, 0.into()), "{j}");
    assert_eq!(j["summary"]["baseline"]["suppressed"], 2);
    assert_eq!(j["summary"]["baseline"]["stale"], serde_json::json!([]));
}

#[test]
fn baseline_entry_goes_stale_when_its_file_is_renamed() {
    let d = tempdir();
    let out = tempdir();
    let bs = baseline_arg(&out.path().join("baseline.json"));
    let (k1, _) = diverged_repo(d.path());
    run(d.path(), &["scan", "--write-baseline", &bs, "."]);
    git(d.path(), &["mv", ".env", "payouts.env"]);
    commit_all(d.path(), "rename");

    let (c, j) = scan_json(d.path(), &["--baseline", &bs]);
    assert_eq!(c, 1, "the finding comes back under its new path");
    assert_eq!(j["summary"]["findings"], 1);
    assert_eq!(j["findings"][0]["path"], "payouts.env");
    assert_eq!(j["findings"][0]["secret"]["fingerprint"], fingerprint(&k1));
    let stale = j["summary"]["baseline"]["stale"].as_array().unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0]["path"], ".env");
    assert_eq!(stale[0]["fingerprint"], fingerprint(&k1));

    // People see the stale entry too; it is a note, not a failure of its own.
    let o = run(d.path(), &["scan", "--baseline", &bs, "."]);
    let text = stdout(&o);
    assert!(
        text.contains("stale baseline entry (matches nothing; remove it): leak.airwallex.api-key"),
        "{text}"
    );
    assert!(
        text.contains("1 findings suppressed, 1 stale entries"),
        "{text}"
    );

    // Rewriting the baseline records the new path and drops the stale entry.
    run(
        d.path(),
        &["scan", "--baseline", &bs, "--write-baseline", &bs, "."],
    );
    let (c, j) = scan_json(d.path(), &["--baseline", &bs]);
    assert_eq!(c, 0);
    assert_eq!(j["summary"]["baseline"]["stale"], serde_json::json!([]));
}

#[test]
fn baseline_that_cannot_be_used_is_a_tool_error() {
    let d = tempdir();
    write(d.path(), "README.md", "nothing here\n");
    let o = run(d.path(), &["scan", "--baseline", "missing.json", "."]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("missing.json: cannot read baseline"));
    write(
        d.path(),
        "future.json",
        r#"{"version": 9, "tool": "awxguard", "entries": []}"#,
    );
    let o = run(d.path(), &["scan", "--baseline", "future.json", "."]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("baseline version 9 is not supported"),
        "{}",
        stderr(&o)
    );
}
