//! `awxguard demo`, the README's first command: on a fresh machine, with no Airwallex account and
//! no network, it tells the whole story. Checked from what it wrote, not from what it printed:
//! the store holds a leak, an admin key, an anomaly and a watch finding; the alert files parse
//! and name those findings' ids; the HTML report holds them; and no key it made is in any of
//! them, nor in its output.

use crate::common::*;
use base64::Engine;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every key the demo made: in its secret files, in its repository's whole history (every
/// branch) and, base64-encoded, in the Kubernetes Secret.
fn demo_keys(dir: &Path) -> BTreeSet<String> {
    let hex96 = regex::Regex::new("[0-9a-f]{96}").unwrap();
    let mut text = String::new();
    for e in std::fs::read_dir(dir.join("ops/secrets")).unwrap() {
        text.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        text.push('\n');
    }
    let log = std::process::Command::new("git")
        .current_dir(dir.join("payments-service"))
        .args(["log", "-p", "--all"])
        .output()
        .unwrap();
    text.push_str(&String::from_utf8_lossy(&log.stdout));
    let k8s = std::fs::read_to_string(dir.join("payments-service/deploy/k8s/payments-secret.yaml"))
        .unwrap();
    let b64 = regex::Regex::new("API_KEY: ([A-Za-z0-9+/=]{64,})").unwrap();
    let encoded = &b64.captures(&k8s).expect("the Secret's key")[1];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    text.push_str(&String::from_utf8(decoded).unwrap());
    let keys: BTreeSet<String> = hex96
        .find_iter(&text)
        .map(|m| m.as_str().to_string())
        .collect();
    // payvy-ap, reporting, legacy-admin, payvy-sandbox, treasury-watch; the script's, the
    // Secret's, the history's and the branch's.
    assert!(keys.len() >= 9, "{} keys found", keys.len());
    keys
}

/// The findings the store holds: (rule, id, status).
fn stored(db: &Path) -> Vec<(String, String, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT rule, id, status FROM findings ORDER BY rule, id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_demo_tells_the_whole_story_in_its_store_alerts_and_report_without_a_key() {
    let d = tempdir();
    let dir = d.path().join("demo");
    let o = awxguard(d.path())
        .args(["demo", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));

    // The store: a leak, an admin key, an anomaly and the watch's payee created and paid.
    let findings = stored(&dir.join("awxguard-demo.db"));
    let open = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        findings
            .iter()
            .filter(|(rule, _, status)| pred(rule) && (status == "new" || status == "open"))
            .map(|(_, id, _)| id.clone())
            .collect()
    };
    let leaks = open(&|r| r == "leak.airwallex.api-key");
    let admin = open(&|r| r == "privilege.admin-key");
    let anomalies = open(&|r| r.starts_with("anomaly."));
    let watch = open(&|r| r == "watch.new-payee-paid");
    for (what, ids) in [
        ("a leak", &leaks),
        ("an admin key", &admin),
        ("an anomaly", &anomalies),
        ("a watch finding", &watch),
    ] {
        assert!(!ids.is_empty(), "the store holds no {what}: {findings:?}");
    }
    let story: Vec<&String> = [&leaks[0], &admin[0], &anomalies[0], &watch[0]].to_vec();

    // The alert files: every .json parses, every .eml has headers, and together they name the
    // story's findings.
    let mut alert_files: Vec<PathBuf> = std::fs::read_dir(dir.join("alerts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    alert_files.sort();
    let mut alert_text = String::new();
    let mut jsons = 0;
    for f in &alert_files {
        let text = std::fs::read_to_string(f).unwrap();
        match f.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} does not parse: {e}", f.display()));
                alert_text.push_str(&v.to_string());
                jsons += 1;
            }
            Some("eml") => {
                assert!(text.contains("Subject: "), "{}", f.display());
                assert!(text.contains("Message-ID: "), "{}", f.display());
            }
            _ => panic!("unexpected file {} in the alert directory", f.display()),
        }
    }
    assert!(jsons >= 3, "{jsons} alert files");
    for id in &story {
        assert!(alert_text.contains(id.as_str()), "no alert names {id}");
    }

    // The report holds them.
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.starts_with("<!DOCTYPE html>"), "{}", &report[..80]);
    for id in &story {
        assert!(report.contains(id.as_str()), "the report lacks {id}");
    }
    assert!(
        report.contains("Blast radius of payvy-ap"),
        "no blast radius"
    );
    // The usage store's evidence is charted with the anomaly detection's learned band.
    assert!(
        report.contains("class=\"band\""),
        "no learned baseline band on the charts"
    );

    // The guided summary says where things are.
    let out = stdout(&o);
    for want in ["report.html", "alerts", "watch.new-payee-paid"] {
        assert!(out.contains(want), "{want} not in the summary:\n{out}");
    }

    // No key anywhere: output, the store (with its WAL), the alerts, the report, the usage.
    let mut files = alert_files.clone();
    files.push(dir.join("report.html"));
    files.push(dir.join("ops/usage/events.jsonl"));
    for db in ["awxguard-demo.db", "awxguard-demo.db-wal"] {
        files.push(dir.join(db));
    }
    for key in demo_keys(&dir) {
        assert_nowhere(&key, &dir, &[("the demo", &o)], &files);
        assert_no_secret(&report, &key, "the report");
    }
}
