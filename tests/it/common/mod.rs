//! Shared helpers: the binary, temp dirs, deterministic test keys.
//!
//! Test keys are made at run time from a seed (SHA-384 of the seed, which is exactly 96 hex
//! digits), so no key-shaped string sits in this repository and snapshots stay stable.

#![allow(dead_code)]

pub mod browser;

use sha2::{Digest, Sha384};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Path of the built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_awxguard"))
}

/// A command for the binary with a clean, deterministic environment: no config or database from
/// the developer's machine, a pinned clock, no colour.
pub fn awxguard(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir)
        .env_remove("AWXGUARD_CONFIG")
        .env_remove("AWXGUARD_AIRWALLEX_URL")
        .env_remove("AWXGUARD_LOG")
        .env("AWXGUARD_DB", db_target(dir))
        .env("AWXGUARD_NOW", "2026-11-24T12:00:00Z")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// Whether this run of the suite records into PostgreSQL (`AWXGUARD_TEST_STORE=postgres`, with
/// the server `AWXGUARD_TEST_PG_URL` names): `.ci/run` runs the store-backed tests a second time
/// so.
pub fn on_postgres() -> bool {
    std::env::var("AWXGUARD_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The database a test in `dir` records into: `dir/.awxguard-test.db`, or on PostgreSQL runs a
/// fresh database of its own (the same one for every command run in `dir`).
pub fn db_target(dir: &Path) -> PathBuf {
    if !on_postgres() {
        return dir.join(".awxguard-test.db");
    }
    let mut known = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, url)) = known.iter().find(|(d, _)| d == dir) {
        return url.clone();
    }
    let url = awxguard::store::postgres::test_database("it")
        .expect("AWXGUARD_TEST_STORE=postgres needs AWXGUARD_TEST_PG_URL (.ci/pg-cluster start)");
    known.push((dir.to_path_buf(), PathBuf::from(&url)));
    PathBuf::from(url)
}

/// Every text the test database holds (each row of each table), to grep for secrets: the SQLite
/// file and its WAL as bytes, or on PostgreSQL every row as text.
pub fn db_contents(dir: &Path) -> Vec<u8> {
    let target = db_target(dir);
    let Some(url) = awxguard::store::postgres_url(&target) else {
        let mut out = std::fs::read(&target).unwrap_or_default();
        out.extend(std::fs::read(dir.join(".awxguard-test.db-wal")).unwrap_or_default());
        return out;
    };
    let cfg: postgres::Config = url.parse().unwrap();
    let mut c = cfg.connect(postgres::NoTls).unwrap();
    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = Vec::new();
    for t in tables {
        for r in c.query(&format!("SELECT t::text FROM {t} t"), &[]).unwrap() {
            out.extend(r.get::<_, String>(0).into_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// Sets the schema version of the test database in `dir` (SQLite's `user_version`, PostgreSQL's
/// `awxguard_meta`): a database "from a newer awxguard".
pub fn set_schema_version(dir: &Path, version: i64) {
    let target = db_target(dir);
    match awxguard::store::postgres_url(&target) {
        Some(url) => {
            let cfg: postgres::Config = url.parse().unwrap();
            let mut c = cfg.connect(postgres::NoTls).unwrap();
            c.execute(
                "UPDATE awxguard_meta SET value = $1 WHERE name = 'schema_version'",
                &[&version.to_string()],
            )
            .unwrap();
        }
        None => {
            let c = rusqlite::Connection::open(&target).unwrap();
            c.execute_batch(&format!("PRAGMA user_version = {version};"))
                .unwrap();
        }
    }
}

/// Rows of `table` in the test database of `dir`, on either backend.
pub fn count_rows(dir: &Path, table: &str) -> i64 {
    let target = db_target(dir);
    let sql = format!("SELECT count(*) FROM {table}");
    match awxguard::store::postgres_url(&target) {
        Some(url) => {
            let cfg: postgres::Config = url.parse().unwrap();
            let mut c = cfg.connect(postgres::NoTls).unwrap();
            c.query_one(&sql, &[]).unwrap().get(0)
        }
        None => rusqlite::Connection::open(&target)
            .unwrap()
            .query_row(&sql, [], |r| r.get(0))
            .unwrap(),
    }
}

/// The one text column `sql` selects, every row, from the database `target` (a SQLite file or
/// a PostgreSQL URL).
pub fn db_strings(target: &Path, sql: &str) -> Vec<String> {
    match awxguard::store::postgres_url(target) {
        Some(url) => {
            let cfg: postgres::Config = url.parse().unwrap();
            let mut c = cfg.connect(postgres::NoTls).unwrap();
            c.query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        }
        None => {
            let c = rusqlite::Connection::open(target).unwrap();
            let mut s = c.prepare(sql).unwrap();
            let rows = s.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        }
    }
}

/// Runs the binary with `args` in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    awxguard(dir).args(args).output().expect("run awxguard")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

/// A deterministic, realistic-looking Airwallex API key: SHA-384 of `seed` in hex.
pub fn key(seed: &str) -> String {
    Sha384::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A deterministic client ID (22 base64url characters).
pub fn client_id(seed: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    Sha384::digest(format!("cid:{seed}").as_bytes())
        .iter()
        .take(22)
        .map(|b| A[(*b as usize) % 64] as char)
        .collect()
}

/// The fingerprint awxguard gives a secret (findings contract).
pub fn fingerprint(secret: &str) -> String {
    awxguard::secret::fingerprint(secret.as_bytes())
}

/// Writes `text` to `dir/rel`, creating parent directories.
pub fn write(dir: &Path, rel: &str, text: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

/// A fresh temporary directory.
pub fn tempdir() -> TestDir {
    TestDir(tempfile::tempdir().expect("tempdir"))
}

/// A test's temporary directory; on PostgreSQL runs, the test database of the directory is
/// dropped with it (a database is ~7 MB: the suite's would fill the disk).
pub struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = tempfile::TempDir;
    fn deref(&self) -> &tempfile::TempDir {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        drop_test_database(self.0.path());
    }
}

/// Test databases by directory (PostgreSQL runs): remembered in memory, not in the directory (a
/// scan of it must not meet a file of the harness).
static DATABASES: std::sync::Mutex<Vec<(PathBuf, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// A fresh PostgreSQL database for the test in `dir` (dropped with the directory), when the
/// tests have a server (`AWXGUARD_TEST_PG_URL`), whichever backend the suite runs on.
pub fn pg_database(dir: &Path) -> Option<PathBuf> {
    let url = PathBuf::from(awxguard::store::postgres::test_database("pg")?);
    DATABASES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((dir.to_path_buf(), url.clone()));
    Some(url)
}

/// Drops the PostgreSQL test database of `dir`, if it has one (processes still connected to it
/// are disconnected).
pub fn drop_test_database(dir: &Path) {
    let urls: Vec<PathBuf> = {
        let mut known = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
        let (mine, rest) = std::mem::take(&mut *known)
            .into_iter()
            .partition(|(d, _)| d == dir);
        *known = rest;
        mine.into_iter().map(|(_, u)| u).collect()
    };
    let Ok(admin) = std::env::var("AWXGUARD_TEST_PG_URL") else {
        return;
    };
    for url in urls {
        let Some(name) = url
            .to_str()
            .and_then(|u| u.parse::<postgres::Config>().ok())
            .and_then(|c| c.get_dbname().map(str::to_string))
        else {
            continue;
        };
        if let Ok(mut c) = admin
            .parse::<postgres::Config>()
            .and_then(|a| a.connect(postgres::NoTls))
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Parses a JSON report from stdout.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

/// Asserts that `secret` appears nowhere in `text` (whole, or any 24-character piece of it).
pub fn assert_no_secret(text: &str, secret: &str, what: &str) {
    assert!(
        !text.contains(secret),
        "{what} contains the secret in clear"
    );
    for i in 0..secret.len().saturating_sub(24) {
        let piece = &secret[i..i + 24];
        assert!(
            !text.contains(piece),
            "{what} contains 24 characters of the secret ({piece})"
        );
    }
}

/// Logins (in flight, most at once, total).
pub type Counts = std::sync::Arc<std::sync::Mutex<(usize, usize, usize)>>;

/// A login stand-in that answers 401 after `delay_ms` and counts the logins it is answering at
/// once. Only counts are asserted, never times.
pub fn counting_server(delay_ms: u64) -> (String, Counts) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let state = std::sync::Arc::new(std::sync::Mutex::new((0usize, 0usize, 0usize)));
    let shared = state.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let state = shared.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                {
                    let mut st = state.lock().unwrap();
                    st.0 += 1;
                    st.1 = st.1.max(st.0);
                    st.2 += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(delay_ms));
                state.lock().unwrap().0 -= 1;
                let body =
                    r#"{"code":"credentials_invalid","message":"Invalid client id or api key"}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, state)
}

/// A simulator serving in the background for a test: its own thread and runtime (the library's
/// `Simulator::serve` runs on the caller's runtime; tests that need one in the background make
/// it here).
pub struct SimHandle {
    pub addr: std::net::SocketAddr,
    pub sim: awxguard::airwallex::simulator::Simulator,
}

impl SimHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<awxguard::airwallex::simulator::RequestRecord> {
        self.sim.requests()
    }

    /// See `Simulator::add_activity`.
    pub fn add_activity(
        &self,
        collection: &str,
        items: Vec<serde_json::Value>,
    ) -> Result<Vec<serde_json::Value>, String> {
        self.sim.add_activity(collection, items)
    }
}

/// `Simulator::spawn(state)`: a simulator on a loopback port, in the background.
pub trait SpawnSimulator {
    fn spawn(state: awxguard::airwallex::simulator::SimState) -> std::io::Result<SimHandle>;
}

impl SpawnSimulator for awxguard::airwallex::simulator::Simulator {
    fn spawn(state: awxguard::airwallex::simulator::SimState) -> std::io::Result<SimHandle> {
        let sim = Self::new(state);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let served = sim.clone();
        std::thread::Builder::new()
            .name("airwallex-simulator".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("simulator runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(std_listener)
                        .expect("simulator listener");
                    let _ = served.serve(listener).await;
                });
            })?;
        Ok(SimHandle { addr, sim })
    }
}

/// A stand-in HTTP proxy on loopback that forwards nothing: it records the request line of every
/// connection it gets and answers 502. With `HTTP(S)_PROXY`/`ALL_PROXY` pointing at it and only
/// the simulator in `NO_PROXY`, any request to another host lands here instead of the network.
pub struct Tripwire {
    pub url: String,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn tripwire() -> Tripwire {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    use std::io::{BufRead, BufReader, Write};
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            log.lock().unwrap().push(line.trim().to_string());
            let _ = s.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    Tripwire { url, seen }
}

pub fn behind_tripwire(dir: &Path, wire: &Tripwire) -> std::process::Command {
    let mut c = awxguard(dir);
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        c.env(var, &wire.url).env(var.to_lowercase(), &wire.url);
    }
    c.env("NO_PROXY", "127.0.0.1").env("no_proxy", "127.0.0.1");
    c
}

/// Asserts that no `window`-character piece of `secret` appears in `bytes`, in any ASCII case.
pub fn assert_no_window(bytes: &[u8], secret: &str, window: usize, what: &str) {
    let hay = bytes.to_ascii_lowercase();
    let s = secret.to_ascii_lowercase();
    let s = s.as_bytes();
    let w = window.min(s.len());
    for i in 0..=s.len() - w {
        let piece = &s[i..i + w];
        if let Some(at) = memchr::memmem::find(&hay, piece) {
            let from = at.saturating_sub(60);
            let to = (at + w + 60).min(bytes.len());
            panic!(
                "{what} holds {w} characters of the secret at byte {at}: …{}…",
                String::from_utf8_lossy(&bytes[from..to])
            );
        }
    }
}

/// The database file of a test directory with its WAL and shared-memory files, concatenated.
pub fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut db = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".awxguard-test.db")
        {
            db.extend(std::fs::read(&p).unwrap());
        }
    }
    db
}

/// Asserts that no 40-character window of `secret` is in any of `outputs` (stdout and stderr),
/// in the database (with its WAL) of `dir`, or in any of `files`.
pub fn assert_nowhere(secret: &str, dir: &Path, outputs: &[(&str, &Output)], files: &[PathBuf]) {
    for (what, o) in outputs {
        assert_no_window(&o.stdout, secret, 40, &format!("{what}: stdout"));
        assert_no_window(&o.stderr, secret, 40, &format!("{what}: stderr"));
    }
    assert_no_window(
        &database_bytes(dir),
        secret,
        40,
        "the database (with its WAL)",
    );
    for f in files {
        if let Ok(b) = std::fs::read(f) {
            assert_no_window(&b, secret, 40, &f.display().to_string());
        }
    }
}
