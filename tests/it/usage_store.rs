//! The usage evidence store through the binary: `usage ingest` into a real SQLite file, `usage
//! stats`, `usage anomalies`; the same anomalies whether a stream comes in one go, in daily
//! pieces or shuffled; bad lines counted and reported with nothing valid lost; growing,
//! truncated and rotated files; a database from a newer awxguard refused.

use crate::common::{
    code, count_rows, json, key, run, set_schema_version, stderr, stdout, tempdir, write,
};
use awxguard::airwallex::Catalog;
use awxguard::usage::detect::synth;
use std::collections::BTreeSet;
use std::path::Path;

/// A seeded synthetic stream (several keys, seven weeks, every kind of anomaly injected), as
/// contract lines in time order, without the keys in `leave_out` (the busiest keys make a debug
/// build's test slow; the detectors are tested over every key in the library's tests).
fn stream(seed: u64, leave_out: &[&str]) -> (synth::Stream, Vec<String>) {
    let mut s = synth::generate(&synth::Config::new(seed), &Catalog::builtin());
    s.groups
        .retain(|(e, _)| !leave_out.contains(&e.key.as_str()));
    s.profiles.retain(|p| !leave_out.contains(&p.key.as_str()));
    s.injections
        .retain(|i| !leave_out.contains(&i.key.as_str()));
    let lines = s.jsonl().lines().map(str::to_string).collect();
    (s, lines)
}

fn ingest(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--format", "json", "usage", "ingest"];
    a.extend_from_slice(args);
    let o = run(dir, &a);
    // exit 1: a finding at or above --fail-on (high); 2 would be an error
    assert!(code(&o) <= 1, "{}\n{}", stdout(&o), stderr(&o));
    json(&o)
}

/// The open anomalies the store lists: (id, rule, key, start, end).
fn open_anomalies(dir: &Path) -> BTreeSet<(String, String, String, String, String)> {
    let o = run(dir, &["--format", "json", "usage", "anomalies"]);
    assert!(code(&o) <= 1, "{}\n{}", stdout(&o), stderr(&o));
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    json(&o)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                s(&f["id"]),
                s(&f["rule"]),
                s(&f["key"]),
                s(&f["start"]),
                s(&f["end"]),
            )
        })
        .collect()
}

#[test]
fn ingest_stats_and_anomalies_through_the_store() {
    let dir = tempdir();
    let (s, lines) = stream(7, &["payments"]);
    write(dir.path(), "events.jsonl", lines.join("\n") + "\n");
    let r = ingest(dir.path(), &["events.jsonl"]);
    let u = &r["summary"]["usage"];
    assert_eq!(u["events"], lines.len() as u64, "{u}");
    assert_eq!(u["new"], lines.len() as u64, "{u}");
    assert_eq!(u["rejected"], 0);
    let found = open_anomalies(dir.path());
    let ingested: BTreeSet<String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ingested,
        found.iter().map(|f| f.0.clone()).collect(),
        "what ingest recorded is what anomalies lists"
    );
    // the injections still open at the end of the stream are listed, each under its rule
    let newest = s.end;
    for inj in &s.injections {
        if inj.end < newest - 7 * 86_400 {
            continue; // aged out by [usage] quiet
        }
        assert!(
            found
                .iter()
                .any(|f| f.1 == inj.kind.rule() && f.2 == inj.key),
            "{} on {} not found in {found:?}",
            inj.kind.rule(),
            inj.key
        );
    }
    // every finding of an ingest carries evidence with sample events from the store
    let f = &r["findings"][0];
    assert!(
        f["evidence"]["signals"][0]["samples"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            || f["evidence"]["samples"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
        "{f}"
    );

    // the same file again: nothing new, the same anomalies
    let again = ingest(dir.path(), &["events.jsonl"]);
    assert_eq!(again["summary"]["usage"]["new"], 0);
    assert!(
        again["summary"]["usage"]["sources"][0]["note"]
            .as_str()
            .unwrap_or("")
            .contains("unchanged"),
        "{again}"
    );
    assert_eq!(open_anomalies(dir.path()), found);

    // stats: every key, first and last event, counts, the baseline
    let o = run(dir.path(), &["--format", "json", "usage", "stats"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let st = json(&o);
    let keys = st["summary"]["usage"]["keys"].as_array().unwrap();
    let names: BTreeSet<&str> = keys.iter().map(|k| k["key"].as_str().unwrap()).collect();
    for p in &s.profiles {
        assert!(
            names.contains(p.key.as_str()),
            "{} missing: {names:?}",
            p.key
        );
    }
    let total: u64 = keys.iter().map(|k| k["events"].as_u64().unwrap()).sum();
    assert_eq!(total, lines.len() as u64);
    assert!(keys.iter().all(|k| k["first_seen"].is_string()
        && k["last_seen"].is_string()
        && k["baseline"].is_object()));
    let o = run(dir.path(), &["usage", "stats", "--key", &s.profiles[0].key]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains(&s.profiles[0].key), "{}", stdout(&o));
}

#[test]
fn the_same_anomalies_in_one_go_in_daily_pieces_and_shuffled() {
    let (_, lines) = stream(11, &["payments", "erp"]);
    // in one go
    let whole = tempdir();
    write(whole.path(), "all.jsonl", lines.join("\n") + "\n");
    ingest(whole.path(), &["all.jsonl"]);
    let expected = open_anomalies(whole.path());
    assert!(!expected.is_empty());

    // in daily pieces, one ingest per day, in order
    let daily = tempdir();
    let mut days: Vec<(String, Vec<&String>)> = Vec::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let day = v["ts"].as_str().unwrap()[..10].to_string();
        match days.last_mut() {
            Some((d, v)) if *d == day => v.push(l),
            _ => days.push((day, vec![l])),
        }
    }
    assert!(days.len() >= 40, "{} days", days.len());
    // a week at a time is still daily pieces for the store; a process per day of 49 would only
    // make the test slow: each week comes as seven files in one ingest, each file one day
    for week in days.chunks(7) {
        let mut names = Vec::new();
        for (d, v) in week {
            let name = format!("{d}.jsonl");
            write(
                daily.path(),
                &name,
                v.iter().map(|l| format!("{l}\n")).collect::<String>(),
            );
            names.push(name);
        }
        let args: Vec<&str> = names.iter().map(String::as_str).collect();
        ingest(daily.path(), &args);
    }
    assert_eq!(open_anomalies(daily.path()), expected, "daily pieces");

    // shuffled, in two random halves, one ingest each
    let shuffled = tempdir();
    let mut rng = synth::Rng::new(99);
    let mut mixed: Vec<&String> = lines.iter().collect();
    for i in (1..mixed.len()).rev() {
        let j = rng.int(0, i as i64) as usize;
        mixed.swap(i, j);
    }
    let half = mixed.len() / 2;
    let text = |v: &[&String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
    write(shuffled.path(), "b.jsonl", text(&mixed[half..]));
    write(shuffled.path(), "a.jsonl", text(&mixed[..half]));
    ingest(shuffled.path(), &["b.jsonl"]);
    ingest(shuffled.path(), &["a.jsonl"]);
    assert_eq!(open_anomalies(shuffled.path()), expected, "shuffled");
}

fn event(ts: &str, key: &str, ip: &str) -> String {
    format!(
        r#"{{"ts":"{ts}","key":"{key}","method":"GET","path":"/api/v1/balances/current","status":200,"source_ip":"{ip}","host":"api.airwallex.com"}}"#
    )
}

#[test]
fn bad_lines_are_counted_and_reported_and_nothing_valid_is_lost() {
    let dir = tempdir();
    let raw = key("usage-store-bad-lines");
    let text = [
        event("2026-11-20T10:00:00Z", "payvy", "203.0.113.7"),
        "{not json".to_string(),
        r#"{"ts":"2026-11-20T10:01:00Z","key":"payvy","method":"GET","status":200}"#.to_string(),
        event("2026-11-20T10:02:00Z", &raw, "203.0.113.7"),
        // far in the future: clock skew, rejected, the retention point does not move
        event("2031-01-01T00:00:00Z", "payvy", "203.0.113.7"),
        event("2026-11-20T10:03:00Z", "payvy", "203.0.113.7"),
        event("2026-11-20T10:03:00Z", "payvy", "203.0.113.7"), // a duplicate
        event("2026-11-20T10:04:00Z", "other", "198.51.100.4"),
    ]
    .join("\n");
    write(dir.path(), "events.jsonl", &text);
    let o = run(
        dir.path(),
        &["--format", "json", "usage", "ingest", "events.jsonl"],
    );
    assert!(code(&o) <= 1, "{}", stderr(&o));
    let r = json(&o);
    let u = &r["summary"]["usage"];
    assert_eq!(u["lines"], 8, "{u}");
    assert_eq!(u["rejected"], 3, "{u}");
    assert_eq!(u["future"], 1, "{u}");
    assert_eq!(u["new"], 3, "{u}");
    assert_eq!(u["duplicates"], 1, "{u}");
    assert_eq!(u["newest"], "2026-11-20T10:04:00Z", "{u}");
    let problems = r["summary"]["problems"].to_string();
    for want in ["events.jsonl:2:", "events.jsonl:3:", "events.jsonl:4:"] {
        assert!(problems.contains(want), "{want} in {problems}");
    }
    // the valid events are all stored
    let o = run(dir.path(), &["--format", "json", "usage", "stats"]);
    let st = json(&o);
    let keys = st["summary"]["usage"]["keys"].as_array().unwrap();
    let events: Vec<(String, u64)> = keys
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_string(),
                k["events"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![("other".to_string(), 1), ("payvy".to_string(), 2)]
    );
    crate::common::assert_nowhere(&raw, dir.path(), &[("usage ingest", &o)], &[]);
}

#[test]
fn a_growing_file_is_read_from_where_it_stopped_and_truncation_and_rotation_are_said() {
    let dir = tempdir();
    let day = |h: u32, m: u32| format!("2026-11-20T{h:02}:{m:02}:00Z");
    let first: String = (0..10)
        .map(|m| event(&day(9, m), "payvy", "203.0.113.7") + "\n")
        .collect();
    write(dir.path(), "app.log", &first);
    let r = ingest(dir.path(), &["app.log"]);
    assert_eq!(r["summary"]["usage"]["new"], 10);

    // grows, with a half-written last line: only whole new lines are read
    let more: String = (10..15)
        .map(|m| event(&day(9, m), "payvy", "203.0.113.7") + "\n")
        .collect();
    let partial = event(&day(9, 15), "payvy", "203.0.113.7");
    let (head, tail) = partial.split_at(40);
    write(dir.path(), "app.log", format!("{first}{more}{head}"));
    let r = ingest(dir.path(), &["app.log"]);
    let u = &r["summary"]["usage"];
    assert_eq!(u["lines"], 5, "{u}");
    assert_eq!(u["new"], 5, "{u}");
    assert_eq!(u["rejected"], 0, "{u}");
    assert!(
        u["sources"][0]["note"]
            .as_str()
            .unwrap()
            .contains("resumed"),
        "{u}"
    );
    // the line is finished: it is read whole
    write(
        dir.path(),
        "app.log",
        format!("{first}{more}{head}{tail}\n"),
    );
    let r = ingest(dir.path(), &["app.log"]);
    assert_eq!(r["summary"]["usage"]["new"], 1, "{r}");
    assert_eq!(r["summary"]["usage"]["rejected"], 0, "{r}");

    // truncated in place (same file, shorter): said, read from the start, nothing counted twice
    let path = dir.path().join("app.log");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    let shorter: String = (0..3)
        .map(|m| event(&day(10, m), "payvy", "203.0.113.7") + "\n")
        .collect();
    std::fs::write(&path, &shorter).unwrap();
    let r = ingest(dir.path(), &["app.log"]);
    let u = &r["summary"]["usage"];
    assert!(
        u["sources"][0]["note"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{u}"
    );
    assert_eq!(u["new"], 3, "{u}");
    let o = run(dir.path(), &["usage", "ingest", "app.log"]);
    assert!(stdout(&o).contains("unchanged"), "{}", stdout(&o));

    // rotated: the old file moves away, a new one takes its name
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    let newer: String = (0..4)
        .map(|m| event(&day(11, m), "payvy", "203.0.113.7") + "\n")
        .collect();
    write(dir.path(), "app.log", &newer);
    let r = ingest(dir.path(), &["app.log", "app.log.1"]);
    let u = &r["summary"]["usage"];
    assert!(
        u["sources"][0]["note"]
            .as_str()
            .unwrap()
            .contains("rotated"),
        "{u}"
    );
    assert_eq!(u["sources"][0]["new"], 4, "{u}");
    // the rotated file read again under its new name: nothing counted twice
    assert_eq!(u["sources"][1]["new"], 0, "{u}");
    assert_eq!(u["sources"][1]["duplicates"], 3, "{u}");
    let o = run(dir.path(), &["--format", "json", "usage", "stats"]);
    assert_eq!(json(&o)["summary"]["usage"]["keys"][0]["events"], 23);
}

#[test]
fn a_database_from_a_newer_awxguard_is_refused() {
    let dir = tempdir();
    write(
        dir.path(),
        "e.jsonl",
        event("2026-11-20T10:00:00Z", "payvy", "203.0.113.7") + "\n",
    );
    ingest(dir.path(), &["e.jsonl"]);
    let before = count_rows(dir.path(), "usage_events");
    set_schema_version(dir.path(), 99);
    write(
        dir.path(),
        "f.jsonl",
        event("2026-11-20T11:00:00Z", "payvy", "203.0.113.7") + "\n",
    );
    for args in [
        &["usage", "ingest", "f.jsonl"][..],
        &["usage", "stats"][..],
        &["usage", "anomalies"][..],
    ] {
        let o = run(dir.path(), args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stdout(&o));
        let e = stderr(&o);
        assert!(
            e.contains("newer") && e.contains("upgrade awxguard"),
            "{args:?}: {e}"
        );
    }
    let after = count_rows(dir.path(), "usage_events");
    assert_eq!(after, before, "nothing written to a newer database");
}

/// How a usage finding ends (findings contract): a rule-like `usage.*` finding whose calls
/// stopped is `fixed` (the condition is gone: nothing is calling from outside the whitelist any
/// more), not `aged-out`, which is for anomalies (incidents) quiet for `[usage] quiet`.
#[test]
fn a_quiet_usage_finding_is_resolved_fixed() {
    let dir = tempdir();
    write(
        dir.path(),
        "awxguard.toml",
        "[[key]]\nname = \"erp\"\nclient_id = \"erp-client\"\napi_key = \"env:K_ERP\"\n\
         environment = \"production\"\nkind = \"read_only\"\n\
         ip_whitelist = [\"198.51.100.0/24\"]\n",
    );
    let ingest = |file: &str, lines: &[String]| {
        write(dir.path(), file, lines.join("\n") + "\n");
        let o = crate::common::awxguard(dir.path())
            .env("AWXGUARD_CONFIG", dir.path().join("awxguard.toml"))
            .args([
                "--format",
                "json",
                "--fail-on",
                "critical",
                "usage",
                "ingest",
                file,
            ])
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
        json(&o)
    };
    // from inside the whitelist, then one call from outside it
    let mut first: Vec<String> = (1..=9)
        .map(|h| event(&format!("2026-11-10T{h:02}:00:00Z"), "erp", "198.51.100.7"))
        .collect();
    first.push(event("2026-11-10T10:00:00Z", "erp", "203.0.113.66"));
    // (an event is judged once [usage] lateness has passed after it)
    first.push(event("2026-11-10T11:00:00Z", "erp", "198.51.100.7"));
    let r = ingest("a.jsonl", &first);
    let outside: Vec<&serde_json::Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "usage.outside-whitelist")
        .collect();
    assert_eq!(outside.len(), 1, "{r:#}");
    let id = outside[0]["id"].as_str().unwrap().to_string();
    // ten days of calls from inside the whitelist only: the outside calls stopped
    let later: Vec<String> = (11..=20)
        .map(|d| event(&format!("2026-11-{d:02}T09:00:00Z"), "erp", "198.51.100.7"))
        .collect();
    let r = ingest("b.jsonl", &later);
    assert!(
        !r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == id.as_str()),
        "{r:#}"
    );
    let listed = run(
        dir.path(),
        &["--format", "json", "usage", "anomalies", "--all"],
    );
    let all = json(&listed);
    let stored = all["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed: {all:#}"));
    assert_eq!(stored["status"], "resolved", "{stored:#}");
    assert_eq!(stored["resolution"], "fixed", "{stored:#}");
}
