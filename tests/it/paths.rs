//! Stable paths (issue 15): findings name a file relative to the top of its git work tree (else
//! the current directory) however the scan was called, so a baseline written at the root applies
//! to `scan src`, and SARIF URIs resolve to the real files.

use crate::common::*;
use crate::git::Repo;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn paths_of(report: &Value) -> Vec<String> {
    let mut p: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    p.sort();
    p
}

fn scan(r: &Repo, cwd: &Path, args: &[&str], want: i32) -> Value {
    let o = r.awx_in(cwd, args);
    assert_eq!(code(&o), want, "{args:?}\n{}{}", stdout(&o), stderr(&o));
    json(&o)
}

/// Percent-decodes a `file:` URI (or a relative reference) into a path.
fn decode(uri: &str) -> String {
    let b = uri.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&uri[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn paths_are_relative_to_the_work_tree_however_the_scan_is_called() {
    let r = Repo::new();
    let (k1, k2) = (key("paths-src"), key("paths-config"));
    r.write("src/app/settings.env", format!("AIRWALLEX_API_KEY={k1}\n"));
    r.write(
        "config/old settings.env",
        format!("AIRWALLEX_API_KEY={k2}\n"),
    );
    let all = ["config/old settings.env", "src/app/settings.env"];
    let j = |args: &[&str], cwd: &Path| {
        let mut a = vec!["scan", "--format", "json"];
        a.extend_from_slice(args);
        scan(&r, cwd, &a, 1)
    };
    assert_eq!(paths_of(&j(&[], &r.dir)), all);
    assert_eq!(paths_of(&j(&["src", "config"], &r.dir)), all);
    assert_eq!(paths_of(&j(&["src"], &r.dir)), ["src/app/settings.env"]);
    assert_eq!(
        paths_of(&j(&["src/app/settings.env"], &r.dir)),
        ["src/app/settings.env"]
    );
    // From a subdirectory, and from outside the repository by absolute path.
    let sub = r.dir.join("src/app");
    assert_eq!(paths_of(&j(&[], &sub)), ["src/app/settings.env"]);
    assert_eq!(
        paths_of(&j(&["../../config"], &sub)),
        ["config/old settings.env"]
    );
    let outside = r.dir.parent().unwrap().to_path_buf();
    let abs = r.dir.join("src").display().to_string();
    let report = j(&[&abs], &outside);
    assert_eq!(paths_of(&report), ["src/app/settings.env"]);
    assert_eq!(
        report["summary"]["scan"]["root"]
            .as_str()
            .map(PathBuf::from),
        Some(std::fs::canonicalize(&r.dir).unwrap())
    );
    // The same file, the same finding id, however it was reached.
    let id = |v: &Value| v["findings"][0]["id"].clone();
    assert_eq!(id(&j(&["src"], &r.dir)), id(&j(&[], &sub)));

    // Outside any work tree: relative to the current directory.
    let plain = tempdir();
    write(
        plain.path(),
        "deploy/app.env",
        format!("AIRWALLEX_API_KEY={k1}\n"),
    );
    let o = run(plain.path(), &["scan", "--format", "json", "deploy"]);
    assert_eq!(paths_of(&json(&o)), ["deploy/app.env"]);
}

#[test]
fn a_root_baseline_applies_to_scan_src_and_sarif_uris_name_real_files() {
    let r = Repo::new();
    let (k1, k2) = (key("base-src"), key("base-config"));
    r.write("src/app/settings.env", format!("AIRWALLEX_API_KEY={k1}\n"));
    r.write(
        "config/old settings.env",
        format!("AIRWALLEX_API_KEY={k2}\n"),
    );
    r.commit("keys");
    let out = tempdir();
    let b = out.path().join("baseline.json").display().to_string();
    let o = r.awx(&["scan", "--write-baseline", &b]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // Written at the root, applied to a scan of src from the root and from inside src.
    for (cwd, args) in [
        (r.dir.clone(), vec!["src"]),
        (r.dir.join("src"), vec!["."]),
        (r.dir.join("src/app"), vec!["settings.env"]),
    ] {
        let mut a = vec!["scan", "--format", "json", "--baseline", &b];
        a.extend_from_slice(&args);
        let j = scan(&r, &cwd, &a, 0);
        assert_eq!(j["summary"]["baseline"]["suppressed"], 1, "{args:?} {j:#}");
        assert_eq!(j["findings"], serde_json::json!([]), "{args:?}");
    }
    // History scans name the same paths: the baseline covers them too.
    let j = scan(
        &r,
        &r.dir,
        &["scan", "--format", "json", "--git", "--baseline", &b],
        0,
    );
    assert_eq!(j["summary"]["baseline"]["suppressed"], 2, "{j:#}");

    // SARIF from a subdirectory: base URI + relative URI is the file on disk.
    for (cwd, args) in [
        (
            r.dir.join("src"),
            vec!["scan", "--format", "sarif", "..", "."],
        ),
        (
            r.dir.join("src"),
            vec!["scan", "--format", "sarif", "--git", ".."],
        ),
    ] {
        let sarif = scan(&r, &cwd, &args, 1);
        let run = &sarif["runs"][0];
        let base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
            .as_str()
            .unwrap_or_else(|| panic!("no base uri: {run:#}"));
        assert!(
            base.starts_with("file:///") && base.ends_with('/'),
            "{base}"
        );
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 2, "{args:?}");
        for res in results {
            let loc = &res["locations"][0]["physicalLocation"]["artifactLocation"];
            assert_eq!(loc["uriBaseId"], "%SRCROOT%");
            let rel = loc["uri"].as_str().unwrap();
            let file = PathBuf::from(decode(&base["file://".len()..])).join(decode(rel));
            assert!(file.is_file(), "{args:?}: {} is not a file", file.display());
        }
        let text = serde_json::to_string(&sarif).unwrap();
        assert_no_secret(&text, &k1, "SARIF");
        assert_no_secret(&text, &k2, "SARIF");
    }
}

/// The directories above a scanned root outside the base (shown as an absolute path) say nothing
/// about its files: a checkout under `/tmp/airwallex-checkout/` is not "an Airwallex file"
/// everywhere (which also made every file run every pattern), and the outcome is the same whether
/// the directory is scanned from outside or from inside.
#[test]
fn directories_above_a_root_outside_the_base_are_no_context() {
    let tmp = tempdir();
    let dir = tmp.path().join("airwallex-checkout");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (generic, named) = (key("ctx-generic"), key("ctx-named"));
    // A generic field counts only in a file that names Airwallex (its text or its own path).
    write(&dir, "config/settings.yml", format!("api_key: {generic}\n"));
    write(&dir, "config/airwallex.yml", format!("api_key: {named}\n"));
    let fps = |o: &std::process::Output| {
        assert_eq!(code(o), 1, "{}{}", stdout(o), stderr(o));
        let mut f: Vec<String> = json(o)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["secret"]["fingerprint"].as_str().unwrap().to_string())
            .collect();
        f.sort();
        f
    };
    let want = vec![fingerprint(&named)];
    let abs = dir.display().to_string();
    assert_eq!(
        fps(&run(&elsewhere, &["scan", "--format", "json", &abs])),
        want
    );
    assert_eq!(fps(&run(&dir, &["scan", "--format", "json"])), want);
    let file = dir.join("config/settings.yml").display().to_string();
    let o = run(&elsewhere, &["scan", "--format", "json", &file]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}
