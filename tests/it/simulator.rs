//! The simulator's read endpoints over real HTTP: paging, date filters, the 7-day limit of
//! balance history, permission checks by token claims, 401, 403 and 429.

use crate::common::{client_id, key, SimHandle, SpawnSimulator};
use awxguard::airwallex::simulator::{Behaviour, SimState, Simulator};
use awxguard::airwallex::{Client, ClientSettings, Error, LoginOutcome};
use awxguard::secret::Secret;
use serde_json::{json, Value};
use std::time::Duration;

fn client(url: &str) -> Client {
    let mut s = ClientSettings::new(url);
    s.retries = 0;
    s.retry_base = Duration::from_millis(1);
    s.timeout = Duration::from_secs(5);
    Client::new(s).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// 45 transfers, one a day from 2026-10-01, 12 beneficiaries, a webhook, balances and history.
fn seeded() -> SimState {
    let mut s = SimState::default()
        .with_key(&client_id("admin"), &key("admin"), Behaviour::Live)
        .with_key(&client_id("reader"), &key("reader"), Behaviour::Live);
    s.keys[1].permissions = vec!["transfer:read".into()];
    let day = |d: i64| {
        let t = chrono::DateTime::parse_from_rfc3339("2026-10-01T08:00:00Z").unwrap()
            + chrono::Duration::days(d);
        awxguard::airwallex::format_timestamp(&t)
    };
    s.data.insert(
        "transfers".into(),
        (0..45)
            .map(|i| json!({"id": format!("tr_{i:03}"), "created_at": day(i), "amount": 100 + i, "currency": "USD"}))
            .collect(),
    );
    s.data.insert(
        "beneficiaries".into(),
        (0..12)
            .map(|i| json!({"id": format!("ben_{i:03}"), "created_at": day(i)}))
            .collect(),
    );
    s.data.insert(
        "webhooks".into(),
        vec![json!({"id": "wh_1", "url": "https://hooks.example.com/awx", "created_at": day(0)})],
    );
    s.data.insert(
        "balances".into(),
        vec![json!({"currency": "USD", "available_amount": 1000.5})],
    );
    s.data.insert(
        "balance_history".into(),
        (0..20)
            .map(|i| json!({"id": format!("bh_{i}"), "posted_at": day(i), "amount": 1}))
            .collect(),
    );
    s.data.insert(
        "account".into(),
        vec![json!({"id": "acct_AbCdEfGhIjKlMnOpQrStUv", "status": "ACTIVE"})],
    );
    s
}

struct Session {
    rt: tokio::runtime::Runtime,
    client: Client,
    token: Secret<String>,
}

impl Session {
    fn new(sim: &SimHandle, who: &str) -> Session {
        let rt = rt();
        let client = client(&sim.url());
        let token = match rt.block_on(client.login(&client_id(who), &Secret::new(key(who)))) {
            LoginOutcome::Live(t) => t.token,
            other => panic!("login failed: {other:?}"),
        };
        Session { rt, client, token }
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, Error> {
        let q: Vec<(&str, String)> = query.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.rt
            .block_on(self.client.get_json(&self.token, path, &q))
    }
}

#[test]
fn transfers_page_by_cursor_and_filter_by_creation_time() {
    let sim = Simulator::spawn(seeded()).unwrap();
    let s = Session::new(&sim, "admin");
    let first = s.get("/api/v1/transfers", &[("page_size", "20")]).unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 20);
    assert_eq!(first["has_more"], true);
    // newest first, in Airwallex's time format
    assert_eq!(first["items"][0]["id"], "tr_044");
    assert_eq!(first["items"][0]["created_at"], "2026-11-14T08:00:00+0000");
    let mut seen: Vec<String> = vec![];
    let mut page = first;
    loop {
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_string()),
        );
        if page["has_more"] != true {
            break;
        }
        let cursor = page["page_after"].as_str().unwrap().to_string();
        page = s
            .get(
                "/api/v1/transfers",
                &[("page_size", "20"), ("page", &cursor)],
            )
            .unwrap();
    }
    assert_eq!(seen.len(), 45);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 45);
    let window = s
        .get(
            "/api/v1/transfers",
            &[
                ("from_created_at", "2026-10-03T00:00:00+0000"),
                ("to_created_at", "2026-10-05T23:59:59Z"),
            ],
        )
        .unwrap();
    let ids: Vec<&str> = window["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tr_004", "tr_003", "tr_002"]);
    assert_eq!(window["has_more"], false);
    let one = s.get("/api/v1/transfers/tr_007", &[]).unwrap();
    assert_eq!(one["amount"], 107);
    let e = s.get("/api/v1/transfers/tr_999", &[]).unwrap_err();
    assert_eq!(e.status(), Some(404));
    let e = s
        .get("/api/v1/transfers", &[("page", "garbage")])
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
}

#[test]
fn beneficiaries_page_by_number_with_at_least_ten_a_page() {
    let sim = Simulator::spawn(seeded()).unwrap();
    let s = Session::new(&sim, "admin");
    let p0 = s
        .get(
            "/api/v1/beneficiaries",
            &[("page_num", "0"), ("page_size", "10")],
        )
        .unwrap();
    assert_eq!(p0["items"].as_array().unwrap().len(), 10);
    assert_eq!(p0["has_more"], true);
    let p1 = s
        .get(
            "/api/v1/beneficiaries",
            &[("page_num", "1"), ("page_size", "10")],
        )
        .unwrap();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["has_more"], false);
    let e = s
        .get("/api/v1/beneficiaries", &[("page_size", "5")])
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    let dated = s
        .get("/api/v1/beneficiaries", &[("from_date", "2026-10-10")])
        .unwrap();
    assert_eq!(dated["items"].as_array().unwrap().len(), 3);
}

#[test]
fn balances_webhooks_account_and_the_seven_day_history_limit() {
    let sim = Simulator::spawn(seeded()).unwrap();
    let s = Session::new(&sim, "admin");
    let cur = s.get("/api/v1/balances/current", &[]).unwrap();
    assert_eq!(cur["items"][0]["currency"], "USD");
    let hooks = s.get("/api/v1/webhooks", &[]).unwrap();
    assert_eq!(hooks["items"][0]["url"], "https://hooks.example.com/awx");
    assert_eq!(s.get("/api/v1/account", &[]).unwrap()["status"], "ACTIVE");
    let week = s
        .get(
            "/api/v1/balances/history",
            &[
                ("from_post_at", "2026-10-01T00:00:00+0000"),
                ("to_post_at", "2026-10-07T23:00:00+0000"),
            ],
        )
        .unwrap();
    assert_eq!(week["items"].as_array().unwrap().len(), 7);
    let e = s
        .get(
            "/api/v1/balances/history",
            &[
                ("from_post_at", "2026-10-01T00:00:00+0000"),
                ("to_post_at", "2026-10-09T00:00:00+0000"),
            ],
        )
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("7 days"), "{e}");
    let fin = s.get("/api/v1/financial_transactions", &[]).unwrap();
    assert_eq!(fin, json!({"items": [], "has_more": false}));
}

#[test]
fn permissions_come_from_the_token_claims() {
    let sim = Simulator::spawn(seeded()).unwrap();
    let s = Session::new(&sim, "reader");
    assert!(s.get("/api/v1/transfers", &[]).is_ok());
    let e = s.get("/api/v1/beneficiaries", &[]).unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert!(e.to_string().contains("beneficiary:read"), "{e}");
    let e = s.get("/api/v1/no_such_thing", &[]).unwrap_err();
    assert_eq!(e.status(), Some(404));
    let reqs = sim.requests();
    let api: Vec<_> = reqs
        .iter()
        .filter(|r| r.path != awxguard::airwallex::LOGIN_PATH)
        .collect();
    assert_eq!(api.len(), 3);
    assert!(api.iter().all(
        |r| r.token_of.as_deref() == Some(crate::common::fingerprint(&key("reader")).as_str())
    ));
}

#[test]
fn a_bad_token_gets_401_and_too_many_calls_get_429() {
    let mut state = seeded();
    state.api_limit_per_minute = 2;
    let sim = Simulator::spawn(state).unwrap();
    let s = Session::new(&sim, "admin");
    assert!(s.get("/api/v1/account", &[]).is_ok());
    assert!(s.get("/api/v1/account", &[]).is_ok());
    // the client retries 429 (none here) and then gives up
    assert!(s.get("/api/v1/account", &[]).is_err());
    assert_eq!(sim.requests().last().unwrap().status, 429);
    let bad = Session {
        token: Secret::new("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl".to_string()),
        ..s
    };
    let e = bad.get("/api/v1/account", &[]).unwrap_err();
    assert_eq!(e.status(), Some(401));
}

#[test]
fn the_simulator_log_is_usage_evidence_the_reader_accepts() {
    let sim = Simulator::spawn(seeded()).unwrap();
    let s = Session::new(&sim, "reader");
    s.get("/api/v1/transfers", &[]).unwrap();
    s.get("/api/v1/transfers/tr_001", &[]).unwrap();
    assert!(s.get("/api/v1/beneficiaries", &[]).is_err()); // 403
    let a = Session::new(&sim, "admin");
    a.get("/api/v1/webhooks", &[]).unwrap();
    let text =
        s.rt.block_on(async {
            reqwest::get(format!("{}/__sim/usage", sim.url()))
                .await?
                .text()
                .await
        })
        .unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    crate::common::assert_no_secret(&text, &key("reader"), "simulator usage log");
    let dir = crate::common::tempdir();
    crate::common::write(dir.path(), "sim.jsonl", &text);
    let catalog = awxguard::privilege::Catalog::builtin();
    let ev = awxguard::usage::read_evidence(&[dir.path().join("sim.jsonl")], &catalog).unwrap();
    assert_eq!(ev.rejected, 0, "{:?}", ev.problems);
    let fp = crate::common::fingerprint(&key("reader"));
    let u = &ev.keys[&fp];
    assert_eq!(u.events, 4);
    assert!(u.scopes_used.contains_key("transfer:read"));
    // the refused call does not show the key needs beneficiary:read
    assert!(!u.scopes_used.contains_key("beneficiary:read"));
    assert_eq!(u.statuses[&403], 1);
    // judged against an inventory that only knows the reader key: the admin key is unknown
    let rules = awxguard::privilege::PrivilegeRules::builtin();
    let ex = awxguard::privilege::ExampleKey {
        fingerprint: Some(fp.clone()),
        ..toml::from_str::<awxguard::privilege::ExampleKey>("name = \"reader\"").unwrap()
    };
    let found = awxguard::privilege::evaluate(
        &[ex.to_facts(&catalog)],
        Some(&ev),
        &catalog,
        &rules,
        chrono::Utc::now(),
    );
    let unknown: Vec<_> = found
        .iter()
        .filter(|f| f.rule == "usage.unknown-key")
        .collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!(
        unknown[0].key.as_deref(),
        Some(crate::common::fingerprint(&key("admin")).as_str())
    );
}

impl Session {
    /// `POST path` with a JSON body and the session's token: (status, body).
    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{}", self.client.base_url(), path);
        self.rt.block_on(async {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(self.token.expose())
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        })
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn writes_create_beneficiaries_transfers_and_webhooks_that_the_lists_return() {
    let sim = Simulator::spawn(SimState::default().with_key(
        &client_id("admin"),
        &key("admin"),
        Behaviour::Live,
    ))
    .unwrap();
    let s = Session::new(&sim, "admin");
    let (st, ben) = s.post(
        "/api/v1/beneficiaries/create",
        json!({"beneficiary": {"entity_type": "COMPANY", "company_name": "Acme"}, "nickname": "acme"}),
    );
    assert_eq!(st, 201, "{ben}");
    let ben_id = ben["beneficiary_id"].as_str().unwrap().to_string();
    assert_eq!(ben["id"], ben_id);
    assert!(awxguard::airwallex::parse_timestamp(ben["created_at"].as_str().unwrap()).is_some());
    let (st, tr) = s.post(
        "/api/v1/transfers/create",
        json!({"beneficiary_id": ben_id, "transfer_amount": 250, "transfer_currency": "USD", "request_id": "r-1"}),
    );
    assert_eq!(st, 201, "{tr}");
    let tr_id = tr["id"].as_str().unwrap().to_string();
    let (st, e) = s.post(
        "/api/v1/transfers/create",
        json!({"beneficiary_id": "nobody", "transfer_amount": 1, "transfer_currency": "USD"}),
    );
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("beneficiary_not_found"))
    );
    let (st, hook) = s.post(
        "/api/v1/webhooks/create",
        json!({"url": "https://hooks.example.com/a", "events": ["payout.transfer.*"]}),
    );
    assert_eq!(st, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let (st, changed) = s.post(
        &format!("/api/v1/webhooks/{hook_id}/update"),
        json!({"url": "https://elsewhere.example.net/b"}),
    );
    assert_eq!(st, 200);
    assert_eq!(changed["url"], "https://elsewhere.example.net/b");
    assert_eq!(changed["id"], hook_id.as_str());

    assert_eq!(
        ids(&s.get("/api/v1/beneficiaries", &[]).unwrap()),
        [ben_id.as_str()]
    );
    assert_eq!(
        ids(&s.get("/api/v1/transfers", &[]).unwrap()),
        [tr_id.as_str()]
    );
    let hooks = s.get("/api/v1/webhooks", &[]).unwrap();
    assert_eq!(hooks["items"][0]["url"], "https://elsewhere.example.net/b");
    assert_eq!(
        s.get(&format!("/api/v1/transfers/{tr_id}"), &[]).unwrap()["transfer_amount"],
        250
    );
    let (st, cancelled) = s.post(&format!("/api/v1/transfers/{tr_id}/cancel"), json!({}));
    assert_eq!((st, cancelled["status"].as_str()), (200, Some("CANCELLED")));

    let (st, _) = s.post(&format!("/api/v1/webhooks/{hook_id}/delete"), json!({}));
    assert_eq!(st, 200);
    assert!(ids(&s.get("/api/v1/webhooks", &[]).unwrap()).is_empty());
    let (st, _) = s.post(&format!("/api/v1/webhooks/{hook_id}/delete"), json!({}));
    assert_eq!(st, 404);
    let (st, _) = s.post(&format!("/api/v1/beneficiaries/delete/{ben_id}"), json!({}));
    assert_eq!(st, 200);
    let (st, _) = s.post("/api/v1/fx/conversions/create", json!({}));
    assert_eq!(st, 404, "writes the simulator does not model answer 404");
}

#[test]
fn writes_need_the_write_scope_in_the_token() {
    let mut state = SimState::default()
        .with_key(&client_id("payer"), &key("payer"), Behaviour::Live)
        .with_key(&client_id("reader"), &key("reader"), Behaviour::Live);
    state.keys[0].permissions = vec!["beneficiary:write".into()];
    state.keys[1].permissions = vec!["beneficiary:read".into(), "webhook:read".into()];
    let sim = Simulator::spawn(state).unwrap();
    let payer = Session::new(&sim, "payer");
    let (st, ben) = payer.post(
        "/api/v1/beneficiaries/create",
        json!({"beneficiary": {"entity_type": "PERSONAL"}}),
    );
    assert_eq!(st, 201);
    // beneficiary:write grants its reads, not transfers
    assert!(payer.get("/api/v1/beneficiaries", &[]).is_ok());
    let (st, e) = payer.post(
        "/api/v1/transfers/create",
        json!({"beneficiary_id": ben["id"], "transfer_amount": 1, "transfer_currency": "USD"}),
    );
    assert_eq!(st, 403);
    assert_eq!(e["code"], "forbidden");
    assert!(
        e["message"].as_str().unwrap().contains("transfer:write"),
        "{e}"
    );
    assert!(e["trace_id"].is_string());
    let reader = Session::new(&sim, "reader");
    assert!(reader.get("/api/v1/beneficiaries", &[]).is_ok());
    let (st, _) = reader.post(
        "/api/v1/webhooks/create",
        json!({"url": "https://hooks.example.com/x"}),
    );
    assert_eq!(st, 403);
    assert!(sim.sim.items("webhooks").is_empty());
}

#[test]
fn activity_from_elsewhere_shows_in_the_lists_and_not_in_the_request_log() {
    let sim = Simulator::spawn(SimState::default().with_key(
        &client_id("admin"),
        &key("admin"),
        Behaviour::Live,
    ))
    .unwrap();
    let s = Session::new(&sim, "admin");
    let before = sim.requests().len();
    let (status, added): (u16, Value) = s.rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/__sim/activity", sim.url()))
            .json(&json!({
                "beneficiaries": [{"id": "ben_evil", "beneficiary": {"entity_type": "PERSONAL"}}],
                "transfers": {"beneficiary_id": "ben_evil", "transfer_amount": 9000, "transfer_currency": "USD",
                              "created_at": "2026-11-20T10:00:00+0000"},
            }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    });
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["beneficiaries"][0]["beneficiary_id"], "ben_evil");
    let tr_id = added["transfers"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        ids(&s.get("/api/v1/beneficiaries", &[]).unwrap()),
        ["ben_evil"]
    );
    let trs = s.get("/api/v1/transfers", &[]).unwrap();
    assert_eq!(ids(&trs), [tr_id]);
    assert_eq!(trs["items"][0]["created_at"], "2026-11-20T10:00:00+0000");
    // the control call is not Airwallex traffic: only the two list calls were logged
    assert_eq!(sim.requests().len(), before + 2);
    // a bad collection adds nothing
    let err = sim.add_activity("accounts", vec![json!({})]).unwrap_err();
    assert!(err.contains("not a collection"), "{err}");
    sim.add_activity("webhooks", vec![json!({"url": "https://x.example"})])
        .unwrap();
    assert_eq!(sim.sim.items("webhooks").len(), 1);
}

#[test]
fn the_request_log_and_the_collections_stay_bounded() {
    let mut state =
        SimState::default().with_key(&client_id("admin"), &key("admin"), Behaviour::Live);
    state.request_log_limit = 5;
    state.max_objects = 2;
    let sim = Simulator::spawn(state).unwrap();
    let s = Session::new(&sim, "admin");
    for _ in 0..9 {
        s.get("/api/v1/transfers", &[]).unwrap();
    }
    assert_eq!(sim.requests().len(), 5);
    assert_eq!(sim.sim.requests_total(), 10);
    for i in 0..2 {
        let (st, _) = s.post(
            "/api/v1/webhooks/create",
            json!({"url": format!("https://h{i}.example.com")}),
        );
        assert_eq!(st, 201);
    }
    let (st, e) = s.post(
        "/api/v1/webhooks/create",
        json!({"url": "https://h3.example.com"}),
    );
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("resource_limit_exceeded"))
    );
}

#[test]
fn tokens_expire_on_the_simulator_clock() {
    let clock = std::sync::Arc::new(awxguard::clock::ManualClock::new(chrono::Utc::now()));
    let sim = Simulator::with_clock(
        SimState::default().with_key(&client_id("admin"), &key("admin"), Behaviour::Live),
        clock.clone(),
    );
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let served = sim.clone();
    std::thread::spawn(move || {
        rt().block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            served.serve(l).await
        })
    });
    let rt = rt();
    let c = client(&url);
    let LoginOutcome::Live(t) =
        rt.block_on(c.login(&client_id("admin"), &Secret::new(key("admin"))))
    else {
        panic!("login")
    };
    assert!(rt
        .block_on(c.get_json(&t.token, "/api/v1/transfers", &[]))
        .is_ok());
    clock.advance(chrono::Duration::minutes(31));
    let e = rt
        .block_on(c.get_json(&t.token, "/api/v1/transfers", &[]))
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
}
