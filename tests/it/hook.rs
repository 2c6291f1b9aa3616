//! The pre-commit hook, exercised with real `git commit`s.

use crate::common::*;
use crate::git::{env_line, Repo};

fn hook_path(r: &Repo) -> std::path::PathBuf {
    r.dir.join(".git/hooks/pre-commit")
}

/// `git commit` with the hook enabled; returns the output.
fn try_commit(r: &Repo, msg: &str) -> std::process::Output {
    r.git(&["add", "-A"]);
    r.git_cmd(&["commit", "-q", "-m", msg])
        .output()
        .expect("run git commit")
}

#[test]
fn the_hook_blocks_a_commit_that_adds_a_key_and_passes_clean_ones() {
    let r = Repo::new();
    let o = r.awx(&["hook", "install"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let script = std::fs::read_to_string(hook_path(&r)).unwrap();
    assert!(script.contains("scan --staged"), "{script}");

    r.write("README.md", "hello\n");
    let o = try_commit(&r, "clean");
    assert!(o.status.success(), "{}", stderr(&o));

    let k = key("hook-blocks");
    r.write("settings.env", env_line(&k));
    let before = r.git(&["rev-parse", "HEAD"]);
    let o = try_commit(&r, "leak");
    assert!(!o.status.success(), "the commit went through");
    let shown = format!("{}{}", stdout(&o), stderr(&o));
    assert!(shown.contains("leak.airwallex.api-key"), "{shown}");
    assert!(shown.contains("settings.env"), "{shown}");
    assert!(shown.contains("commit blocked"), "{shown}");
    assert_no_secret(&shown, &k, "hook output");
    assert_eq!(r.git(&["rev-parse", "HEAD"]), before);

    // Marked as a fixture, the same line passes.
    r.write(
        "settings.env",
        format!("AIRWALLEX_API_KEY={k} # awxguard:allow fixture\n"),
    );
    let o = try_commit(&r, "fixture");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(r.git(&["rev-parse", "HEAD"]), before);

    // `git commit -a` stages through a temporary index: the hook must see it too.
    r.write(
        "README.md",
        format!("hello\n{}", env_line(&key("commit-a"))),
    );
    let o = r
        .git_cmd(&["commit", "-q", "-a", "-m", "commit -a"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "commit -a went through");
}

#[test]
fn a_foreign_hook_is_left_alone_unless_forced_and_restored_on_uninstall() {
    let r = Repo::new();
    let foreign = "#!/bin/sh\necho someone else's hook\n";
    r.write(".git/hooks/pre-commit", foreign);
    let o = r.awx(&["hook", "install"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("did not write"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(hook_path(&r)).unwrap(), foreign);
    let o = r.awx(&["hook", "uninstall"]);
    assert_eq!(code(&o), 2);
    assert_eq!(std::fs::read_to_string(hook_path(&r)).unwrap(), foreign);

    let o = r.awx(&["hook", "install", "--force"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(std::fs::read_to_string(hook_path(&r))
        .unwrap()
        .contains("awxguard"));
    assert_eq!(
        std::fs::read_to_string(r.dir.join(".git/hooks/pre-commit.awxguard-backup")).unwrap(),
        foreign
    );
    // Installing again updates our own hook without --force.
    let o = r.awx(&["hook", "install"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let o = r.awx(&["hook", "uninstall"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(hook_path(&r)).unwrap(), foreign);
    assert!(!r.dir.join(".git/hooks/pre-commit.awxguard-backup").exists());
}

#[test]
fn install_honours_core_hooks_path_and_uninstall_removes_the_hook() {
    let r = Repo::new();
    r.git(&["config", "core.hooksPath", ".githooks"]);
    let o = r.awx(&["hook", "install"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let hook = r.dir.join(".githooks/pre-commit");
    assert!(hook.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111,
            0o111
        );
    }
    r.write(".env", env_line(&key("hooks-path")));
    let o = try_commit(&r, "leak");
    assert!(!o.status.success(), "core.hooksPath hook did not run");

    let o = r.awx(&["hook", "uninstall"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!hook.exists());
    let o = r.awx(&["hook", "uninstall"]);
    assert_eq!(code(&o), 0, "nothing to remove is fine");
    let o = try_commit(&r, "no hook now");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn hook_install_outside_a_repository_fails_with_exit_2() {
    let d = tempdir();
    let o = run(d.path(), &["hook", "install"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("not a git repository"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_pre_commit_framework_manifest_runs_scan_staged() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml"),
    )
    .expect(".pre-commit-hooks.yaml at the top of the repository");
    assert!(text.contains("- id: awxguard"), "{text}");
    assert!(text.contains("entry: awxguard scan --staged"), "{text}");
    assert!(text.contains("pass_filenames: false"), "{text}");
}

#[test]
fn install_from_a_subdirectory_and_a_linked_worktree_writes_the_repositorys_hook() {
    let r = Repo::new();
    r.write("sub/a.txt", "a\n");
    r.commit("init");
    let o = r.awx_in(&r.dir.join("sub"), &["hook", "install"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(hook_path(&r).is_file());
    // A linked worktree shares the repository's hooks.
    let wt = r.dir.join("../linked");
    r.git(&["worktree", "add", "-q", wt.to_str().unwrap()]);
    let o = r.awx_in(&wt, &["hook", "uninstall"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!hook_path(&r).exists());
}

#[test]
fn an_inventory_mistake_never_stops_the_hook_or_a_staged_scan() {
    let r = Repo::new();
    // A typo in a [[key]] (an unknown field, a number for a name) and an [airwallex] the scan
    // does not read: `inventory` reports them; the scan and the hook do not care.
    let config = "[scan]\nmax_file_size = 1000000\n\n[[key]]\nname = 7\nowner = \"ops\"\n\
                  scopse = [\"transfers:read\"]\n\n[airwallex]\nbase_url = \"not a url\"\n";
    r.write("awxguard.toml", config);
    let o = r.awx(&["inventory"]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(stderr(&o).contains("awxguard.toml:5:"), "{}", stderr(&o));

    r.git(&["add", "-A"]);
    let o = r.awx(&["scan", "--staged"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = r.awx(&["hook", "install"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r.write("README.md", "hello\n");
    let o = try_commit(&r, "clean, with a broken inventory");
    assert!(o.status.success(), "{}", stderr(&o));

    // The hook still blocks a key.
    let k = key("bad-inventory");
    r.write("settings.env", env_line(&k));
    let o = try_commit(&r, "leak");
    assert!(!o.status.success(), "the commit went through");
    let shown = format!("{}{}", stdout(&o), stderr(&o));
    assert!(shown.contains("leak.airwallex.api-key"), "{shown}");
    assert_no_secret(&shown, &k, "hook output");

    // What the scan does read is still checked, with file, line and field.
    r.write(
        "awxguard.toml",
        "[scan]\nmax_file_size = 0\n[[key]]\nname = 7\n",
    );
    r.git(&["add", "awxguard.toml"]);
    let o = r.awx(&["scan", "--staged"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("awxguard.toml:2: scan.max_file_size"),
        "{}",
        stderr(&o)
    );
}
