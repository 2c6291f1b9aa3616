//! Issue 17: no key in clear through any door. Each test puts a generated key where a user (or
//! a hostile input) could put it and greps every output, the `-vv` log, the reports and the
//! database with its WAL for any 40-character window of it.

use crate::common::*;
use crate::inventory::{airwallex_section, key_table, sim_key, spawn};
use awxguard::airwallex::simulator::Behaviour;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `args` in `dir` with `-vv` (and the key in the environment as `LEAK_KEY`).
fn run_vv(dir: &Path, secret: &str, args: &[&str]) -> Output {
    awxguard(dir)
        .args(args)
        .arg("-vv")
        .env("LEAK_KEY", secret)
        .output()
        .unwrap()
}

/// Every command a config reaches, each checked for the key.
fn every_command(dir: &Path, secret: &str, what: &str) -> Vec<Output> {
    let reports = [dir.join("report.json"), dir.join("report.html")];
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("inventory json", vec!["inventory", "--format", "json"]),
        ("inventory human", vec!["inventory"]),
        ("audit", vec!["audit", "--no-verify", "--format", "json"]),
        ("audit human", vec!["audit", "--no-verify"]),
        (
            "audit sarif -o",
            vec![
                "audit",
                "--no-verify",
                "--format",
                "sarif",
                "-o",
                "report.json",
            ],
        ),
        ("findings list", vec!["findings", "list"]),
        (
            "report html -o",
            vec!["report", "--format", "html", "-o", "report.html"],
        ),
        ("report json", vec!["report", "--format", "json"]),
        (
            "daemon --check",
            vec!["daemon", "--config", "awxguard.toml", "--check"],
        ),
        ("scan", vec!["scan", "--format", "json", "src"]),
    ];
    let mut outs = Vec::new();
    for (n, (name, args)) in runs.into_iter().enumerate() {
        // A config that does not load fails every command the same way: the first and the scan
        // (which reads only `[scan]`) say all there is.
        if n > 0 && code(&outs[0]) == 2 && name != "scan" {
            continue;
        }
        let o = run_vv(dir, secret, &args);
        assert_nowhere(secret, dir, &[(&format!("{what}: {name}"), &o)], &reports);
        assert!(
            !stderr(&o).contains("panicked"),
            "{what}: {name} panicked: {}",
            stderr(&o)
        );
        outs.push(o);
    }
    outs
}

/// A key typed into any config field (or as a field name, or in `env:`), in every section:
/// errors about it, reports, logs and the database never show it.
#[test]
fn a_key_in_any_config_field_is_never_echoed() {
    let k = key("config-door");
    let good = |extra: &str| key_table("payvy", "env:LEAK_KEY", "production", "admin", extra);
    let variants: Vec<(&str, String)> = vec![
        (
            "name",
            key_table(&k, "env:LEAK_KEY", "production", "admin", ""),
        ),
        ("client_id", good("").replace(&client_id("payvy"), &k)),
        (
            "env: name",
            key_table("a", &format!("env:{k}"), "production", "admin", ""),
        ),
        (
            "env: prefixed",
            key_table("a", &format!("env:X{k}"), "production", "admin", ""),
        ),
        ("literal", key_table("a", &k, "production", "admin", "")),
        (
            "file:",
            key_table("a", &format!("file:{k}"), "production", "admin", ""),
        ),
        (
            "unknown ref",
            key_table("a", &format!("vault:{k}"), "production", "admin", ""),
        ),
        (
            "environment",
            key_table("a", "env:LEAK_KEY", &k, "admin", ""),
        ),
        ("kind", key_table("a", "env:LEAK_KEY", "production", &k, "")),
        (
            "scopes",
            key_table(
                "a",
                "env:LEAK_KEY",
                "production",
                "custom",
                &format!("scopes = [\"{k}\"]"),
            ),
        ),
        ("owner", good(&format!("owner = \"{k}\""))),
        ("purpose", good(&format!("purpose = \"{k}\""))),
        ("integration", good(&format!("integration = \"{k}\""))),
        ("consumers", good(&format!("consumers = [\"{k}\"]"))),
        ("ip_whitelist", good(&format!("ip_whitelist = [\"{k}\"]"))),
        ("created", good(&format!("created = \"{k}\""))),
        ("rotated", good(&format!("rotated = \"{k}\""))),
        ("unknown key field", good(&format!("{k} = 1"))),
        (
            "unknown key field quoted",
            good(&format!("\"x{k}\" = \"y\"")),
        ),
        ("unknown section", format!("[{k}]\nx = 1\n")),
        ("scan disable", format!("[scan]\ndisable = [\"{k}\"]\n")),
        ("scan rules", format!("[scan]\nrules = [\"{k}\"]\n")),
        ("scan unknown field", format!("[scan]\n{k} = true\n")),
        ("audit disable", format!("[audit]\ndisable = [\"{k}\"]\n")),
        ("audit usage", format!("[audit]\nusage = [\"{k}.jsonl\"]\n")),
        ("audit params", format!("[audit.params.{k}]\nx = 1\n")),
        ("base_url", format!("[airwallex]\nbase_url = \"{k}\"\n")),
        (
            "base_url host",
            format!("[airwallex]\nbase_url = \"https://{k}.example.com\"\n"),
        ),
        (
            "base_url path",
            format!("[airwallex]\nbase_url = \"http://127.0.0.1:9/{k}\"\n"),
        ),
        (
            "allow_hosts",
            format!("[airwallex]\nallow_hosts = [\"{k}\"]\n"),
        ),
        ("store path", format!("[store]\npath = \"{k}/x.db\"\n")),
        ("proxy upstream", format!("[proxy]\nupstream = \"{k}\"\n")),
        (
            "alerts from",
            format!("[alerts]\nfrom = \"{k}\"\nfallback = [\"{k}@x.example\"]\n"),
        ),
        ("toml syntax", format!("x = \"{k}")),
    ];
    // Four at a time: each is a handful of short runs of the binary.
    std::thread::scope(|s| {
        for chunk in variants.chunks(variants.len().div_ceil(4)) {
            let k = &k;
            s.spawn(move || {
                for (what, config) in chunk {
                    let dir = tempdir();
                    write(dir.path(), "awxguard.toml", config);
                    write(dir.path(), "src/readme.txt", "nothing here\n");
                    every_command(dir.path(), k, what);
                }
            });
        }
    });
}

/// A usage event whose `key` holds a key in any form is rejected (said, never echoed); a key
/// in any other string field never reaches a report, a log or the database.
#[test]
fn a_key_in_any_usage_event_field_is_rejected_or_redacted() {
    let k = key("usage-door");
    let dir = tempdir();
    write(
        dir.path(),
        "awxguard.toml",
        key_table("payvy", "env:LEAK_KEY", "production", "admin", ""),
    );
    let ev = |key_field: &str, extra: &str| {
        let key_json = serde_json::to_string(key_field).unwrap();
        format!(
            "{{\"ts\":\"2026-11-20T10:15:00Z\",\"key\":{key_json},\"method\":\"GET\",\"path\":\"/api/v1/balances/current\",\"status\":200{extra}}}\n"
        )
    };
    let bad_keys = [
        k.clone(),
        format!(" {k} "),
        format!("Bearer {k}"),
        format!("bearer  {}", k.to_uppercase()),
        format!("{} {}", &k[..48], &k[48..]),
        format!("{}\n{}", &k[..64], &k[64..]),
        format!("{}-{}-{}-{}", &k[..24], &k[24..48], &k[48..72], &k[72..]),
        format!("payvy {k}"),
        format!("key={k}"),
    ];
    let mut text = String::new();
    for b in &bad_keys {
        text.push_str(&ev(b, ""));
    }
    let fields = [
        format!(",\"user_agent\":\"curl {k}\""),
        format!(",\"user_agent\":\"Bearer {k}\""),
        format!(",\"host\":\"{k}.example.com\""),
        format!(",\"account_id\":\"{k}\""),
        format!(",\"source_ip\":\"{k}\""),
        format!(",\"via\":\"{k}\""),
        format!(",\"object_ids\":[\"{k}\"]"),
        format!(",\"extra\":\"{k}\""),
    ];
    for f in &fields {
        text.push_str(&ev("payvy", f));
    }
    // Bad values in the required fields, echoed in rejections.
    text.push_str(&ev("payvy", "").replace("\"GET\"", &format!("\"{k}\"")));
    text.push_str(&ev("payvy", "").replace("2026-11-20T10:15:00Z", &k));
    text.push_str(&ev("payvy", "").replace(
        "/api/v1/balances/current",
        &format!("/api/v1/transfers/{k}"),
    ));
    text.push_str(&ev("payvy", "").replace("/api/v1/balances/current", &k));
    text.push_str(&ev("payvy", "").replace("\"status\":200", &format!("\"status\":\"{k}\"")));
    text.push_str(&format!("{{\"{k}\": 1}}\n"));
    text.push_str(&format!("not json {k}\n"));
    write(dir.path(), "events.jsonl", &text);
    let o = run_vv(
        dir.path(),
        &k,
        &[
            "audit",
            "--no-verify",
            "--usage",
            "events.jsonl",
            "--format",
            "json",
        ],
    );
    assert!(code(&o) <= 1, "{}", stderr(&o));
    let r = json(&o);
    let all = r.to_string();
    for n in 1..=bad_keys.len() {
        assert!(
            all.contains(&format!(
                "events.jsonl:{n}: field `key` holds what looks like an API key"
            )),
            "line {n} is rejected: {all}"
        );
    }
    let human = run_vv(
        dir.path(),
        &k,
        &["audit", "--no-verify", "--usage", "events.jsonl"],
    );
    let inv = run_vv(
        dir.path(),
        &k,
        &["inventory", "--usage", "events.jsonl", "--format", "json"],
    );
    assert_nowhere(
        &k,
        dir.path(),
        &[
            ("audit json", &o),
            ("audit human", &human),
            ("inventory", &inv),
        ],
        &[],
    );
}

/// Server answers that echo what they were sent (the key in a header, a token in the body) and
/// token permission strings never reach a report, log or row in clear.
#[test]
fn echoing_servers_and_token_permissions_never_leak_the_key() {
    let k = key("server-door");
    // A token whose permissions carry the key.
    let mut live = sim_key("payvy", "server-door", Behaviour::Live);
    live.permissions = vec![format!("r:awx:{k}:*"), "r:awx:transfer:*".into()];
    let sim = spawn(vec![live]);
    let dir = tempdir();
    write(
        dir.path(),
        "awxguard.toml",
        format!(
            "{}{}",
            airwallex_section(&sim.url()),
            key_table("payvy", "env:LEAK_KEY", "production", "admin", "")
        ),
    );
    let mut outs = Vec::new();
    for args in [
        vec!["inventory", "verify", "--format", "json"],
        vec!["audit", "--format", "json"],
        vec!["audit"],
    ] {
        outs.push(run_vv(dir.path(), &k, &args));
    }
    let named: Vec<(&str, &Output)> = outs.iter().map(|o| ("token permissions", o)).collect();
    assert_nowhere(&k, dir.path(), &named, &[]);

    // A login server that echoes every request header and the key in its error message.
    let echo = echo_server();
    let dir = tempdir();
    write(
        dir.path(),
        "awxguard.toml",
        format!(
            "{}{}",
            airwallex_section(&echo),
            key_table("payvy", "env:LEAK_KEY", "production", "admin", "")
        ),
    );
    let mut outs = Vec::new();
    for args in [
        vec!["inventory", "verify", "--format", "json"],
        vec!["audit", "--format", "json"],
        vec!["audit"],
    ] {
        let o = run_vv(dir.path(), &k, &args);
        assert!(code(&o) <= 2, "{}", stderr(&o));
        outs.push(o);
    }
    let named: Vec<(&str, &Output)> = outs.iter().map(|o| ("echo server", o)).collect();
    assert_nowhere(&k, dir.path(), &named, &[]);
    // The answer is still reported (redacted), not dropped.
    assert!(
        stdout(&outs[0]).contains("[redacted"),
        "{}",
        stdout(&outs[0])
    );
}

/// A loopback server answering every request 401 with a body that echoes the request headers
/// (the key among them) in Airwallex's error shape, plus a bearer token and a JWT.
fn echo_server() -> String {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    headers.push(line.trim().to_string());
                    line.clear();
                }
                let echoed = headers.join("; ");
                let body = serde_json::json!({
                    "code": format!("bad_key {echoed}"),
                    "message": format!("you sent {echoed}; Authorization: Bearer abcDEF0123456789xyzXYZ"),
                })
                .to_string();
                let _ = write!(
                    s,
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nx-echo: {}\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    echoed.replace(['\r', '\n'], " "),
                    body.len()
                );
            });
        }
    });
    url
}

/// A file named after a key, holding a key: the scan reports it without the name in clear.
#[test]
fn a_file_named_after_a_key_is_reported_without_it() {
    let k = key("file-door");
    let dir = tempdir();
    write(
        dir.path(),
        &format!("src/{k}.env"),
        format!("AIRWALLEX_API_KEY={k}\n"),
    );
    write(
        dir.path(),
        &format!("src/{}/x.txt", &k[..48]),
        format!("key: {k}\n"),
    );
    let mut outs = Vec::new();
    for args in [
        vec!["scan", "src", "--format", "json"],
        vec!["scan", "src"],
        vec!["scan", "src", "--format", "sarif"],
        vec!["scan", "src", "--record", "--format", "json"],
        vec!["findings", "list", "--format", "json"],
    ] {
        let o = run_vv(dir.path(), &k, &args);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        outs.push(o);
    }
    let named: Vec<(&str, &Output)> = outs.iter().map(|o| ("scan", o)).collect();
    assert_nowhere(&k, dir.path(), &named, &[]);
}

/// Names with newlines and terminal escapes are shown escaped in human output; JSON keeps them
/// exact.
#[test]
fn names_with_newlines_and_escapes_are_escaped_for_people_exact_in_json() {
    let dir = tempdir();
    write(
        dir.path(),
        "awxguard.toml",
        key_table(
            "evil\\nname\\u001b]0;pwned\\u0007",
            "env:NOT_SET",
            "production",
            "admin",
            "owner = \"a\\u001b[2Jb\"",
        ),
    );
    let human = run(dir.path(), &["inventory"]);
    let text = stdout(&human);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains("evil\\nname\\u{1b}]0;pwned\\u{7}"), "{text}");
    let j = run(dir.path(), &["inventory", "--format", "json"]);
    let v = json(&j);
    assert_eq!(
        v["summary"]["keys"][0]["name"],
        "evil\nname\u{1b}]0;pwned\u{7}"
    );
    let audit = run(dir.path(), &["audit", "--no-verify"]);
    let text = stdout(&audit) + &stderr(&audit);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
}

/// The gate's choke points stay choke points: the store binds through its redacting `params!`,
/// and nothing in `src/` prints with `println!`/`eprintln!` (use `say!`/`tell!`).
#[test]
fn every_door_goes_through_the_gate() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    walk(&src, &mut files);
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // Test modules may print and bind as they like.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        for (n, line) in code.lines().enumerate() {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            if (l.contains("println!(") || l.contains("print!(")) && !rel.starts_with("redact") {
                problems.push(format!("src/{rel}:{}: print through say!/tell!", n + 1));
            }
            let names_params = l.contains("rusqlite::params")
                || (l.starts_with("use rusqlite::{")
                    && l.split(['{', '}', ',', ' ']).any(|w| w == "params"));
            if rel.starts_with("store") && names_params {
                problems.push(format!(
                    "src/{rel}:{}: bind with super::params (the redacting one)",
                    n + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The database and what awxguard writes are owner-only; a database others can read is said;
/// a `--db` in a directory that does not exist, or another application's SQLite file, is
/// refused; read-only commands work on a read-only database.
#[test]
fn the_database_is_private_and_only_ours_and_read_only_commands_only_read() {
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "src/a.env",
        format!("AIRWALLEX_API_KEY={}\n", key("private")),
    );
    let db = d.join("data/awx.db");
    let dbs = db.to_str().unwrap();
    // A --db in a directory that does not exist: an error, no directory made.
    let o = run(d, &["scan", "src", "--record", "--db", dbs]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("the directory for the database does not exist"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("data").exists());
    std::fs::create_dir(d.join("data")).unwrap();
    let o = run(
        d,
        &["scan", "src", "--record", "--db", dbs, "-o", "report.txt"],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&d.join("report.txt")), 0o600);
    // The default location: created owner-only under XDG_DATA_HOME.
    let o = awxguard(d)
        .env_remove("AWXGUARD_DB")
        .env("XDG_DATA_HOME", d.join("xdg"))
        .args(["scan", "src", "--record"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(mode(&d.join("xdg/awxguard")), 0o700);
    assert_eq!(mode(&d.join("xdg/awxguard/awxguard.db")), 0o600);

    // Readable by others: said on stderr and in the report's notes.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(d, &["findings", "list", "--db", dbs, "--format", "json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is readable by other users (mode 644)"),
        "{}",
        stderr(&o)
    );
    assert!(json(&o)["summary"]["notes"]
        .to_string()
        .contains("chmod 600"));

    // Read-only: a read-only file in a read-only directory, read by another user.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(d.join("data"), std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = Command::new("sh")
        .args(["-c", "command -v setpriv"])
        .output()
        .is_ok_and(|o| o.status.success());
    let listing = if as_nobody {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(bin())
            .args(["findings", "list", "--db", dbs, "--format", "json"])
            .current_dir(d)
            .env("AWXGUARD_NOW", "2026-11-24T12:00:00Z")
            .env_remove("AWXGUARD_CONFIG")
            .output()
            .unwrap()
    } else {
        eprintln!("SKIPPED as another user: setpriv is not installed");
        run(d, &["findings", "list", "--db", dbs, "--format", "json"])
    };
    assert_eq!(code(&listing), 1, "{}", stderr(&listing));
    assert_eq!(json(&listing)["findings"].as_array().unwrap().len(), 1);
    std::fs::set_permissions(d.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A read-only command on a database that does not exist creates nothing, and says so
    // (issue 16: a mistyped --db is refused, never read as "no findings").
    let o = run(d, &["findings", "list", "--db", "none.db"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("none.db: no database there"));
    assert!(!d.join("none.db").exists());

    // Another application's SQLite file is refused, not extended.
    let other = d.join("other.db");
    {
        let c = rusqlite::Connection::open(&other).unwrap();
        c.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);")
            .unwrap();
    }
    let before = std::fs::read(&other).unwrap();
    let o = run(
        d,
        &["scan", "src", "--record", "--db", other.to_str().unwrap()],
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o)
            .contains("not an awxguard database: it is another application's SQLite database"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&other).unwrap(), before, "left as it was");
    let o = run(d, &["findings", "list", "--db", other.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
}

/// Writers that meet on one database wait their turn (busy timeout, transactions that take the
/// write lock when they start) instead of failing with "database is locked".
#[test]
fn concurrent_writers_wait_instead_of_failing() {
    let dir = tempdir();
    let d = dir.path();
    for i in 0..6 {
        write(
            d,
            &format!("src{i}/a.env"),
            format!("AIRWALLEX_API_KEY={}\n", key(&format!("c{i}"))),
        );
    }
    let children: Vec<_> = (0..6)
        .map(|i| {
            awxguard(d)
                .args(["scan", &format!("src{i}"), "--record", "--format", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(!stderr(&o).contains("locked"), "{}", stderr(&o));
    }
    let o = run(d, &["findings", "list", "--format", "json"]);
    assert_eq!(json(&o)["findings"].as_array().unwrap().len(), 6);
}

/// No input makes awxguard panic: options and config values at the ends of their types, dates
/// outside what a calendar library holds, events from the future, cells of any length.
#[test]
fn extreme_values_are_refused_or_saturated_never_a_panic() {
    let dir = tempdir();
    let d = dir.path();
    let panicked = |o: &Output, what: &str| {
        let e = stderr(o);
        assert!(
            !e.contains("panicked") && !e.contains("overflow") && o.status.code().is_some(),
            "{what}: {e}"
        );
    };
    write(
        d,
        "src/a.env",
        format!("AIRWALLEX_API_KEY={}\n", key("extreme")),
    );
    let o = run(d, &["scan", "src", "--record", "--format", "json"]);
    let id = json(&o)["findings"][0]["id"].as_str().unwrap().to_string();
    for e in [
        "9223372036854775807d",
        "-9223372036854775808h",
        "99999999999999w",
        "262143-12-31",
        "9999-12-31",
        "+275760-09-13T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "0000-01-01",
        "-1d",
        "d",
        "",
    ] {
        let o = run(
            d,
            &["findings", "ack", &id, "--reason", "r", "--expires", e],
        );
        panicked(&o, e);
        let o = run(d, &["findings", "list", "--format", "json"]);
        panicked(&o, e);
        assert!(code(&o) <= 1, "{e}: {}", stderr(&o));
    }
    let big = 9223372036854775807i64;
    let k = key_table("a", "env:X", "sandbox", "admin", "");
    for (what, cfg) in [
        ("timeout", format!("[airwallex]\nbase_url = \"http://127.0.0.1:9\"\ntimeout_ms = {big}\n{k}")),
        ("retries", format!("[airwallex]\nbase_url = \"http://127.0.0.1:9\"\nretries = 4294967295\n{k}")),
        ("retry base", format!("[airwallex]\nbase_url = \"http://127.0.0.1:9\"\nretry_base_ms = {big}\n{k}")),
        ("alerts durations", format!("[alerts]\nfallback = [\"a@example.com\"]\nrepeat_interval = \"999999999999999d\"\nretry_base = \"99999999999999999w\"\n[alerts.file]\ndir = \"alerts\"\n{k}")),
        ("proxy queue", format!("[proxy]\nqueue_capacity = {big}\n{k}")),
        ("skew", format!("[usage]\nmax_future = \"99999999999999999d\"\n{k}")),
        ("dates", key_table("a", "env:X", "sandbox", "admin", "created = 0001-01-01\nrotated = 9999-12-31")),
        ("dates 2", key_table("a", "env:X", "sandbox", "admin", "created = 9999-12-31")),
        ("watch", format!("[watch]\nlookback = \"99999999999999d\"\nhistory = \"99999999999999d\"\n{k}")),
        ("params", format!("[audit.params.\"privilege.unused-scope\"]\ndays = {big}\n[audit.params.\"privilege.key-rotation-overdue\"]\ndays = -{big}\n{k}")),
    ] {
        write(d, "awxguard.toml", &cfg);
        // Logins go to a closed loopback port, once.
        let cfg = if cfg.contains("[airwallex]") {
            cfg.replace("[airwallex]\n", "[airwallex]\nretries = 0\n")
        } else {
            format!("[airwallex]\nbase_url = \"http://127.0.0.1:9\"\nretries = 0\n{cfg}")
        };
        write(d, "awxguard.toml", &cfg);
        for args in [
            &["inventory", "verify"][..],
            &["audit", "--no-verify", "--no-store", "--usage", "ev.jsonl"],
            &["alerts", "test"],
        ] {
            write(d, "ev.jsonl", "{\"ts\":\"2026-11-20T10:15:00Z\",\"key\":\"a\",\"method\":\"GET\",\"path\":\"/api/v1/balances/current\",\"status\":200}\n");
            let o = awxguard(d)
                .args(args)
                .env("X", key("extreme-x"))
                .output()
                .unwrap();
            panicked(&o, &format!("{what}: {args:?}"));
        }
    }
    std::fs::remove_file(d.join("awxguard.toml")).unwrap();

    // Events from the future (the clock is pinned at 2026-11-24T12:00:00Z) and outside the
    // calendar.
    write(
        d,
        "awxguard.toml",
        format!(
            "{}[usage]\nmax_future = \"10m\"\n",
            key_table(
                "a",
                "env:X",
                "sandbox",
                "admin",
                &format!("owner = \"{}\"", "o".repeat(100_000))
            )
        ),
    );
    let ev = |ts: &str| {
        format!("{{\"ts\":\"{ts}\",\"key\":\"a\",\"method\":\"GET\",\"path\":\"/api/v1/balances/current\",\"status\":200}}\n")
    };
    write(
        d,
        "ev.jsonl",
        [
            ev("2026-11-24T12:05:00Z"),
            ev("2026-11-24T12:30:00Z"),
            ev("9999-12-31T23:59:59Z"),
            ev("+275760-09-13T00:00:00Z"),
            ev("-000001-01-01T00:00:00Z"),
            ev("2026-02-30T00:00:00Z"),
        ]
        .concat(),
    );
    let o = awxguard(d)
        .args([
            "audit",
            "--no-verify",
            "--no-store",
            "--usage",
            "ev.jsonl",
            "--format",
            "json",
        ])
        .env("X", key("extreme-x"))
        .output()
        .unwrap();
    panicked(&o, "events");
    let all = stdout(&o);
    assert!(
        all.contains("ev.jsonl:2: field `ts` 2026-11-24T12:30:00Z is in the future"),
        "{all}"
    );
    assert!(all.contains("ev.jsonl:3: field `ts`"), "{all}");
    assert!(!all.contains("ev.jsonl:1:"), "within the skew: {all}");
    // A 100,000-character owner: the table cuts it, JSON keeps it whole.
    let o = awxguard(d)
        .args(["inventory"])
        .env("X", key("extreme-x"))
        .output()
        .unwrap();
    panicked(&o, "table");
    assert!(
        stdout(&o).lines().all(|l| l.chars().count() < 400),
        "{}",
        stdout(&o)
    );
    let o = awxguard(d)
        .args(["inventory", "--format", "json"])
        .env("X", key("extreme-x"))
        .output()
        .unwrap();
    assert_eq!(
        json(&o)["summary"]["keys"][0]["owner"]
            .as_str()
            .unwrap()
            .len(),
        100_000
    );
}
