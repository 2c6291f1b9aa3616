//! `awxguard proxy` over real sockets: a client logs in and calls through the proxy (the real
//! binary) to the simulator; events, attribution, enforcement, the money guard, upstream
//! failures, a locked store, TLS to a self-signed upstream, and no secret anywhere.

use crate::common::*;
use crate::inventory::{airwallex_section, key_table};
use awxguard::airwallex::simulator::{Behaviour, SimState, Simulator};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A running `awxguard proxy` with its log.
pub(crate) struct Proxy {
    child: Child,
    pub(crate) url: String,
    log: Arc<Mutex<String>>,
}

impl Proxy {
    /// Starts the proxy in `dir` (config `awxguard.toml` there, database `dir/db/awx.db`) with
    /// `args`, keys' secrets in the environment, at `-vv`.
    pub(crate) fn start(
        dir: &Path,
        upstream: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Proxy {
        let mut cmd = awxguard(dir);
        cmd.env("AWXGUARD_DB", db(dir))
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                upstream,
                "-vv",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if dir.join("awxguard.toml").exists() {
            cmd.args(["--config", "awxguard.toml"]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start proxy");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let shared = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("awxguard proxy: listening on ") {
                    let _ = tx.send(a.to_string());
                }
                let mut l = shared.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("proxy did not start:\n{}", log.lock().unwrap()));
        Proxy { child, url, log }
    }

    fn counters(&self) -> Value {
        rt().block_on(async {
            reqwest::get(format!("{}/__awxguard/counters", self.url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    /// Stops it with SIGTERM and returns its whole log.
    pub(crate) fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "proxy exited {status}:\n{}", self.log());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // the reader thread gets the last lines
        std::thread::sleep(Duration::from_millis(50));
        self.log()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("db").join("awx.db")
}

/// The events the proxy stored: the usage evidence store's raw events (straight from the
/// database), as usage-event lines.
fn events(dir: &Path) -> Vec<Value> {
    let Ok(c) = rusqlite::Connection::open(db(dir)) else {
        return Vec::new();
    };
    let Ok(mut s) = c.prepare(
        "SELECT e.ts, k.name, r.route, e.path, e.status, e.ip, a.name, e.account, e.latency, \
         e.host, e.via, e.objects FROM usage_events e JOIN usage_keys k ON k.id = e.key \
         JOIN usage_routes r ON r.id = e.route LEFT JOIN usage_names a ON a.id = e.agent \
         ORDER BY e.ts",
    ) else {
        return Vec::new();
    };
    s.query_map([], |r| {
        let ts = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(r.get(0)?).unwrap();
        let route: String = r.get(2)?;
        let objects: Option<String> = r.get(11)?;
        let mut e = json!({
            "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "key": r.get::<_, String>(1)?,
            "method": route.split(' ').next().unwrap(),
            "path": r.get::<_, String>(3)?,
            "status": r.get::<_, i64>(4)?,
            "source_ip": r.get::<_, Option<String>>(5)?,
            "user_agent": r.get::<_, Option<String>>(6)?,
            "account_id": r.get::<_, Option<String>>(7)?,
            "latency_ms": r.get::<_, Option<f64>>(8)?,
            "host": r.get::<_, Option<String>>(9)?,
            "via": if r.get::<_, i64>(10)? == 1 { json!("proxy") } else { Value::Null },
        });
        if let Some(o) = objects {
            e["object_ids"] = serde_json::from_str(&o).unwrap();
        }
        Ok(e)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Waits until the store holds `n` events.
fn wait_events(dir: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = events(dir);
        if e.len() >= n {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "{} events in the store, expected {n}: {e:#?}",
            e.len()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Stored findings (the user's view).
fn findings(dir: &Path) -> Vec<Value> {
    let out = awxguard(dir)
        .env("AWXGUARD_DB", db(dir))
        .args(["findings", "list", "--format", "json"])
        .output()
        .unwrap();
    json(&out)["findings"].as_array().unwrap().clone()
}

fn wait_finding(dir: &Path, rule: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(f) = findings(dir).into_iter().find(|f| f["rule"] == rule) {
            return f;
        }
        assert!(Instant::now() < deadline, "no {rule} finding");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP client of the integration, talking to `base` (the proxy).
pub(crate) struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub(crate) fn new(base: &str) -> Client {
        Client {
            rt: rt(),
            http: reqwest::Client::builder()
                .user_agent("payvy/1.0")
                .build()
                .unwrap(),
            base: base.to_string(),
        }
    }

    pub(crate) fn login(&self, who: &str) -> String {
        let (status, body) = self.login_raw(who);
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    fn login_raw(&self, who: &str) -> (u16, Value) {
        self.rt.block_on(async {
            let r = self
                .http
                .post(format!("{}/api/v1/authentication/login", self.base))
                .header("x-client-id", client_id(who))
                .header("x-api-key", key(who))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        })
    }

    pub(crate) fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut r = self
                .http
                .request(m, format!("{}{path}", self.base))
                .bearer_auth(token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }
}

/// Keys `payvy` (admin), `reader` (custom: transfer:read) and `payer` (custom: beneficiary and
/// transfer write) declared in `dir/awxguard.toml`, live at a fresh simulator.
pub(crate) fn setup(dir: &Path) -> (SimHandle, Vec<(&'static str, String)>) {
    let mut state = SimState::default();
    for who in ["payvy", "reader", "payer", "outsider"] {
        state = state.with_key(&client_id(who), &key(who), Behaviour::Live);
    }
    let sim = Simulator::spawn(state).unwrap();
    let config = [
        airwallex_section(&sim.url()),
        key_table(
            "payvy",
            "env:PAYVY_KEY",
            "production",
            "admin",
            "ip_whitelist = [\"127.0.0.0/24\"]",
        ),
        key_table(
            "reader",
            "env:READER_KEY",
            "production",
            "custom",
            "scopes = [\"transfer:read\"]\nip_whitelist = [\"10.0.0.0/24\"]",
        ),
        key_table(
            "payer",
            "env:PAYER_KEY",
            "production",
            "custom",
            "scopes = [\"transfer:write\", \"beneficiary:write\"]",
        ),
    ]
    .concat();
    write(dir, "awxguard.toml", config);
    let env = vec![
        ("PAYVY_KEY", key("payvy")),
        ("READER_KEY", key("reader")),
        ("PAYER_KEY", key("payer")),
    ];
    (sim, env)
}

/// Nothing of a key or token in the database (and its WAL), the spill directory, or `logs`.
fn assert_clean(dir: &Path, secrets: &[String], logs: &str) {
    let mut blobs: Vec<(String, String)> = vec![("proxy log".into(), logs.to_string())];
    for entry in walk(&dir.join("db")) {
        let bytes = std::fs::read(&entry).unwrap();
        blobs.push((
            entry.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (what, text) in &blobs {
        for s in secrets {
            assert_no_secret(text, s, what);
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn calls_through_the_proxy_are_recorded_with_their_key_and_object_ids() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    let proxy = Proxy::start(d.path(), &sim.url(), &[], &env);
    let c = Client::new(&proxy.url);
    let token = c.login("payvy");
    let (st, ben) = c.call(
        &token,
        "POST",
        "/api/v1/beneficiaries/create",
        Some(json!({"beneficiary": {"entity_type": "COMPANY"}, "nickname": "acme"})),
    );
    assert_eq!(st, 201, "{ben}");
    let ben_id = ben["id"].as_str().unwrap().to_string();
    let (st, tr) = c.call(
        &token,
        "POST",
        "/api/v1/transfers/create",
        Some(json!({"beneficiary_id": ben_id, "transfer_amount": 10, "transfer_currency": "USD"})),
    );
    assert_eq!(st, 201, "{tr}");
    let tr_id = tr["id"].as_str().unwrap().to_string();
    let (st, hook) = c.call(
        &token,
        "POST",
        "/api/v1/webhooks/create",
        Some(json!({"url": "https://hooks.example.com/a"})),
    );
    assert_eq!(st, 201);
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let (st, _) = c.call(
        &token,
        "POST",
        &format!("/api/v1/webhooks/{hook_id}/delete"),
        Some(json!({})),
    );
    assert_eq!(st, 200);
    // the lists answer exactly what the simulator answers directly
    let (st, list) = c.call(&token, "GET", "/api/v1/transfers?page_size=10", None);
    assert_eq!(st, 200);
    assert_eq!(list["items"][0]["id"], tr_id.as_str());
    let (st, _) = c.call(&token, "GET", "/api/v1/no_such_thing/x1234567", None);
    assert_eq!(st, 404);

    let ev = wait_events(d.path(), 7);
    assert_eq!(ev.len(), 7, "{ev:#?}");
    for e in &ev {
        assert_eq!(e["key"], "payvy", "{e}");
        assert_eq!(e["via"], "proxy");
        assert_eq!(e["source_ip"], "127.0.0.1");
        assert_eq!(e["user_agent"], "payvy/1.0");
        assert_eq!(e["host"], sim.addr.to_string());
        assert!(e["latency_ms"].as_f64().unwrap() >= 0.0);
        assert!(chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).is_ok());
    }
    let by_path = |p: &str| ev.iter().find(|e| e["path"] == p).unwrap();
    assert_eq!(by_path("/api/v1/authentication/login")["status"], 201);
    assert_eq!(
        by_path("/api/v1/beneficiaries/create")["object_ids"],
        json!([ben_id])
    );
    assert_eq!(
        by_path("/api/v1/transfers/create")["object_ids"],
        json!([tr_id])
    );
    assert_eq!(
        by_path("/api/v1/webhooks/create")["object_ids"],
        json!([hook_id])
    );
    assert_eq!(
        by_path(&format!("/api/v1/webhooks/{hook_id}/delete"))["object_ids"],
        json!([hook_id])
    );
    // the query string is dropped; reads carry no object ids
    let list_ev = by_path("/api/v1/transfers");
    assert!(list_ev.get("object_ids").is_none());
    assert_eq!(by_path("/api/v1/no_such_thing/x1234567")["status"], 404);
    // the simulator saw every call, with the integration's own token
    let fp = fingerprint(&key("payvy"));
    let api: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path != "/api/v1/authentication/login")
        .collect();
    assert_eq!(api.len(), 6);
    assert!(api
        .iter()
        .all(|r| r.token_of.as_deref() == Some(fp.as_str())));

    let c2 = proxy.counters();
    assert_eq!(c2["requests"], 7);
    assert_eq!(c2["stored"], 7);
    assert_eq!(c2["dropped"], 0);
    let log = proxy.stop();
    assert!(
        log.contains("key payvy: the proxy's egress address 127.0.0.1 is in its ip_whitelist"),
        "{log}"
    );
    assert!(
        log.contains("key reader: the proxy's egress address 127.0.0.1 is NOT in its ip_whitelist (10.0.0.0/24)"),
        "{log}"
    );
    assert!(log.contains("key payer: no ip_whitelist declared"), "{log}");
    assert_clean(d.path(), &[key("payvy"), token], &log);
}

#[test]
fn two_clients_with_two_keys_are_never_mixed_up() {
    // one event loop, and three: connections dealt out to loops on other threads
    for threads in ["1", "3"] {
        let d = tempdir();
        let (sim, env) = setup(d.path());
        let proxy = Proxy::start(d.path(), &sim.url(), &["--threads", threads], &env);
        let a = Client::new(&proxy.url);
        let ta = a.login("payvy");
        let tb = a.login("reader");
        let url = proxy.url.clone();
        // interleaved on many connections at once
        a.rt.block_on(async {
            let http = reqwest::Client::new();
            let mut tasks = Vec::new();
            for i in 0..60 {
                let (http, url) = (http.clone(), url.clone());
                let (token, path) = if i % 2 == 0 {
                    (ta.clone(), "/api/v1/balances/current")
                } else {
                    (tb.clone(), "/api/v1/transfers")
                };
                tasks.push(tokio::spawn(async move {
                    let r = http
                        .get(format!("{url}{path}"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let ev = wait_events(d.path(), 62);
        let of = |k: &str, p: &str| {
            ev.iter()
                .filter(|e| e["key"] == k && e["path"] == p)
                .count()
        };
        assert_eq!(
            of("payvy", "/api/v1/balances/current"),
            30,
            "{threads} loops"
        );
        assert_eq!(of("reader", "/api/v1/transfers"), 30, "{threads} loops");
        assert_eq!(of("payvy", "/api/v1/transfers"), 0, "{threads} loops");
        assert_eq!(
            of("reader", "/api/v1/balances/current"),
            0,
            "{threads} loops"
        );
        let log = proxy.stop();
        // stopped: every loop drained, nothing recorded twice
        assert_eq!(events(d.path()).len(), 62, "{threads} loops");
        assert_clean(d.path(), &[key("payvy"), key("reader"), ta, tb], &log);
    }
}

/// A connection remembers the fingerprint of the token it sent last: a client that changes its
/// token on the same keep-alive connection is attributed call by call, on one serving thread (the
/// default) and on several.
#[test]
fn tokens_alternating_on_one_connection_are_never_mixed_up() {
    for threads in ["1", "2"] {
        let d = tempdir();
        let (sim, env) = setup(d.path());
        let proxy = Proxy::start(d.path(), &sim.url(), &["--threads", threads], &env);
        let a = Client::new(&proxy.url);
        let ta = a.login("payvy");
        let tb = a.login("reader");
        let url = proxy.url.clone();
        a.rt.block_on(async {
            // one idle connection kept, requests one after another: the same connection
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            for i in 0..20 {
                let token = if i % 3 == 0 { &ta } else { &tb };
                let r = http
                    .get(format!("{url}/api/v1/balances/current"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
            }
        });
        let ev = wait_events(d.path(), 22);
        let of = |k: &str| {
            ev.iter()
                .filter(|e| e["key"] == k && e["path"] == "/api/v1/balances/current")
                .count()
        };
        assert_eq!((of("payvy"), of("reader")), (7, 13), "threads {threads}");
        let log = proxy.stop();
        assert_clean(d.path(), &[key("payvy"), key("reader"), ta, tb], &log);
    }
}

#[test]
fn attribution_survives_a_restart_and_serves_a_second_proxy() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    let first = Proxy::start(d.path(), &sim.url(), &[], &env);
    let c = Client::new(&first.url);
    let token = c.login("payer");
    first.stop();
    // a new process with nothing in memory, and a second one beside it, on the same store
    let again = Proxy::start(d.path(), &sim.url(), &[], &env);
    let beside = Proxy::start(d.path(), &sim.url(), &[], &env);
    for p in [&again, &beside] {
        let c = Client::new(&p.url);
        let (st, _) = c.call(&token, "GET", "/api/v1/beneficiaries", None);
        assert_eq!(st, 200);
    }
    let ev = wait_events(d.path(), 3);
    let calls: Vec<_> = ev
        .iter()
        .filter(|e| e["path"] == "/api/v1/beneficiaries")
        .collect();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|e| e["key"] == "payer"), "{calls:#?}");
    // a second proxy learns a login the first one made while both run
    let c = Client::new(&again.url);
    let fresh = c.login("reader");
    let (st, _) = Client::new(&beside.url).call(&fresh, "GET", "/api/v1/transfers", None);
    assert_eq!(st, 200);
    let ev = wait_events(d.path(), 5);
    assert!(ev
        .iter()
        .any(|e| e["path"] == "/api/v1/transfers" && e["key"] == "reader"));
    assert!(findings(d.path())
        .iter()
        .all(|f| f["rule"] != "proxy.unknown-token"));
    let log = again.stop() + &beside.stop();
    assert_clean(d.path(), &[key("payer"), key("reader"), token, fresh], &log);
}

#[test]
fn a_token_from_a_login_elsewhere_is_recorded_as_unknown_and_is_a_finding() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    let proxy = Proxy::start(d.path(), &sim.url(), &[], &env);
    // logged in straight at Airwallex, bypassing the proxy
    let direct = Client::new(&sim.url());
    let token = direct.login("outsider");
    let c = Client::new(&proxy.url);
    for _ in 0..3 {
        let (st, _) = c.call(&token, "GET", "/api/v1/transfers", None);
        assert_eq!(st, 200);
    }
    let (st, _) = c.call(
        &token,
        "POST",
        "/api/v1/webhooks/create",
        Some(json!({"url": "https://evil.example/x"})),
    );
    assert_eq!(st, 201);
    let ev = wait_events(d.path(), 4);
    assert!(ev.iter().all(|e| e["key"] == "unknown"), "{ev:#?}");
    let f = wait_finding(d.path(), "proxy.unknown-token");
    assert_eq!(f["key"], "unknown");
    assert_eq!(f["severity"], "high");
    let tfp = fingerprint(&token);
    assert_eq!(f["evidence"]["token_fingerprint"], tfp.as_str());
    assert!(f["message"].as_str().unwrap().contains(&tfp), "{f}");
    // one finding per token, not one per call
    let n = findings(d.path())
        .iter()
        .filter(|f| f["rule"] == "proxy.unknown-token")
        .count();
    assert_eq!(n, 1);
    assert_eq!(proxy.counters()["unknown_tokens"], 4);
    let log = proxy.stop();
    assert_clean(d.path(), &[key("outsider"), token], &log);
}

#[test]
fn enforce_refuses_undeclared_scopes_and_passes_the_rest() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    let proxy = Proxy::start(d.path(), &sim.url(), &["--enforce", "reader,payer"], &env);
    let c = Client::new(&proxy.url);
    let reader = c.login("reader");
    let payer = c.login("payer");
    let admin = c.login("payvy");
    // declared: passes
    assert_eq!(c.call(&reader, "GET", "/api/v1/transfers", None).0, 200);
    // a write scope grants its resource's reads
    assert_eq!(c.call(&payer, "GET", "/api/v1/beneficiaries", None).0, 200);
    // not declared: refused before Airwallex sees it
    let before = sim.requests().len();
    let (st, body) = c.call(
        &reader,
        "POST",
        "/api/v1/beneficiaries/create",
        Some(json!({"beneficiary": {}})),
    );
    assert_eq!(st, 403);
    assert_eq!(body["code"], "undeclared_scope");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("beneficiary:write"),
        "{body}"
    );
    let (st, _) = c.call(&payer, "GET", "/api/v1/webhooks", None);
    assert_eq!(st, 403);
    assert_eq!(
        sim.requests().len(),
        before,
        "refused calls never reach upstream"
    );
    // not enforced for payvy (admin, and not named), unknown routes pass
    assert_eq!(
        c.call(
            &admin,
            "POST",
            "/api/v1/webhooks/create",
            Some(json!({"url": "https://h.example.com"}))
        )
        .0,
        201
    );
    assert_eq!(c.call(&reader, "GET", "/api/v1/not_a_route", None).0, 404);

    let ev = wait_events(d.path(), 9);
    let refused: Vec<_> = ev.iter().filter(|e| e["status"] == 403).collect();
    assert_eq!(refused.len(), 2);
    let f = wait_finding(d.path(), "usage.undeclared-scope");
    assert_eq!(f["key"], "reader");
    assert_eq!(f["severity"], "critical", "a write");
    assert_eq!(proxy.counters()["refused"], 2);
    proxy.stop();

    // clients outside allowed_clients
    let proxy = Proxy::start(
        d.path(),
        &sim.url(),
        &["--enforce", "--allowed-client", "10.0.0.0/8"],
        &env,
    );
    let c = Client::new(&proxy.url);
    let (st, body) = c.call(&admin, "GET", "/api/v1/transfers", None);
    assert_eq!(st, 403);
    assert_eq!(body["code"], "client_not_allowed");
    let (st, _) = c.login_raw("payvy");
    assert_eq!(st, 403);
    let f = wait_finding(d.path(), "proxy.client-refused");
    assert!(f["message"].as_str().unwrap().contains("127.0.0.1"), "{f}");
    proxy.stop();
    let proxy = Proxy::start(
        d.path(),
        &sim.url(),
        &["--enforce", "--allowed-client", "127.0.0.1"],
        &env,
    );
    let c = Client::new(&proxy.url);
    assert_eq!(c.call(&admin, "GET", "/api/v1/transfers", None).0, 200);
    let log = proxy.stop();
    assert_clean(
        d.path(),
        &[
            key("reader"),
            key("payer"),
            key("payvy"),
            reader,
            payer,
            admin,
        ],
        &log,
    );
}

#[test]
fn the_money_guard_holds_a_transfer_to_a_new_beneficiary_until_released() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    let proxy = Proxy::start(d.path(), &sim.url(), &["--money-guard", "60"], &env);
    let c = Client::new(&proxy.url);
    let t = c.login("payer");
    let (_, ben) = c.call(
        &t,
        "POST",
        "/api/v1/beneficiaries/create",
        Some(json!({"beneficiary": {"entity_type": "PERSONAL"}})),
    );
    let ben_id = ben["id"].as_str().unwrap().to_string();
    let pay =
        json!({"beneficiary_id": ben_id, "transfer_amount": 5000, "transfer_currency": "USD"});
    let (st, body) = c.call(&t, "POST", "/api/v1/transfers/create", Some(pay.clone()));
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["code"], "transfer_held");
    assert!(sim.sim.items("transfers").is_empty());
    // a beneficiary the proxy never saw created (older, or made elsewhere) is not held
    let old = sim
        .add_activity(
            "beneficiaries",
            vec![json!({"created_at": "2026-01-01T00:00:00+0000"})],
        )
        .unwrap();
    let (st, _) = c.call(
        &t,
        "POST",
        "/api/v1/transfers/create",
        Some(json!({"beneficiary_id": old[0]["id"], "transfer_amount": 1, "transfer_currency": "USD"})),
    );
    assert_eq!(st, 201);
    let f = wait_finding(d.path(), "proxy.transfer-held");
    assert_eq!(f["key"], "payer");
    assert_eq!(f["severity"], "critical");
    let steps = f["recommendation"]["steps"].to_string();
    let id = f["id"].as_str().unwrap();
    assert!(
        steps.contains(&format!("awxguard findings ack {id}")),
        "{steps}"
    );
    // released by acknowledging the finding
    let out = awxguard(d.path())
        .env("AWXGUARD_DB", db(d.path()))
        .args(["findings", "ack", id, "--reason", "payee checked by phone"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (st, tr) = c.call(&t, "POST", "/api/v1/transfers/create", Some(pay));
    assert_eq!(st, 201, "{tr}");
    let log = proxy.stop();
    assert!(log.contains("released"), "{log}");
}

#[test]
fn upstream_down_gives_a_clear_502_and_a_recorded_event() {
    let d = tempdir();
    let (_sim, env) = setup(d.path());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let upstream = format!("http://{closed}");
    let proxy = Proxy::start(d.path(), &upstream, &[], &env);
    let c = Client::new(&proxy.url);
    let (st, body) = c.login_raw("payvy");
    assert_eq!(st, 502);
    assert_eq!(body["code"], "bad_gateway");
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains(&upstream) && msg.contains("failed"), "{msg}");
    let ev = wait_events(d.path(), 1);
    assert_eq!(ev[0]["status"], 502);
    assert_eq!(ev[0]["key"], "payvy");
    assert_eq!(proxy.counters()["upstream_errors"], 1);
    let log = proxy.stop();
    assert_clean(d.path(), &[key("payvy")], &log);
}

#[test]
fn a_locked_store_loses_no_event() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    let proxy = Proxy::start(d.path(), &sim.url(), &[], &env);
    let c = Client::new(&proxy.url);
    let token = c.login("payvy");
    wait_events(d.path(), 1);
    // another process holds the database's write lock for a while
    let lock = rusqlite::Connection::open(db(d.path())).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for _ in 0..40 {
        assert_eq!(
            c.call(&token, "GET", "/api/v1/balances/current", None).0,
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.counters()["spilled"].as_u64().unwrap() < 40 {
        assert!(Instant::now() < deadline, "{}", proxy.counters());
        std::thread::sleep(Duration::from_millis(25));
    }
    let spill_dir = d.path().join("db").join("proxy-spill");
    let spilled: Vec<PathBuf> = walk(&spill_dir);
    assert!(!spilled.is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in &spilled {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
    let spill_text: String = spilled
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(spill_text.lines().count(), 40);
    for l in spill_text.lines() {
        let e: Value = serde_json::from_str(l).unwrap();
        assert_eq!(e["key"], "payvy");
    }
    assert_no_secret(&spill_text, &key("payvy"), "spill file");
    assert_no_secret(&spill_text, &token, "spill file");
    drop(lock); // rolls back, releases
    let ev = wait_events(d.path(), 41);
    assert_eq!(ev.len(), 41, "40 alike calls stay 40 events");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !walk(&spill_dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "spill files left: {:?}",
            walk(&spill_dir)
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let counters = proxy.counters();
    assert_eq!(counters["unspilled"], 40);
    assert_eq!(counters["dropped"], 0);
    let log = proxy.stop();
    assert!(log.contains("the store refused usage events"), "{log}");
    assert!(log.contains("proxy-spill"), "{log}");
    // the spill file is usage-event lines `usage ingest` reads as the same events the proxy
    // read back: ingesting a copy adds nothing
    write(d.path(), "spill-copy.jsonl", &spill_text);
    let o = awxguard(d.path())
        .env("AWXGUARD_DB", db(d.path()))
        // the proxy stamps events with the system clock: so does this ingest
        .env_remove("AWXGUARD_NOW")
        .args(["--config", "awxguard.toml", "--format", "json"])
        .args(["usage", "ingest", "spill-copy.jsonl"])
        .output()
        .unwrap();
    assert!(code(&o) <= 1, "{}", stderr(&o));
    let u = &json(&o)["summary"]["usage"];
    assert_eq!(
        (&u["events"], &u["new"], &u["duplicates"]),
        (&json!(40), &json!(0), &json!(40)),
        "{u}"
    );
    assert_eq!(events(d.path()).len(), 41);
    assert_clean(d.path(), &[key("payvy"), token], &log);
}

/// The proxy's events are the usage evidence store's: `usage stats` counts them and the anomaly
/// detection judges them (a call needing a scope the key does not declare).
#[test]
fn proxy_events_show_in_usage_stats_and_feed_the_anomaly_detectors() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    // judge the newest events at once (no lateness allowance)
    let mut config = std::fs::read_to_string(d.path().join("awxguard.toml")).unwrap();
    config.push_str("\n[usage]\nlateness = \"0s\"\n");
    write(d.path(), "awxguard.toml", config);
    let proxy = Proxy::start(d.path(), &sim.url(), &[], &env);
    let c = Client::new(&proxy.url);
    let reader = c.login("reader");
    for _ in 0..3 {
        c.call(&reader, "GET", "/api/v1/transfers", None);
    }
    // beneficiary:write: not declared by reader (not enforced: it passes and is recorded)
    c.call(
        &reader,
        "POST",
        "/api/v1/beneficiaries/create",
        Some(json!({"beneficiary": {}})),
    );
    wait_events(d.path(), 5);
    let cli = |args: &[&str]| {
        awxguard(d.path())
            .env("AWXGUARD_DB", db(d.path()))
            .env_remove("AWXGUARD_NOW")
            .args(["--config", "awxguard.toml", "--format", "json"])
            .args(args)
            .output()
            .unwrap()
    };
    let o = cli(&["usage", "stats"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let st = json(&o);
    let keys = st["summary"]["usage"]["keys"].as_array().unwrap();
    let r = keys
        .iter()
        .find(|k| k["key"] == "reader")
        .expect("reader in usage stats");
    assert_eq!(r["events"], 5, "{r}");
    assert_eq!(r["raw_events"], 5, "{r}");
    // detection runs over everything stored when usage is ingested (here: nothing new)
    write(d.path(), "none.jsonl", "");
    let o = cli(&["usage", "ingest", "none.jsonl"]);
    assert!(code(&o) <= 1, "{}", stderr(&o));
    let found = json(&o)["findings"].as_array().unwrap().clone();
    let f = found
        .iter()
        .find(|f| f["rule"] == "usage.undeclared-scope" && f["key"] == "reader")
        .unwrap_or_else(|| panic!("no undeclared-scope finding: {found:#?}"));
    assert!(f.to_string().contains("beneficiary:write"), "{f}");
    let o = cli(&["usage", "anomalies"]);
    assert!(
        json(&o)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == f["id"]),
        "{}",
        stdout(&o)
    );
    let log = proxy.stop();
    assert_clean(d.path(), &[key("reader"), reader], &log);
}

/// A TLS server on loopback with a self-signed certificate, serving the simulator.
fn tls_simulator(sim: &SimHandle) -> (String, String) {
    use hyper_util::rt::TokioIo;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key_der)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let router = sim.sim.router();
    std::thread::spawn(move || {
        rt().block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            loop {
                let (s, peer) = l.accept().await.unwrap();
                let (acceptor, router) = (acceptor.clone(), router.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(
                        router.layer(axum::extract::connect_info::MockConnectInfo(peer)),
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        })
    });
    (format!("https://localhost:{port}"), pem)
}

#[test]
fn tls_to_an_upstream_with_a_self_signed_certificate_the_proxy_is_told_to_trust() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    let (url, pem) = tls_simulator(&sim);
    write(d.path(), "upstream-ca.pem", &pem);
    let proxy = Proxy::start(d.path(), &url, &["--upstream-ca", "upstream-ca.pem"], &env);
    let c = Client::new(&proxy.url);
    let token = c.login("payvy");
    assert_eq!(c.call(&token, "GET", "/api/v1/transfers", None).0, 200);
    let ev = wait_events(d.path(), 2);
    assert!(ev.iter().all(|e| e["key"] == "payvy"));
    proxy.stop();
    // not trusted: a clear 502, nothing sent in clear
    let proxy = Proxy::start(d.path(), &url, &[], &env);
    let (st, body) = Client::new(&proxy.url).login_raw("payvy");
    assert_eq!(st, 502, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("certificate"),
        "{body}"
    );
    proxy.stop();
    // and plain HTTP to a non-loopback host is refused at start
    let out = run(
        d.path(),
        &[
            "proxy",
            "--upstream",
            "http://api.airwallex.com",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("plain HTTP"), "{}", stderr(&out));
}

#[test]
fn bodies_stream_through_without_being_buffered() {
    use std::io::{Read, Write};
    let d = tempdir();
    // an upstream that sends the first half of a chunked answer, then waits until the client
    // has it: a proxy that buffered the answer would never pass the first half on
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("http://{}", l.local_addr().unwrap());
    let (got_first, wait_first) = std::sync::mpsc::channel::<()>();
    let wait_first = Arc::new(Mutex::new(wait_first));
    std::thread::spawn(move || {
        // (the proxy's start-up egress check connects once without a request)
        for s in l.incoming() {
            let mut s = s.unwrap();
            let wait_first = wait_first.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut b = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                }
                s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst \r\n",
                )
                .unwrap();
                s.flush().unwrap();
                let _ = wait_first
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(10));
                s.write_all(b"4\r\nhalf\r\n0\r\n\r\n").unwrap();
                s.flush().unwrap();
                std::thread::sleep(Duration::from_millis(200));
            });
        }
    });
    let proxy = Proxy::start(d.path(), &upstream, &[], &[]);
    let body = rt().block_on(async {
        let mut r = reqwest::get(format!("{}/api/v1/financial_transactions", proxy.url))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let first = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .expect("the first half arrives before the upstream sends the rest")
            .unwrap()
            .unwrap();
        got_first.send(()).unwrap();
        let mut all = first.to_vec();
        while let Some(c) = r.chunk().await.unwrap() {
            all.extend_from_slice(&c);
        }
        String::from_utf8(all).unwrap()
    });
    assert_eq!(body, "first half");
    let ev = wait_events(d.path(), 1);
    assert_eq!(ev[0]["status"], 200);
    assert_eq!(ev[0]["key"], "unknown");
    proxy.stop();
}

#[test]
fn a_client_that_goes_away_mid_request_still_gets_its_event() {
    let d = tempdir();
    // an upstream that accepts and never answers
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    let proxy = Proxy::start(d.path(), &upstream, &[], &[]);
    let r = rt().block_on(async {
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap()
            .get(format!("{}/api/v1/transfers", proxy.url))
            .send()
            .await
    });
    assert!(r.is_err(), "the client gave up");
    let ev = wait_events(d.path(), 1);
    assert_eq!(ev[0]["status"], 499, "client closed request");
    proxy.stop();
}

#[test]
fn the_proxy_section_of_the_config_sets_enforcement_and_allowed_clients() {
    let d = tempdir();
    let (sim, env) = setup(d.path());
    let mut config = std::fs::read_to_string(d.path().join("awxguard.toml")).unwrap();
    config.push_str("\n[proxy]\nenforce = [\"reader\"]\nallowed_clients = [\"127.0.0.1\"]\n");
    write(d.path(), "awxguard.toml", config);
    let proxy = Proxy::start(d.path(), &sim.url(), &[], &env);
    let c = Client::new(&proxy.url);
    let reader = c.login("reader");
    let (st, body) = c.call(&reader, "GET", "/api/v1/webhooks", None);
    assert_eq!((st, body["code"].as_str()), (403, Some("undeclared_scope")));
    assert_eq!(c.call(&reader, "GET", "/api/v1/transfers", None).0, 200);
    let admin = c.login("payvy");
    assert_eq!(
        c.call(&admin, "GET", "/api/v1/webhooks", None).0,
        200,
        "payvy is not enforced"
    );
    proxy.stop();
}
