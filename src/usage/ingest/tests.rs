#[test]
fn rotated_copies_are_event_files_read_oldest_first_before_the_live_one() {
    let mut names = vec![
        "b.jsonl",
        "a.log.1",
        "a.log",
        "a.log.2",
        "a.log-20261203",
        "a.log.1.gz",
        "notes.txt",
        "a.log.x",
    ];
    names.retain(|n| super::files::event_file(n).is_some());
    names.sort_by_key(|n| super::files::event_file(n));
    assert_eq!(
        names,
        ["a.log-20261203", "a.log.2", "a.log.1", "a.log", "b.jsonl"]
    );
}

use super::*;

#[test]
fn borrowed_and_escaped_strings_parse() {
    let line = br#"{"ts":"2026-11-20T10:15:00Z","key":"pay\u0076y","method":"get","path":"/api/v1/transfers?x=1","status":200,"extra":[1,2]}"#;
    let ev: RawEvent<'_> = serde_json::from_slice(line).unwrap();
    assert_eq!(ev.key.as_str(), "payvy");
    assert!(matches!(ev.path.0, std::borrow::Cow::Borrowed(_)));
}

#[test]
fn times_with_offsets_and_fractions() {
    let a = parse_ts("2026-11-20T10:15:00Z").unwrap();
    let b = parse_ts("2026-11-20T18:15:00.000+08:00").unwrap();
    assert_eq!(a, b);
    assert!(parse_ts("2026-11-20T10:15:00.123456Z").is_some());
    assert!(parse_ts("2026-11-20T10:15:00+0000").is_some());
    assert!(parse_ts("20 Nov 2026").is_none());
}

#[test]
fn unknown_paths_group_ids() {
    assert_eq!(
        unknown_template("/api/v1/things/3f2a9c1e-0000/sub"),
        "/api/v1/things/{id}/sub"
    );
    assert_eq!(unknown_template("/api/v1/no_such"), "/api/v1/no_such");
}

#[test]
fn line_numbers_hold_across_small_blocks_and_long_lines() {
    let c = Catalog::builtin();
    let good = r#"{"ts":"2026-11-20T10:15:00Z","key":"k","method":"GET","path":"/api/v1/transfers","status":200,"user_agent":"UA"}"#;
    let long = good.replace("UA", &"x".repeat(500));
    let mut lines: Vec<String> = Vec::new();
    for i in 0..40 {
        lines.push(match i {
            7 | 23 => "{broken".to_string(),
            11 => long.clone(),
            _ => good.replace("10:15:00", &format!("10:{:02}:00", i)),
        });
    }
    let text = lines.join("\n"); // no newline at the end
    for block in [64, 100, 333, 1 << 20] {
        let seen = Seen::new(0);
        let mut p = Partial {
            name: "f".into(),
            ..Partial::default()
        };
        super::blocks::read_blocks(text.as_bytes(), &mut p, &c, &seen, block).unwrap();
        assert_eq!(p.rejected, 2, "block {block}");
        assert_eq!(p.problems.len(), 2);
        assert!(p.problems[0].starts_with("f:8: "), "{:?}", p.problems);
        assert!(p.problems[1].starts_with("f:24: "), "{:?}", p.problems);
        assert_eq!(p.valid, 38, "block {block}");
    }
}

#[test]
fn a_collector_fed_line_by_line_matches_the_reader() {
    let c = Catalog::builtin();
    let text = "{\"ts\":\"2026-11-20T10:15:00Z\",\"key\":\"k\",\"method\":\"GET\",\"path\":\"/api/v1/transfers\",\"status\":200}\nnope\n{\"ts\":\"2026-11-20T10:15:00Z\",\"key\":\"k\",\"method\":\"GET\",\"path\":\"/api/v1/transfers\",\"status\":200}";
    let mut col = Collector::new("proxy", &c);
    for l in text.lines() {
        col.push_line(l.as_bytes());
    }
    let a = col.finish();
    let b = read_text("proxy", text, &c);
    assert_eq!(a, b);
    assert_eq!(a.rejected, 1);
    assert_eq!(a.duplicates, 1);
    assert_eq!(
        a.problems,
        ["proxy:2: not valid JSON: expected ident at line 1 column 2"]
    );
}

#[test]
fn hex_runs_are_redacted() {
    let k = "ab".repeat(48);
    let m = super::parse::redact_hex_runs(&format!("invalid type: string \"{k}\", expected u16"));
    assert!(!m.contains(&k[..32]));
    assert!(m.contains("[redacted abab…abab sha256:"), "{m}");
    let m = super::parse::redact_hex_runs(&format!("got {}", &k[..36]));
    assert_eq!(m, "got <redacted>");
    assert_eq!(
        super::parse::redact_hex_runs("line 12 column 3"),
        "line 12 column 3"
    );
}
