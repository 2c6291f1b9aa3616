//! The usage-event reader through the library API: bad lines rejected with file and line and
//! counted while the rest is kept, duplicates dropped across sources, order not mattering,
//! directories and routes the catalog does not know.

use crate::common::{key, tempdir, write};
use awxguard::privilege::Catalog;
use awxguard::usage::read_evidence;
use std::path::PathBuf;

fn line(ts: &str, key: &str, method: &str, path: &str, status: u16) -> String {
    format!(
        r#"{{"ts":"{ts}","key":"{key}","method":"{method}","path":"{path}","status":{status},"source_ip":"203.0.113.7","host":"api.airwallex.com"}}"#
    )
}

#[test]
fn bad_lines_are_rejected_with_file_and_line_and_the_rest_is_kept() {
    let dir = tempdir();
    let raw = key("usage-raw-key");
    let text = [
        line("2026-11-20T10:15:00Z", "payvy", "GET", "/api/v1/transfers", 200),
        "{not json".to_string(),
        r#"{"ts":"2026-11-20T10:16:00Z","key":"payvy","method":"GET","status":200}"#.to_string(),
        r#"{"ts":"2026-11-20T10:16:00Z","key":"payvy","method":"GET","path":"/api/v1/transfers","status":"200"}"#.to_string(),
        line("2026-11-20T10:17:00Z", &raw, "GET", "/api/v1/transfers", 200),
        line("yesterday", "payvy", "GET", "/api/v1/transfers", 200),
        String::new(),
        line("2026-11-20T10:18:00.250+08:00", "payvy", "post", "/api/v1/transfers/create?dry=1", 201),
    ]
    .join("\n");
    write(dir.path(), "events.jsonl", &text);
    let ev = read_evidence(&[dir.path().join("events.jsonl")], &Catalog::builtin()).unwrap();
    assert_eq!(ev.rejected, 5, "{:?}", ev.problems);
    assert_eq!(ev.events, 2);
    let problems = ev.problems.join("\n");
    assert!(
        problems.contains("events.jsonl:2: not valid JSON"),
        "{problems}"
    );
    assert!(
        problems.contains("events.jsonl:3: not a usage event: missing field `path`"),
        "{problems}"
    );
    assert!(
        problems.contains("events.jsonl:4: not a usage event: invalid type"),
        "{problems}"
    );
    assert!(
        problems.contains("events.jsonl:5: field `key` holds what looks like an API key or token"),
        "{problems}"
    );
    assert!(
        problems.contains("events.jsonl:6: field `ts`"),
        "{problems}"
    );
    crate::common::assert_no_secret(&problems, &raw, "rejection messages");
    let u = &ev.keys["payvy"];
    assert_eq!(u.events, 2);
    let create = &u.routes["POST /api/v1/transfers/create"];
    assert_eq!(create.scope.as_deref(), Some("transfer:write"));
    assert_eq!(create.ok, 1);
    assert!(u.scopes_used.contains_key("transfer:read"));
    assert_eq!(u.hosts["api.airwallex.com"], 2);
    assert_eq!(u.source_ips["203.0.113.7"], 2);
}

#[test]
fn ingesting_the_same_file_twice_counts_nothing_twice() {
    let dir = tempdir();
    let text = [
        line(
            "2026-11-20T10:15:00Z",
            "payvy",
            "GET",
            "/api/v1/transfers",
            200,
        ),
        line(
            "2026-11-20T10:16:00Z",
            "payvy",
            "GET",
            "/api/v1/transfers",
            200,
        ),
        // the same event as the first, with another offset and a query string
        line(
            "2026-11-20T18:15:00+08:00",
            "payvy",
            "get",
            "/api/v1/transfers?page_size=10",
            200,
        ),
    ]
    .join("\n");
    write(dir.path(), "a.jsonl", &text);
    write(dir.path(), "copy/a.ndjson", &text);
    let p = dir.path().join("a.jsonl");
    let ev = read_evidence(
        &[p.clone(), p.clone(), dir.path().join("copy")],
        &Catalog::builtin(),
    )
    .unwrap();
    assert_eq!(ev.events, 2);
    assert_eq!(ev.duplicates, 7);
    assert_eq!(ev.keys["payvy"].events, 2);
    assert_eq!(ev.keys["payvy"].routes["GET /api/v1/transfers"].count, 2);
    assert_eq!(ev.sources.len(), 3);
    assert!(ev.sources.iter().all(|s| s.events == 3));
}

#[test]
fn out_of_order_events_give_the_same_evidence() {
    let dir = tempdir();
    let mut lines = [
        line(
            "2026-09-01T00:00:00Z",
            "erp",
            "GET",
            "/api/v1/balances/current",
            200,
        ),
        line(
            "2026-11-20T10:15:00Z",
            "erp",
            "GET",
            "/api/v1/transfers/3f2a9c1e-0000-4000-8000-1234567890ab",
            200,
        ),
        line(
            "2026-10-01T00:00:00Z",
            "erp",
            "POST",
            "/api/v1/beneficiaries/create",
            201,
        ),
    ];
    write(dir.path(), "sorted.jsonl", lines.join("\n"));
    lines.reverse();
    write(dir.path(), "reversed/x.jsonl", lines.join("\n"));
    let c = Catalog::builtin();
    let a = read_evidence(&[dir.path().join("sorted.jsonl")], &c).unwrap();
    let b = read_evidence(&[dir.path().join("reversed")], &c).unwrap();
    assert_eq!(a.keys, {
        let mut k = b.keys.clone();
        // the two runs read different files; everything else must match
        for u in k.values_mut() {
            u.coverage_start = a.keys[&u.key].coverage_start;
        }
        k
    });
    let u = &a.keys["erp"];
    assert_eq!(u.first_seen.to_rfc3339(), "2026-09-01T00:00:00+00:00");
    assert_eq!(u.last_seen.to_rfc3339(), "2026-11-20T10:15:00+00:00");
    assert_eq!(u.coverage_start, u.first_seen);
    assert!(u.routes.contains_key("GET /api/v1/transfers/{id}"));
}

#[test]
fn a_directory_gives_its_event_files_and_coverage_is_per_source() {
    let dir = tempdir();
    write(
        dir.path(),
        "logs/old.jsonl",
        line(
            "2026-08-01T00:00:00Z",
            "other",
            "GET",
            "/api/v1/account",
            200,
        ),
    );
    write(
        dir.path(),
        "logs/new.log",
        [
            line(
                "2026-11-01T00:00:00Z",
                "payvy",
                "GET",
                "/api/v1/account",
                200,
            ),
            line(
                "2026-11-02T00:00:00Z",
                "other",
                "GET",
                "/api/v1/account",
                200,
            ),
        ]
        .join("\n"),
    );
    write(dir.path(), "logs/README.md", "not events");
    write(dir.path(), "logs/.hidden.jsonl", "garbage");
    let ev = read_evidence(&[dir.path().join("logs")], &Catalog::builtin()).unwrap();
    assert_eq!(ev.rejected, 0, "{:?}", ev.problems);
    assert_eq!(ev.sources.len(), 2);
    assert_eq!(
        ev.keys["payvy"].coverage_start.to_rfc3339(),
        "2026-11-01T00:00:00+00:00"
    );
    assert_eq!(
        ev.keys["other"].coverage_start.to_rfc3339(),
        "2026-08-01T00:00:00+00:00"
    );
}

#[test]
fn unknown_routes_are_reported_as_unknown_never_mapped() {
    let dir = tempdir();
    write(
        dir.path(),
        "e.jsonl",
        line(
            "2026-11-20T10:15:00Z",
            "payvy",
            "GET",
            "/api/v1/no_such_thing/abc123456",
            200,
        ),
    );
    let ev = read_evidence(&[dir.path().join("e.jsonl")], &Catalog::builtin()).unwrap();
    let u = &ev.keys["payvy"];
    let r = &u.routes["GET /api/v1/no_such_thing/{id}"];
    assert_eq!(r.scope, None);
    assert!(u.scopes_used.is_empty());
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let e = read_evidence(
        &[PathBuf::from("/no/such/usage.jsonl")],
        &Catalog::builtin(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("/no/such/usage.jsonl"), "{e}");
}

#[test]
fn a_large_file_read_in_parallel_keeps_exact_line_numbers_and_counts() {
    let dir = tempdir();
    let mut text = String::new();
    for i in 1..=9000u32 {
        if i == 3 || i == 4500 || i == 8999 {
            text.push_str("not json at all\n");
        } else {
            let ts = format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}Z",
                1 + i % 20,
                i % 24,
                (i / 24) % 60,
                i % 60
            );
            text.push_str(&line(
                &ts,
                &format!("k{}", i % 7),
                "GET",
                "/api/v1/transfers",
                200,
            ));
            text.push_str(&format!("{:80}\n", ""));
        }
    }
    assert!(text.len() > 1 << 20, "{}", text.len());
    write(dir.path(), "big.jsonl", &text);
    let ev = read_evidence(&[dir.path().join("big.jsonl")], &Catalog::builtin()).unwrap();
    assert_eq!(ev.rejected, 3);
    let lines: Vec<&str> = ev
        .problems
        .iter()
        .map(|p| {
            p.rsplit_once("big.jsonl:")
                .unwrap()
                .1
                .split(':')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(lines, ["3", "4500", "8999"]);
    let total: u64 = ev.keys.values().map(|u| u.events).sum();
    assert_eq!(total + ev.duplicates, 8997);
    assert_eq!(ev.sources[0].events, 8997);
}

#[test]
fn rejected_messages_are_capped_and_the_count_stays_exact() {
    let dir = tempdir();
    let mut text = String::new();
    for i in 0..150 {
        text.push_str(&format!("{{\"ts\": {i}}}\n"));
    }
    text.push_str(&line(
        "2026-11-20T10:15:00Z",
        "payvy",
        "GET",
        "/api/v1/account",
        200,
    ));
    write(dir.path(), "bad.jsonl", &text);
    let ev = read_evidence(&[dir.path().join("bad.jsonl")], &Catalog::builtin()).unwrap();
    assert_eq!(ev.rejected, 150);
    assert_eq!(ev.problems.len(), awxguard::usage::ingest::MAX_PROBLEMS);
    assert_eq!(ev.events, 1);
}

/// A directory of logs rotated the logrotate way (`app.jsonl` → `app.jsonl.1` → `app.jsonl.2`)
/// between ingests: the lines written just before each rotation are read from the renamed copy
/// where the live file stopped, nothing is read twice, and nothing is lost.
#[test]
fn a_rotated_directory_loses_no_line_and_reads_none_twice() {
    use crate::common::{code, json, run, stderr};
    let dir = tempdir();
    let d = dir.path();
    let mut n = 0;
    let mut lines = |count: usize| -> String {
        (0..count)
            .map(|_| {
                n += 1;
                let ts = format!("2026-11-20T{:02}:{:02}:00Z", n / 60, n % 60);
                line(&ts, "payvy", "GET", "/api/v1/balances/current", 200) + "\n"
            })
            .collect()
    };
    let ingest = |d: &std::path::Path| {
        let o = run(d, &["--format", "json", "usage", "ingest", "logs"]);
        assert!(code(&o) <= 1, "{}", stderr(&o));
        json(&o)["summary"]["usage"].clone()
    };
    let logs = d.join("logs");
    let app = logs.join("app.jsonl");
    write(d, "logs/app.jsonl", lines(10));
    assert_eq!(ingest(d)["new"], 10);

    // three lines the ingest has not seen, then the rotation
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str(&lines(3));
    std::fs::write(&app, &text).unwrap();
    std::fs::rename(&app, logs.join("app.jsonl.1")).unwrap();
    write(d, "logs/app.jsonl", lines(4));
    let u = ingest(d);
    assert_eq!(
        (u["new"].as_u64(), u["duplicates"].as_u64()),
        (Some(7), Some(0)),
        "{u:#}"
    );
    // the renamed copy is read first, from where the live file stopped
    assert!(
        u["sources"][0]["source"]
            .as_str()
            .unwrap()
            .ends_with("app.jsonl.1"),
        "{u:#}"
    );
    assert_eq!(u["sources"][0]["new"], 3, "{u:#}");
    assert!(
        u["sources"][0]["note"]
            .as_str()
            .unwrap()
            .contains("resumed at byte"),
        "{u:#}"
    );

    // the next rotation: .1 becomes .2, the live file .1, two lines it had not given yet
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str(&lines(2));
    std::fs::write(&app, &text).unwrap();
    std::fs::rename(logs.join("app.jsonl.1"), logs.join("app.jsonl.2")).unwrap();
    std::fs::rename(&app, logs.join("app.jsonl.1")).unwrap();
    write(d, "logs/app.jsonl", lines(1));
    let u = ingest(d);
    assert_eq!(
        (u["new"].as_u64(), u["duplicates"].as_u64()),
        (Some(3), Some(0)),
        "{u:#}"
    );
    let names: Vec<&str> = u["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert!(
        names[0].ends_with("app.jsonl.2")
            && names[1].ends_with("app.jsonl.1")
            && names[2].ends_with("app.jsonl"),
        "oldest first: {names:?}"
    );
    // nothing changed: nothing read
    let u = ingest(d);
    assert_eq!(
        (u["lines"].as_u64(), u["new"].as_u64()),
        (Some(0), Some(0)),
        "{u:#}"
    );
}
