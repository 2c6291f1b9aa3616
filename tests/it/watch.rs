//! The money-movement watch (`awxguard watch`) against the simulator over real HTTP, the binary
//! run once per poll (each poll a fresh process: a restart every time), the clocks of both
//! pinned (`AWXGUARD_NOW` and the simulator's manual clock), no sleeps: paging across several
//! pages of every list, a first run's look-back, resumption after a 429 (nothing reported twice,
//! nothing missed, late items and equal timestamps at the boundary included), a payee created and
//! paid within minutes from outside the proxy, a webhook changed from outside, write-capable keys
//! refused, and no secret in any output or in the database.

use crate::common::*;
use awxguard::airwallex::format_timestamp;
use awxguard::airwallex::simulator::{Behaviour, SimState, Simulator};
use awxguard::clock::ManualClock;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Output;
use std::sync::Arc;

const T0: &str = "2026-11-24T12:00:00Z";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(T0).unwrap().to_utc()
}

fn at(t: DateTime<Utc>) -> String {
    format_timestamp(&t)
}

/// A simulator on its own thread and runtime, on a manual clock, and a directory with a config
/// whose `[watch]` reads with the read-only key `watcher`.
struct Env {
    dir: TestDir,
    sim: Simulator,
    url: String,
    clock: Arc<ManualClock>,
}

fn watcher_key() -> String {
    key("watch-reader")
}

fn outsider_key() -> String {
    key("watch-outsider")
}

impl Env {
    fn new(state: SimState, watch_toml: &str) -> Env {
        Env::starting(state, watch_toml, t0())
    }

    /// With the clocks starting at `start`.
    fn starting(mut state: SimState, watch_toml: &str, start: DateTime<Utc>) -> Env {
        state = state
            .with_key(&client_id("watcher"), &watcher_key(), Behaviour::Live)
            .with_key(&client_id("outsider"), &outsider_key(), Behaviour::Live);
        let n = state.keys.len();
        state.keys[n - 2].permissions = vec!["r:awx:*:*".into()];
        let clock = Arc::new(ManualClock::new(start));
        let sim = Simulator::with_clock(state, clock.clone());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let served = sim.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let l = tokio::net::TcpListener::from_std(l).unwrap();
                    served.serve(l).await
                })
        });
        let dir = tempdir();
        write(
            dir.path(),
            "awxguard.toml",
            format!(
                "[airwallex]\nbase_url = \"{url}\"\nretries = 1\nretry_base_ms = 1\n\
                 timeout_ms = 5000\n\n\
                 [[key]]\nname = \"watcher\"\nclient_id = \"{}\"\napi_key = \"env:WATCH_KEY\"\n\
                 environment = \"production\"\nkind = \"read_only\"\nowner = \"finance\"\n\n\
                 [watch]\nkey = \"watcher\"\n{watch_toml}\n",
                client_id("watcher")
            ),
        );
        Env {
            dir,
            sim,
            url,
            clock,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        awxguard::clock::Clock::now(self.clock.as_ref())
    }

    fn advance(&self, minutes: i64) {
        self.clock.advance(Duration::minutes(minutes));
    }

    fn run(&self, args: &[&str]) -> Output {
        awxguard(self.dir.path())
            .env("AWXGUARD_NOW", self.now().to_rfc3339())
            .env("WATCH_KEY", watcher_key())
            .args(["--config", "awxguard.toml"])
            .args(args)
            .output()
            .unwrap()
    }

    /// One poll, JSON report.
    fn poll(&self) -> Value {
        let o = self.run(&["--format", "json", "watch"]);
        assert!(
            code(&o) == 0 || code(&o) == 1,
            "watch failed ({}):\n{}\n{}",
            code(&o),
            stdout(&o),
            stderr(&o)
        );
        let v = json(&o);
        self.no_secret(&stdout(&o), "watch report");
        self.no_secret(&stderr(&o), "watch log");
        v
    }

    fn add(&self, collection: &str, items: Vec<Value>) {
        self.sim.add_activity(collection, items).unwrap();
    }

    /// A call from elsewhere with the outsider's key (not through any proxy).
    fn outsider_post(&self, path: &str, body: Value) -> Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let http = reqwest::Client::new();
            let login: Value = http
                .post(format!("{}/api/v1/authentication/login", self.url))
                .header("x-client-id", client_id("outsider"))
                .header("x-api-key", outsider_key())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let token = login["token"].as_str().unwrap().to_string();
            http.post(format!("{}{path}", self.url))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    fn no_secret(&self, text: &str, what: &str) {
        assert_no_secret(text, &watcher_key(), what);
        assert_no_secret(text, &outsider_key(), what);
    }

    fn db_has_no_secret(&self) {
        let bytes = db_contents(self.dir.path());
        self.no_secret(&String::from_utf8_lossy(&bytes), "the database");
    }

    /// GET requests the simulator answered, by path.
    fn gets(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.sim.requests() {
            if r.method == "GET" {
                *m.entry(r.path).or_insert(0) += 1;
            }
        }
        m
    }
}

fn list<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["summary"]["watch"]["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["list"] == name)
        .unwrap_or_else(|| panic!("no list {name} in {report}"))
}

fn findings(report: &Value) -> Vec<Value> {
    report["findings"].as_array().unwrap().clone()
}

fn beneficiary(id: &str, created: DateTime<Utc>, account: &str) -> Value {
    json!({
        "id": id,
        "created_at": at(created),
        "beneficiary": {
            "entity_type": "COMPANY",
            "company_name": format!("Payee {id}"),
            "bank_details": {"account_number": account, "bank_country_code": "GB",
                             "account_currency": "GBP"}
        }
    })
}

fn transfer(id: &str, ben: &str, amount: f64, created: DateTime<Utc>) -> Value {
    json!({
        "id": id, "beneficiary_id": ben, "transfer_amount": amount,
        "transfer_currency": "GBP", "created_at": at(created), "status": "SCHEDULED"
    })
}

#[test]
fn every_list_is_paged_and_a_first_run_reads_its_look_back_then_only_what_is_new() {
    let now = t0();
    let mut s = SimState::default();
    let old_payee = beneficiary("ben_old", now - Duration::days(300), "40001234");
    let mut bens = vec![old_payee];
    for i in 1..=23 {
        bens.push(beneficiary(
            &format!("ben_{i:02}"),
            now - Duration::hours(9 * i),
            &format!("5500{i:04}"),
        ));
    }
    for i in 1..=3 {
        bens.push(beneficiary(
            &format!("ben_pre{i}"),
            now - Duration::days(20 + i),
            "77770000",
        ));
    }
    s.data.insert("beneficiaries".into(), bens);
    let mut trs = Vec::new();
    for i in 1..=25 {
        trs.push(transfer(
            &format!("tr_{i:02}"),
            "ben_old",
            100.0 + 4.0 * i as f64,
            now - Duration::hours(7 * i),
        ));
    }
    for i in 1..=4 {
        trs.push(transfer(
            &format!("tr_pre{i}"),
            "ben_old",
            120.0,
            now - Duration::days(11) - Duration::hours(i),
        ));
    }
    s.data.insert("transfers".into(), trs);
    s.data.insert(
        "webhooks".into(),
        (1..=15)
            .map(|i| {
                json!({"id": format!("wh_{i:02}"), "url": format!("https://hooks.acme.example/{i}"),
                       "created_at": at(now - Duration::days(200 + i)), "events": ["payout.transfer.paid"]})
            })
            .collect(),
    );
    s.data.insert(
        "financial_transactions".into(),
        (1..=12)
            .map(|i| {
                json!({"id": format!("ft_{i:02}"), "amount": -50.0, "currency": "GBP",
                       "created_at": at(now - Duration::hours(13 * i)), "transaction_type": "PAYOUT"})
            })
            .collect(),
    );
    s.data.insert(
        "balance_history".into(),
        (1..=24)
            .map(|i| {
                json!({"id": format!("bh_{i:02}"), "currency": "GBP", "balance": 50000.0 + i as f64,
                       "amount": -1.0, "posted_at": at(now - Duration::hours(12 * i))})
            })
            .collect(),
    );
    let env = Env::new(s, "lookback = \"10d\"\npage_size = 10\n");

    let r = env.poll();
    assert_eq!(findings(&r), Vec::<Value>::new(), "a quiet account: {r:#}");
    let tr = list(&r, "transfers");
    assert_eq!(
        (tr["new"].as_u64(), tr["pages"].as_u64()),
        (Some(25), Some(3)),
        "{tr}"
    );
    assert_eq!(tr["first_run"], true);
    let be = list(&r, "beneficiaries");
    assert_eq!(
        (be["new"].as_u64(), be["pages"].as_u64()),
        (Some(23), Some(3)),
        "{be}"
    );
    let wh = list(&r, "webhooks");
    assert_eq!(
        (wh["new"].as_u64(), wh["pages"].as_u64()),
        (Some(15), Some(2)),
        "{wh}"
    );
    let ft = list(&r, "financial_transactions");
    assert_eq!(
        (ft["new"].as_u64(), ft["pages"].as_u64()),
        (Some(12), Some(2)),
        "{ft}"
    );
    // Balance history: 10 days read in two windows (at most 7 days a query: 2 pages, then 1),
    // 20 points in them.
    let bh = list(&r, "balance_history");
    assert_eq!(bh["windows"].as_array().unwrap().len(), 2, "{bh}");
    assert_eq!(bh["new"].as_u64(), Some(20), "{bh}");
    assert_eq!(r["summary"]["watch"]["complete"], true);
    // The paging on the wire: three transfer pages by cursor, three beneficiary pages by number;
    // the payee of the transfers, older than the look-back, read once by id.
    let gets = env.gets();
    assert_eq!(gets["/api/v1/transfers"], 3, "{gets:?}");
    assert_eq!(gets["/api/v1/beneficiaries"], 3, "{gets:?}");
    assert_eq!(gets["/api/v1/webhooks"], 2, "{gets:?}");
    assert_eq!(gets["/api/v1/financial_transactions"], 2, "{gets:?}");
    assert_eq!(gets["/api/v1/balances/history"], 3, "{gets:?}");
    assert_eq!(gets["/api/v1/beneficiaries/ben_old"], 1, "{gets:?}");

    // Half an hour later, nothing new: one page of each list (the overlap), nothing new.
    env.advance(30);
    let r = env.poll();
    assert_eq!(findings(&r), Vec::<Value>::new());
    for name in [
        "transfers",
        "beneficiaries",
        "financial_transactions",
        "balance_history",
    ] {
        let l = list(&r, name);
        assert_eq!(
            (l["new"].as_u64(), l["pages"].as_u64()),
            (Some(0), Some(1)),
            "{l}"
        );
        assert_eq!(l["first_run"], false);
    }
    assert_eq!(list(&r, "webhooks")["new"].as_u64(), Some(0));
    env.db_has_no_secret();
}

#[test]
fn a_payee_created_and_paid_within_minutes_from_outside_the_proxy_is_reported_once() {
    let env = Env::new(SimState::default(), "lookback = \"1d\"\n");
    let r = env.poll();
    assert!(findings(&r).is_empty());
    // From elsewhere (the web app, or a leaked key not behind the proxy): a payee, and four
    // minutes later 9,500 GBP to it.
    env.advance(10);
    let created = env.now();
    env.add(
        "beneficiaries",
        vec![beneficiary("ben_7f3a", created, "31926819")],
    );
    env.advance(4);
    env.add(
        "transfers",
        vec![transfer("tr_91c2", "ben_7f3a", 9500.0, env.now())],
    );
    env.advance(1);
    let o = env.run(&["--format", "json", "-vv", "watch"]);
    assert_eq!(code(&o), 1, "a high finding fails the run: {}", stderr(&o));
    env.no_secret(&stderr(&o), "-vv log");
    let r = json(&o);
    let f = findings(&r);
    assert_eq!(f.len(), 1, "{r:#}");
    let f = &f[0];
    assert_eq!(f["rule"], "watch.new-payee-paid");
    assert_eq!(f["severity"], "high");
    assert_eq!(f["status"], "new");
    assert!(f.get("key").is_none(), "no proxied key: {f}");
    let msg = f["message"].as_str().unwrap();
    for want in [
        "tr_91c2",
        "ben_7f3a",
        "9,500.00 GBP",
        "4 minutes",
        "no proxied key",
    ] {
        assert!(msg.contains(want), "{want} not in {msg}");
    }
    assert!(
        !msg.contains("31926819"),
        "the account number is never shown: {msg}"
    );
    let ev = &f["evidence"];
    assert_eq!(ev["transfer"]["id"], "tr_91c2");
    assert_eq!(ev["beneficiary"]["id"], "ben_7f3a");
    assert_eq!(ev["beneficiary"]["account"], "…6819");
    assert_eq!(ev["paid_after_seconds"], 240);
    assert_eq!(ev["made_by"][0]["object"], "tr_91c2");
    assert_eq!(ev["made_by"][0]["key"], Value::Null);
    assert_eq!(ev["made_by"][1]["object"], "ben_7f3a");
    assert_eq!(
        f["start"],
        created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    // The human report says the same.
    env.advance(1);
    let o = env.run(&["watch"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "nothing new: {out}");
    assert!(
        out.contains("1 finding of earlier polls still open"),
        "{out}"
    );
    // The next poll does not report it again; the store keeps it open.
    env.advance(5);
    let r = env.poll();
    assert!(findings(&r).is_empty(), "{r:#}");
    assert_eq!(r["summary"]["watch"]["still_open"], 1);
    let o = env.run(&["--format", "json", "findings", "list"]);
    let listed = stdout(&o);
    assert!(listed.contains("tr_91c2"), "{listed}");
    env.db_has_no_secret();
}

#[test]
fn polls_resume_after_429s_and_restarts_and_report_every_payment_exactly_once() {
    let s = SimState {
        api_limit_per_minute: 4,
        ..SimState::default()
    };
    let env = Env::new(
        s,
        "lookback = \"1d\"\nlateness = \"10m\"\npage_size = 10\n\
         lists = [\"beneficiaries\", \"transfers\"]\n",
    );
    let first = env.poll();
    assert!(findings(&first).is_empty());
    // 30 payees, each paid two minutes after it was created; three payments share one second.
    let base = env.now();
    let mut bens = Vec::new();
    let mut trs = Vec::new();
    for i in 0..30 {
        let c = base + Duration::minutes(1 + i);
        bens.push(beneficiary(&format!("ben_{i:02}"), c, "12345678"));
        let paid = if (10..13).contains(&i) {
            base + Duration::minutes(20)
        } else {
            c + Duration::minutes(2)
        };
        trs.push(transfer(
            &format!("tr_{i:02}"),
            &format!("ben_{i:02}"),
            250.0,
            paid,
        ));
    }
    env.add("beneficiaries", bens);
    env.add("transfers", trs);
    env.advance(45);

    let mut reported: BTreeMap<String, usize> = BTreeMap::new();
    // Each new payee paid is one finding (by transfer id); the 30 payouts in half an hour are
    // also one burst, which later payouts extend: the same finding, `open` with its new
    // evidence, never `new` again.
    fn collect(reported: &mut BTreeMap<String, usize>, r: &Value) {
        for f in findings(r) {
            if f["status"] == "open" && f["rule"] == "watch.payout-burst" {
                continue;
            }
            assert_eq!(f["status"], "new", "{f}");
            let what = match f["rule"].as_str().unwrap() {
                "watch.new-payee-paid" => f["evidence"]["transfer"]["id"].as_str().unwrap(),
                "watch.payout-burst" => "burst",
                other => panic!("unexpected {other}: {f}"),
            };
            *reported.entry(what.to_string()).or_insert(0) += 1;
        }
    }
    let mut polls = 0;
    let mut throttled = 0;
    let mut resumed = 0;
    loop {
        polls += 1;
        assert!(polls < 30, "the watch never completed");
        let r = env.poll();
        collect(&mut reported, &r);
        for l in r["summary"]["watch"]["lists"].as_array().unwrap() {
            if l["stopped"].as_str().is_some_and(|s| s.contains("429")) {
                throttled += 1;
            }
            if l["resumed"] == true {
                resumed += 1;
            }
        }
        if r["summary"]["watch"]["complete"] == true {
            break;
        }
        // A minute later the simulator's rate limit has room again.
        env.advance(1);
    }
    assert!(throttled > 0 && resumed > 0, "{throttled} {resumed}");
    assert!(polls >= 2, "{polls} polls");
    assert_eq!(
        reported.len(),
        31,
        "30 payments and one burst: {reported:?}"
    );
    assert!(reported.values().all(|n| *n == 1), "{reported:?}");

    // A payment that shows up late (its time five minutes before the last poll) is still read;
    // one stamped exactly at the poll's time is read by two polls and reported once.
    env.advance(2);
    let late = env.now() - Duration::minutes(5);
    env.add(
        "beneficiaries",
        vec![beneficiary(
            "ben_late",
            late - Duration::minutes(1),
            "99990000",
        )],
    );
    env.add(
        "transfers",
        vec![transfer("tr_late", "ben_late", 80.0, late)],
    );
    env.add(
        "beneficiaries",
        vec![beneficiary(
            "ben_edge",
            env.now() - Duration::minutes(3),
            "99991111",
        )],
    );
    env.add(
        "transfers",
        vec![transfer("tr_edge", "ben_edge", 80.0, env.now())],
    );
    for _ in 0..10 {
        let r = env.poll();
        collect(&mut reported, &r);
        env.advance(1);
        if r["summary"]["watch"]["complete"] == true && reported.contains_key("tr_edge") {
            break;
        }
    }
    for _ in 0..2 {
        let r = env.poll();
        collect(&mut reported, &r);
        env.advance(1);
    }
    assert_eq!(reported.get("tr_late"), Some(&1), "{reported:?}");
    assert_eq!(reported.get("tr_edge"), Some(&1), "{reported:?}");
    assert_eq!(reported.len(), 33);
    env.db_has_no_secret();
}

#[test]
fn a_webhook_url_changed_from_outside_is_reported_with_the_old_and_new_url() {
    let mut s = SimState::default();
    s.data.insert(
        "webhooks".into(),
        vec![json!({"id": "wh_0001", "url": "https://hooks.acme.example/airwallex",
                    "created_at": at(t0() - Duration::days(90)), "events": ["payout.transfer.paid"]})],
    );
    let env = Env::new(s, "");
    let r = env.poll();
    assert!(findings(&r).is_empty(), "the first run's baseline: {r:#}");
    env.advance(3);
    let changed = env.outsider_post(
        "/api/v1/webhooks/wh_0001/update",
        json!({"url": "https://collect.example.net/awx"}),
    );
    assert_eq!(changed["url"], "https://collect.example.net/awx");
    env.advance(1);
    let r = env.poll();
    let f = findings(&r);
    assert_eq!(f.len(), 1, "{r:#}");
    assert_eq!(f[0]["rule"], "watch.webhook-changed");
    assert_eq!(
        f[0]["evidence"]["previous_url"],
        "https://hooks.acme.example/airwallex"
    );
    assert_eq!(
        f[0]["evidence"]["webhook"]["url"],
        "https://collect.example.net/awx"
    );
    assert!(f[0]["message"].as_str().unwrap().contains("no proxied key"));
    env.advance(1);
    assert!(findings(&env.poll()).is_empty());
}

#[test]
fn a_key_that_can_write_is_refused_unless_allowed() {
    let env = Env::new(SimState::default(), "");
    // Declared admin.
    let cfg = std::fs::read_to_string(env.dir.path().join("awxguard.toml")).unwrap();
    write(
        env.dir.path(),
        "awxguard.toml",
        cfg.replace("kind = \"read_only\"", "kind = \"admin\""),
    );
    let o = env.run(&["watch"]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("refusing to watch with watcher"), "{err}");
    assert!(err.contains("declared an admin key"), "{err}");
    assert!(
        env.sim.requests().is_empty(),
        "nothing sent before the refusal"
    );
    // Declared read-only, but its token can write: refused after the login.
    let env = Env::new(SimState::default(), "");
    let cfg = std::fs::read_to_string(env.dir.path().join("awxguard.toml")).unwrap();
    write(
        env.dir.path(),
        "awxguard.toml",
        cfg.replace(&client_id("watcher"), &client_id("outsider")),
    );
    let o = awxguard(env.dir.path())
        .env("AWXGUARD_NOW", T0)
        .env("WATCH_KEY", outsider_key())
        .args(["--config", "awxguard.toml", "watch"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("its token carries write permissions (w:awx:*:*)"),
        "{}",
        stderr(&o)
    );
    env.no_secret(&stderr(&o), "refusal");
    // Allowed: a warning in the report.
    write(
        env.dir.path(),
        "awxguard.toml",
        std::fs::read_to_string(env.dir.path().join("awxguard.toml"))
            .unwrap()
            .replace("[watch]\n", "[watch]\nallow_write_key = true\n"),
    );
    let o = awxguard(env.dir.path())
        .env("AWXGUARD_NOW", T0)
        .env("WATCH_KEY", outsider_key())
        .args(["--config", "awxguard.toml", "watch"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("warning: watcher can write"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn rules_check_runs_the_watch_examples_and_fails_on_a_bad_one() {
    let d = tempdir();
    let o = run(d.path(), &["rules", "check"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("watch rules, ") && stdout(&o).contains("examples: all pass"),
        "{}",
        stdout(&o)
    );
    // A user rule whose negative example fires.
    write(
        d.path(),
        "mine/watch.toml",
        r#"
[[rule]]
id = "watch.fast-payee"
name = "Payee paid within a day"
detector = "new-payee-paid"
severity = "medium"
action = "investigate"
description = "d"
message = "{transfer} to {payee}"
params = { minutes = 1440, unknown_payee = false }

[[rule.examples]]
beneficiaries = [{ id = "b", created_at = "2026-11-20T10:00:00Z" }]
transfers = [{ id = "t", beneficiary_id = "b", amount = 1.0, currency = "USD", created_at = "2026-11-20T18:00:00Z", new = true }]

[[rule.negative_examples]]
beneficiaries = [{ id = "b", created_at = "2026-11-20T10:00:00Z" }]
transfers = [{ id = "t", beneficiary_id = "b", amount = 1.0, currency = "USD", created_at = "2026-11-20T12:00:00Z", new = true }]
"#,
    );
    let o = run(d.path(), &["rules", "check", "--watch-rules", "mine"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("FAIL watch.fast-payee negative example 1 (must not fire)"),
        "{}",
        stdout(&o)
    );
}

/// A running `awxguard proxy` on the watch's database, stopped (and its queue flushed) on
/// `stop`.
struct ProxyProcess {
    child: std::process::Child,
    url: String,
    log: Arc<std::sync::Mutex<String>>,
}

impl ProxyProcess {
    fn start(env: &Env, secrets: &[(&str, String)]) -> ProxyProcess {
        use std::io::{BufRead, BufReader};
        // The proxy runs on the wall clock: it judges the tokens the simulator issues (on the
        // test's clock, started at the wall clock's time) by their expiry.
        let mut cmd = awxguard(env.dir.path());
        cmd.env_remove("AWXGUARD_NOW")
            .args([
                "--config",
                "awxguard.toml",
                "proxy",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--upstream", &env.url])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in secrets {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start proxy");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
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
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("proxy did not start:\n{}", log.lock().unwrap()));
        ProxyProcess { child, url, log }
    }

    /// SIGTERM: the proxy drains its queue into the store before it exits.
    fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        let log = self.log.lock().unwrap().clone();
        assert!(status.success(), "proxy exited {status}:\n{log}");
        log
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_same_payee_paid_through_the_proxy_is_attributed_to_the_key_that_made_it() {
    let payouts_key = key("watch-payouts");
    let state = SimState::default().with_key(&client_id("payouts"), &payouts_key, Behaviour::Live);
    let wall = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let env = Env::starting(state, "lookback = \"1d\"\n", wall);
    // The integration's key, declared so the proxy names it.
    let cfg = std::fs::read_to_string(env.dir.path().join("awxguard.toml")).unwrap();
    write(
        env.dir.path(),
        "awxguard.toml",
        format!(
            "{cfg}\n[[key]]\nname = \"payouts\"\nclient_id = \"{}\"\napi_key = \"env:PAYOUTS_KEY\"\n\
             environment = \"production\"\nkind = \"custom\"\n\
             scopes = [\"beneficiary:write\", \"transfer:write\"]\nowner = \"finance\"\n",
            client_id("payouts")
        ),
    );
    assert!(findings(&env.poll()).is_empty());
    let proxy = ProxyProcess::start(&env, &[("PAYOUTS_KEY", payouts_key.clone())]);
    // The integration, through the proxy: a payee, and four minutes later a payment to it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| -> Value {
        rt.block_on(async {
            let mut r = http.post(format!("{}{path}", proxy.url)).json(&body);
            r = match token {
                Some(t) => r.bearer_auth(t),
                None => r
                    .header("x-client-id", client_id("payouts"))
                    .header("x-api-key", &payouts_key),
            };
            let r = r.send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json().await.unwrap()
        })
    };
    env.advance(10);
    let token = post("/api/v1/authentication/login", None, json!({}));
    let token = token["token"].as_str().unwrap().to_string();
    let ben = post(
        "/api/v1/beneficiaries/create",
        Some(&token),
        json!({"beneficiary": {"entity_type": "COMPANY", "company_name": "Northwind Trading",
               "bank_details": {"account_number": "31926819", "bank_country_code": "GB"}}}),
    );
    env.advance(4);
    let tr = post(
        "/api/v1/transfers/create",
        Some(&token),
        json!({"beneficiary_id": ben["id"], "transfer_amount": 9500, "transfer_currency": "GBP"}),
    );
    let log = proxy.stop();
    env.no_secret(&log, "proxy log");
    assert_no_secret(&log, &payouts_key, "proxy log");
    env.advance(1);
    let r = env.poll();
    let f = findings(&r);
    assert_eq!(f.len(), 1, "{r:#}");
    let f = &f[0];
    assert_eq!(f["rule"], "watch.new-payee-paid");
    assert_eq!(
        f["key"], "payouts",
        "attributed to the key whose proxied calls made it: {f}"
    );
    assert_eq!(f["evidence"]["transfer"]["id"], tr["id"]);
    assert_eq!(f["evidence"]["beneficiary"]["id"], ben["id"]);
    let made_by = f["evidence"]["made_by"].as_array().unwrap();
    assert_eq!(made_by[0]["key"], "payouts");
    assert_eq!(made_by[0]["call"]["path"], "/api/v1/transfers/create");
    assert_eq!(made_by[1]["key"], "payouts");
    assert_eq!(made_by[1]["call"]["path"], "/api/v1/beneficiaries/create");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains("payouts (proxied POST"), "{msg}");
    assert!(!msg.contains("no proxied key"), "{msg}");
    assert!(
        !r["summary"]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("no proxy record")),
        "{r:#}"
    );
    env.db_has_no_secret();
    let bytes = String::from_utf8_lossy(&db_contents(env.dir.path())).into_owned();
    assert_no_secret(&bytes, &payouts_key, "the database");
    assert_no_secret(&bytes, &token, "the database");
}
