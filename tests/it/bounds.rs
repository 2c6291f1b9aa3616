//! Issue 17: bounded resources on hostile input, nothing half-written. Special files (FIFOs,
//! devices) where awxguard expects a file, giants, hostile HTTP servers: each run finishes
//! within seconds with a clear message, under a memory cap (`prlimit --as`); a write that fails
//! part-way leaves the old file whole.

use crate::common::*;
use crate::inventory::{airwallex_section, key_table};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Memory cap for the hostile runs: several times what a run needs, far below what an
/// unbounded read would take.
const MEMORY_CAP: u64 = 512 << 20;

/// Whether a tool is on the PATH; outside CI a missing tool skips the test loudly, in CI
/// (`CI=1`) it fails it.
fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required in CI (util-linux)"
        );
        eprintln!("SKIPPED: {tool} is not installed");
    }
    ok
}

/// The binary under a memory cap (`prlimit --as`), with a deadline: the output, or a panic
/// naming the run if it takes longer than `secs`.
fn capped(dir: &Path, args: &[&str], env: &[(&str, &str)], secs: u64) -> Output {
    let mut c = awxguard(dir);
    let prog = c.get_program().to_owned();
    let mut p = Command::new("prlimit");
    p.arg(format!("--as={MEMORY_CAP}")).arg("--").arg(prog);
    p.current_dir(dir);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => p.env(k, v),
            None => p.env_remove(k),
        };
    }
    c = p;
    c.args(args)
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let started = Instant::now();
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "awxguard {args:?} did not finish within {secs} s\nstderr: {}",
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert!(
        !stderr(&o).contains("panicked") && !stderr(&o).contains("memory allocation"),
        "awxguard {args:?} crashed: {}",
        stderr(&o)
    );
    o
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

#[test]
fn special_files_where_a_file_is_expected_are_refused_never_read() {
    if !have("prlimit") || !have("mkfifo") {
        return;
    }
    let k = key("bounds-special");
    // A repository whose committed .gitignore is a symlink to /dev/zero, and one whose
    // .awxguardignore is a FIFO nobody writes to.
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("repo/.git/info")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("repo/.gitignore")).unwrap();
    mkfifo(&d.join("repo/.awxguardignore"));
    mkfifo(&d.join("repo/.git/info/exclude"));
    write(d, "repo/src/config.env", format!("AIRWALLEX_API_KEY={k}\n"));
    mkfifo(&d.join("repo/src/pipe.env"));
    std::os::unix::fs::symlink("/dev/zero", d.join("repo/src/zero.env")).unwrap();
    let o = capped(d, &["scan", "repo", "--format", "json"], &[], 20);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let r = json(&o);
    let problems = r["summary"]["problems"].to_string();
    assert!(
        problems.contains("ignore file skipped") && problems.contains("is a character device"),
        "{problems}"
    );
    assert!(problems.contains("is a FIFO (named pipe)"), "{problems}");
    assert_eq!(
        r["findings"].as_array().unwrap().len(),
        1,
        "the key is still found"
    );
    // A FIFO given as the thing to scan.
    let o = capped(
        d,
        &["scan", "repo/src/pipe.env", "--format", "json"],
        &[],
        20,
    );
    assert!(
        stdout(&o).contains("is a FIFO (named pipe), not a regular file or a directory"),
        "{}",
        stdout(&o)
    );

    // A FIFO as secret file, as usage file, in a usage directory, as config, as rule file, as
    // baseline, as database.
    write(
        d,
        "awxguard.toml",
        key_table("payvy", "file:secret.key", "production", "admin", ""),
    );
    mkfifo(&d.join("secret.key"));
    let o = capped(d, &["inventory", "--format", "json"], &[], 20);
    assert!(
        stdout(&o).contains("secret file") && stdout(&o).contains("is a FIFO (named pipe)"),
        "{}",
        stdout(&o)
    );
    mkfifo(&d.join("events.jsonl"));
    let o = capped(
        d,
        &[
            "audit",
            "--no-verify",
            "--no-store",
            "--usage",
            "events.jsonl",
        ],
        &[],
        20,
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("events.jsonl") && stderr(&o).contains("is a FIFO (named pipe)"),
        "{}",
        stderr(&o)
    );
    std::fs::create_dir_all(d.join("usage")).unwrap();
    mkfifo(&d.join("usage/a.jsonl"));
    let o = capped(
        d,
        &["audit", "--no-verify", "--no-store", "--usage", "usage"],
        &[],
        20,
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("is a FIFO"), "{}", stderr(&o));
    std::fs::remove_file(d.join("awxguard.toml")).unwrap();
    mkfifo(&d.join("fifo.toml"));
    let o = capped(d, &["--config", "fifo.toml", "inventory"], &[], 20);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("fifo.toml: is a FIFO (named pipe), not a regular file"),
        "{}",
        stderr(&o)
    );
    std::fs::create_dir_all(d.join("rules")).unwrap();
    mkfifo(&d.join("rules/x.toml"));
    let o = capped(d, &["scan", "repo/src", "--rules", "rules"], &[], 20);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("is a FIFO"), "{}", stderr(&o));
    mkfifo(&d.join("baseline.json"));
    let o = capped(
        d,
        &["scan", "repo/src", "--baseline", "baseline.json"],
        &[],
        20,
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("is a FIFO"), "{}", stderr(&o));
    mkfifo(&d.join("db"));
    let o = capped(d, &["findings", "list", "--db", "db"], &[], 20);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("db: not an awxguard database: it is a FIFO"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn giants_are_refused_by_their_size_before_they_are_read() {
    if !have("prlimit") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("repo/.git")).unwrap();
    let sparse = |p: &Path, len: u64| {
        let f = std::fs::File::create(p).unwrap();
        f.set_len(len).unwrap();
    };
    sparse(&d.join("repo/.gitignore"), 2 << 30);
    sparse(&d.join("repo/big.env"), 2 << 30);
    write(d, "repo/ok.txt", "nothing\n");
    let started = Instant::now();
    let o = capped(d, &["scan", "repo", "--format", "json"], &[], 20);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(10));
    let r = json(&o);
    // The big file and the big .gitignore (which is scanned as a file too).
    assert_eq!(r["summary"]["scan"]["skipped_too_large"], 2);
    assert!(
        r["summary"]["problems"]
            .to_string()
            .contains("2 GiB is over the 4 MiB limit for ignore files"),
        "{r}"
    );
    // A secret file of 2 GB.
    write(
        d,
        "awxguard.toml",
        key_table("payvy", "file:secret.key", "production", "admin", ""),
    );
    sparse(&d.join("secret.key"), 2 << 30);
    let o = capped(d, &["inventory", "--format", "json"], &[], 20);
    assert!(
        stdout(&o).contains("2 GiB is over the 64 KiB limit for secret files"),
        "{}",
        stdout(&o)
    );
    // A usage file that is one endless line: rejected, its memory bounded.
    sparse(&d.join("zeros.jsonl"), 64 << 20);
    write(
        d,
        "more.jsonl",
        "{\"ts\":\"2026-11-20T10:15:00Z\",\"key\":\"payvy\",\"method\":\"GET\",\"path\":\"/x\",\"status\":200}\n",
    );
    let o = capped(
        d,
        &[
            "audit",
            "--no-verify",
            "--no-store",
            "--usage",
            "zeros.jsonl",
            "--usage",
            "more.jsonl",
            "--format",
            "json",
        ],
        &[],
        30,
    );
    assert!(code(&o) <= 1, "{}", stderr(&o));
    let all = stdout(&o);
    assert!(
        all.contains("zeros.jsonl:1: the line is longer than"),
        "{all}"
    );
}

/// A login server that misbehaves in `mode`: a huge body, an endless chunked body, a body that
/// trickles, enormous headers.
fn hostile_server(mode: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let chunk = vec![b'a'; 64 << 10];
                match mode {
                    "huge" => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                             content-length: 10000000000\r\n\r\n"
                        );
                        while s.write_all(&chunk).is_ok() {}
                    }
                    "huge-unsized" => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                             connection: close\r\n\r\n{{\"token\":\""
                        );
                        while s.write_all(&chunk).is_ok() {}
                    }
                    "chunked" => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                             transfer-encoding: chunked\r\n\r\n"
                        );
                        loop {
                            if write!(s, "{:x}\r\n", chunk.len()).is_err()
                                || s.write_all(&chunk).is_err()
                                || s.write_all(b"\r\n").is_err()
                            {
                                break;
                            }
                        }
                    }
                    "trickle" => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                             content-length: 1000\r\n\r\n"
                        );
                        while s.write_all(b" ").is_ok() {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                    "headers" => {
                        let _ = write!(s, "HTTP/1.1 401 Unauthorized\r\n");
                        let big = "x".repeat(8 << 10);
                        for i in 0..100_000 {
                            if write!(s, "x-{i}: {big}\r\n").is_err() {
                                break;
                            }
                        }
                    }
                    _ => unreachable!(),
                }
            });
        }
    });
    url
}

#[test]
fn hostile_http_servers_cost_seconds_and_bounded_memory() {
    if !have("prlimit") {
        return;
    }
    let k = key("bounds-http");
    for mode in ["huge", "huge-unsized", "chunked", "trickle", "headers"] {
        let url = hostile_server(mode);
        let dir = tempdir();
        write(
            dir.path(),
            "awxguard.toml",
            format!(
                "{}{}",
                airwallex_section(&url).replace("timeout_ms = 5000", "timeout_ms = 1500"),
                key_table("payvy", "env:LEAK_KEY", "production", "admin", "")
            ),
        );
        let started = Instant::now();
        let o = capped(
            dir.path(),
            &["inventory", "verify", "--format", "json"],
            &[("LEAK_KEY", &k)],
            30,
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(15), "{mode}: took {took:?}");
        let out = stdout(&o) + &stderr(&o);
        let expected = match mode {
            "huge" | "huge-unsized" | "chunked" => "larger than 65536 bytes",
            "trickle" => "gave up after 2 attempts",
            _ => "gave up after 2 attempts",
        };
        assert!(out.contains(expected), "{mode}: {out}");
        assert_nowhere(&k, dir.path(), &[(mode, &o)], &[]);
    }
}

/// A baseline rewrite that fails part-way (the file-size limit hit mid-write) leaves the old
/// baseline whole, and says so.
#[test]
fn a_baseline_rewrite_that_fails_part_way_leaves_the_old_one() {
    if !have("sh") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    for i in 0..200 {
        write(
            d,
            &format!("src/f{i}.env"),
            format!("AIRWALLEX_API_KEY={}\n", key(&format!("b{i}"))),
        );
    }
    write(
        d,
        "src/a.env",
        format!("AIRWALLEX_API_KEY={}\n", key("first")),
    );
    let first = awxguard(d)
        .args(["scan", "src/a.env", "--write-baseline", "baseline.json"])
        .output()
        .unwrap();
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let before = std::fs::read(d.join("baseline.json")).unwrap();
    assert!(before.len() < 4096, "a small baseline to start with");
    // 8 blocks of 512 bytes: the new baseline (200 entries) cannot fit.
    let bin = bin();
    let o = Command::new("sh")
        .current_dir(d)
        .env("AWXGUARD_DB", d.join(".awxguard-test.db"))
        .env("AWXGUARD_NOW", "2026-11-24T12:00:00Z")
        .env_remove("AWXGUARD_CONFIG")
        .args([
            "-c",
            "ulimit -f 8; trap '' XFSZ; exec \"$0\" scan src --write-baseline baseline.json",
            bin.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the previous baseline.json is unchanged"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(d.join("baseline.json")).unwrap(), before);
    let left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    // The same for a report written with -o.
    let first = awxguard(d)
        .args(["scan", "src/a.env", "--format", "json", "-o", "report.json"])
        .output()
        .unwrap();
    assert_eq!(code(&first), 1);
    let before = std::fs::read(d.join("report.json")).unwrap();
    let o = Command::new("sh")
        .current_dir(d)
        .env("AWXGUARD_DB", d.join(".awxguard-test.db"))
        .env_remove("AWXGUARD_CONFIG")
        .args([
            "-c",
            "ulimit -f 8; trap '' XFSZ; exec \"$0\" scan src --format json -o report.json",
            bin.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("report.json is unchanged"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(d.join("report.json")).unwrap(), before);
}
