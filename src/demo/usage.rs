//! The demo's usage stream (usage-event contract, as Airwallex's log export would give it) and
//! the anomaly detection over it. Five weeks of the integrations' calls: payvy-ap reads in office
//! hours, pays a bill each weekday and runs a weekly payment batch every Monday at 02:00 (a peak
//! the seasonal baseline learns: quiet); reporting reads every morning; the sandbox key runs in
//! CI on Wednesdays. Then the incident: payvy-ap's leaked key used from a network and a client it
//! never used, creating a beneficiary and paying it. `usage ingest` stores it and runs the
//! anomaly detection.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use std::fmt::Write as _;

/// Where the leaked key was used from, and with what.
pub const ATTACKER_IP: &str = "198.51.100.23";
pub const ATTACKER_AGENT: &str = "python-requests/2.31";
const PAYVY_IP: &str = "203.0.113.10";
const PAYVY_AGENT: &str = "payvy-worker/3.2";
const PROD: &str = "api.airwallex.com";

/// One call of the stream.
struct Call<'a> {
    at: DateTime<Utc>,
    key: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    ip: &'a str,
    agent: &'a str,
    host: &'a str,
}

fn line(out: &mut String, c: &Call<'_>) {
    let v = serde_json::json!({
        "ts": c.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "key": c.key, "method": c.method, "path": c.path, "status": c.status,
        "source_ip": c.ip, "user_agent": c.agent, "host": c.host,
    });
    let _ = writeln!(out, "{v}");
}

/// The integrations' usual calls from the Monday five weeks before `t0` up to `t0`, then the
/// incident's calls (`incident`: the beneficiary's creation; the payment 4 minutes later), as
/// JSON Lines. Returns the text and its number of events.
pub fn stream(t0: DateTime<Utc>, incident: DateTime<Utc>) -> (String, usize) {
    let mut out = String::with_capacity(256 << 10);
    let mut n = 0;
    let mut call = |c: Call<'_>| {
        line(&mut out, &c);
        n += 1;
    };
    // The Monday 00:00 five weeks back: the batch is the first hour the key is ever seen, so the
    // learning period never mistakes it for a spike.
    let day0 = (t0 - Duration::days(35)).date_naive();
    let monday = day0 - Duration::days(day0.weekday().num_days_from_monday() as i64);
    let start = monday.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let mut hour = start;
    while hour + Duration::hours(1) <= t0 {
        let wd = hour.weekday().num_days_from_monday();
        let h = hour.hour();
        let d = (hour - start).num_days();
        let weekday = wd < 5;
        let payvy = |m: i64, method: &'static str, path: String| (m, method, path);
        let mut calls: Vec<(i64, &str, String)> = Vec::new();
        if wd == 0 && h == 2 {
            // The weekly payment run: 30 bills paid, each checked.
            for i in 0..30 {
                calls.push(payvy(i, "POST", "/api/v1/transfers/create".to_string()));
                calls.push(payvy(
                    i,
                    "GET",
                    format!("/api/v1/transfers/{:08x}-0b1c-4d2e-9f30-{:012x}", d, i),
                ));
            }
        }
        if weekday && (8..18).contains(&h) {
            let reads = 2 + (d + h as i64) % 3;
            for i in 0..reads {
                let path = if i % 2 == 0 {
                    "/api/v1/balances/current"
                } else {
                    "/api/v1/beneficiaries"
                };
                calls.push(payvy(i * 13, "GET", path.to_string()));
            }
            if h == 10 {
                calls.push(payvy(40, "POST", "/api/v1/transfers/create".to_string()));
            }
        }
        for (m, method, path) in &calls {
            call(Call {
                at: hour + Duration::minutes(*m),
                key: "payvy-ap",
                method,
                path,
                status: if *method == "POST" { 201 } else { 200 },
                ip: PAYVY_IP,
                agent: PAYVY_AGENT,
                host: PROD,
            });
        }
        if h == 6 {
            for path in ["/api/v1/financial_transactions", "/api/v1/balances/history"] {
                call(Call {
                    at: hour + Duration::minutes(5),
                    key: "reporting",
                    method: "GET",
                    path,
                    status: 200,
                    ip: "192.0.2.70",
                    agent: "warehouse-loader/1.4",
                    host: PROD,
                });
            }
        }
        if wd == 2 && h == 14 {
            call(Call {
                at: hour + Duration::minutes(20),
                key: "payvy-sandbox",
                method: "POST",
                path: "/api/v1/transfers/create",
                status: 201,
                ip: "192.0.2.50",
                agent: "payvy-worker/3.2",
                host: "api-demo.airwallex.com",
            });
        }
        hour += Duration::hours(1);
    }
    // The incident, as Airwallex saw it: a look around (one refused), a payee, a payment.
    let attacker = |at, method, path, status| Call {
        at,
        key: "payvy-ap",
        method,
        path,
        status,
        ip: ATTACKER_IP,
        agent: ATTACKER_AGENT,
        host: PROD,
    };
    for (i, (path, status)) in [
        ("/api/v1/balances/current", 200),
        ("/api/v1/accounts", 403),
        ("/api/v1/beneficiaries", 200),
    ]
    .into_iter()
    .enumerate()
    {
        call(attacker(
            incident - Duration::minutes(2) + Duration::seconds(i as i64 * 20),
            "GET",
            path,
            status,
        ));
    }
    call(attacker(
        incident,
        "POST",
        "/api/v1/beneficiaries/create",
        201,
    ));
    call(attacker(
        incident + Duration::minutes(4),
        "POST",
        "/api/v1/transfers/create",
        201,
    ));
    (out, n)
}
