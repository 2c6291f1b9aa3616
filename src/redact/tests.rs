//! The gate's unit tests: shapes, held secrets, terminals, the writer.

use super::*;
use std::io::Write;

fn key(seed: u8) -> String {
    let d = sha2::Sha384::digest([seed]);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn long_hex_runs_go_commit_ids_stay() {
    let k = key(1);
    let s = format!("key {k} here");
    let out = scrub(&s);
    assert!(!out.contains(&k[..41]), "{out}");
    assert!(out.contains(&placeholder(&k)), "{out}");
    let commit = &k[..40];
    assert_eq!(
        scrub(&format!("commit {commit}")),
        format!("commit {commit}")
    );
    assert_eq!(scrub("id 0123456789abcdef ok"), "id 0123456789abcdef ok");
    // Upper case: the fingerprint is the key's (lower case) one.
    let up = scrub(&k.to_uppercase()).into_owned();
    assert_eq!(up, placeholder(&k));
}

#[test]
fn wrapped_and_split_keys() {
    let k = key(2);
    for s in [
        format!("{} {}", &k[..48], &k[48..]),
        format!("{}\n{}", &k[..64], &k[64..]),
        format!("{}\\n{}", &k[..64], &k[64..]),
        format!("{} {} {}", &k[..32], &k[32..64], &k[64..]),
        format!("{} {}", &k[..30], &k[30..]),
    ] {
        let out = scrub(&s);
        assert_eq!(out, placeholder(&k), "{s}");
    }
    // Two commit ids side by side stay.
    let two = format!("{} {}", &k[..40], &k[40..80]);
    assert_eq!(scrub(&two), two);
}

#[test]
fn bearer_jwt_and_key_values() {
    let s = "Authorization: Bearer abcDEF123456ghiJKL789";
    let out = scrub(s);
    assert!(
        out.starts_with("Authorization: Bearer [redacted abcD…L789 sha256:"),
        "{out}"
    );
    assert_eq!(
        scrub("uses Bearer authentication"),
        "uses Bearer authentication"
    );
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let out = scrub(&format!("token {jwt}!")).into_owned();
    assert!(!out.contains("eyJzdWIi"), "{out}");
    assert!(out.ends_with("]!"), "{out}");
    let out = scrub(r#"{"password": "s3cretValue12345678", "n": 1}"#);
    assert!(!out.contains("s3cretValue"), "{out}");
    assert_eq!(
        scrub(r#""token": "2026-11-20T10:15:00Z""#),
        r#""token": "2026-11-20T10:15:00Z""#
    );
    assert_eq!(
        scrub("max_token=abcdefgh12345678"),
        "max_token=abcdefgh12345678"
    );
    // Any ASCII case and Unicode spacing still match (the byte checks before the patterns
    // only skip text that cannot match).
    for s in [
        "BASIC\u{a0}QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "X-API-KEY\u{2003}= Zm9vYmFyYmF6cXV4MTIzNDU2",
        "Client_Secret:'abcdefgh12345678'",
        "PASSWD =abcdefgh12345678",
    ] {
        let out = scrub(s);
        assert!(out.contains("[redacted "), "{s}: {out}");
    }
}

#[test]
fn held_secrets_are_found_by_any_window_case_and_base64() {
    let secret = "Zq9-not-hex-at-all_but_a_password_1234567890";
    hold(secret);
    let label = placeholder(secret);
    let window = &secret[7..7 + MIN_WINDOW];
    let out = scrub(&format!("x {window} y")).into_owned();
    assert_eq!(out, format!("x {label} y"));
    let out = scrub(&secret.to_uppercase()).into_owned();
    assert_eq!(out, label);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("pw={secret}"));
    let out = scrub(&b64);
    assert!(out.contains("[redacted"), "{out}");
    assert!(!out.contains(&b64[8..40]), "{out}");
    // A 40-hex window of a held key (not a hex run over 40) is found by memory.
    let k = key(3);
    hold(&k);
    let w = &k[20..60];
    assert_eq!(scrub(&format!("[{w}]")), format!("[{}]", placeholder(&k)));
    assert!(held_count() >= 2);
}

#[test]
fn holds_key_sees_keys_in_any_form() {
    let k = key(4);
    for v in [
        k.clone(),
        format!("Bearer {k}"),
        format!("{} {}", &k[..48], &k[48..]),
        format!("{}-{}-{}", &k[..20], &k[20..50], &k[50..]),
        format!(" {}\n{} ", &k[..10], &k[10..]),
        "Bearer sometokenvalue".to_string(),
    ] {
        assert!(holds_key(&v), "{v}");
    }
    for v in [
        "payvy-ap",
        "sha256:0123456789abcdef",
        "reporting key 2026",
        "",
    ] {
        assert!(!holds_key(v), "{v}");
    }
}

#[test]
fn terminal_escapes_controls() {
    assert_eq!(terminal("a\nb\x1b[2Jc"), "a\\nb\\u{1b}[2Jc");
    assert_eq!(terminal("plain"), "plain");
    assert_eq!(
        terminal_lines("\x1b[31mred\x1b[0m\x1b]0;title\x07\n", true),
        "\x1b[31mred\x1b[0m\\u{1b}]0;title\\u{7}\n"
    );
    assert_eq!(terminal_lines("\x1b[31m", false), "\\u{1b}[31m");
}

#[test]
fn json_values_are_scrubbed_in_place() {
    let k = key(5);
    let mut v = serde_json::json!({"a": [k.clone()], k.clone(): 1, "n": 2});
    scrub_json(&mut v);
    let s = v.to_string();
    assert!(!s.contains(&k[..41]), "{s}");
}

#[test]
fn writer_scrubs() {
    let k = key(6);
    let mut w = Scrubbing::for_terminal(Vec::new(), false);
    w.write_all(format!("key={k}\x1b[2J\n").as_bytes()).unwrap();
    let s = String::from_utf8(w.into_inner()).unwrap();
    assert!(!s.contains(&k[..41]));
    assert!(s.ends_with("\\u{1b}[2J\n"), "{s}");
}

#[test]
fn scrub_is_idempotent_and_borrows_clean_text() {
    let k = key(7);
    let once = scrub(&format!("a {k} Bearer xyzXYZ1234567890 b")).into_owned();
    assert_eq!(scrub(&once), once);
    let big = "lorem ipsum dolor sit amet 0123 ".repeat(200_000);
    // Speed is measured by bench scripts, not asserted by a timed test.
    assert!(matches!(scrub(&big), Cow::Borrowed(_)));
}
