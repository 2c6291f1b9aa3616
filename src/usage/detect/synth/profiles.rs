//! The synthetic keys: office-hours, 24/7, sparse, bursty, dormant and late-created keys with
//! their networks, user agents, routes and batches.

use super::super::series::{DAY, HOUR};
use super::gen::{ip, path_id};
use super::{Batch, Pattern, Profile, Rng};
use std::net::IpAddr;

/// The keys of a stream, with parameters drawn from `rng`.
pub(super) fn profiles(rng: &mut Rng, start: i64, end: i64) -> Vec<Profile> {
    let net = |rng: &mut Rng| -> [u8; 3] {
        [
            *rng.pick(&[198u8, 192, 100, 172]),
            rng.int(1, 250) as u8,
            rng.int(1, 250) as u8,
        ]
    };
    let hosts = |rng: &mut Rng, n: [u8; 3], k: usize| -> Vec<IpAddr> {
        (0..k)
            .map(|_| ip(n[0], n[1], n[2], rng.int(2, 250) as u8))
            .collect()
    };
    let reads = |rng: &mut Rng| -> Vec<(&'static str, String)> {
        vec![
            ("GET", "/api/v1/transfers".to_string()),
            ("GET", format!("/api/v1/transfers/{}", path_id(rng))),
            ("GET", "/api/v1/balances/current".to_string()),
            ("GET", "/api/v1/financial_transactions".to_string()),
        ]
    };
    let mut out = Vec::new();
    // office-hours ERP with a Monday batch
    let s = rng.int(7, 9);
    let erp_rate = rng.range(40.0, 200.0);
    let n = net(rng);
    out.push(Profile {
        key: "erp".into(),
        pattern: Pattern::Office {
            start: s,
            end: s + rng.int(9, 10),
        },
        rate: erp_rate,
        phi: rng.range(0.01, 0.06),
        write_share: rng.range(0.02, 0.08),
        error_share: 0.0,
        ips: hosts(rng, n, 3),
        user_agent: format!("erp-sync/1.{}.{}", rng.int(0, 9), rng.int(0, 9)),
        reads: reads(rng),
        write: ("POST", "/api/v1/transfers/create".into()),
        batches: vec![Batch {
            weekday: Some(0),
            hour: s + 1,
            minute: rng.int(0, 30),
            size: erp_rate * rng.range(4.0, 12.0),
            minutes: rng.int(8, 20),
        }],
        from: start,
        until: end,
    });
    // 24/7 payments with a nightly batch
    let pay_rate = rng.range(100.0, 400.0);
    let n = net(rng);
    let n2 = net(rng);
    let mut ips = hosts(rng, n, 2);
    ips.extend(hosts(rng, n2, 2));
    out.push(Profile {
        key: "payments".into(),
        pattern: Pattern::AllDay {
            amp: rng.range(0.3, 0.6),
            low_hour: rng.range(1.0, 5.0),
            weekend: rng.range(0.6, 0.9),
        },
        rate: pay_rate,
        phi: rng.range(0.02, 0.08),
        write_share: rng.range(0.05, 0.15),
        error_share: 0.0,
        ips,
        user_agent: format!("payments-svc/{}.{}", rng.int(2, 4), rng.int(0, 20)),
        reads: reads(rng),
        write: ("POST", "/api/v1/transfers/create".into()),
        batches: vec![Batch {
            weekday: None,
            hour: 2,
            minute: rng.int(0, 20),
            size: pay_rate * rng.range(1.5, 4.0),
            minutes: rng.int(5, 15),
        }],
        from: start,
        until: end,
    });
    // office-hours reporting, low rate, daily 07:00 report on weekdays
    let n = net(rng);
    let rep_rate = rng.range(5.0, 20.0);
    out.push(Profile {
        key: "reporting".into(),
        pattern: Pattern::Office { start: 9, end: 17 },
        rate: rep_rate,
        phi: rng.range(0.02, 0.1),
        write_share: 0.0,
        error_share: 0.0,
        ips: hosts(rng, n, 1),
        user_agent: "python-requests/2.31.0".into(),
        reads: vec![
            ("GET", "/api/v1/balances/history".into()),
            ("GET", "/api/v1/financial_transactions".into()),
        ],
        write: ("GET", "/api/v1/balances/current".into()),
        batches: (0..5)
            .map(|d| Batch {
                weekday: Some(d),
                hour: 7,
                minute: 0,
                size: rng.range(40.0, 120.0),
                minutes: 5,
            })
            .collect(),
        from: start,
        until: end,
    });
    // sparse 24/7 key: a few calls a day
    let n = net(rng);
    out.push(Profile {
        key: "sparse".into(),
        pattern: Pattern::AllDay {
            amp: 0.0,
            low_hour: 0.0,
            weekend: 1.0,
        },
        rate: rng.range(3.0, 10.0) / 24.0,
        phi: 0.0,
        write_share: 0.0,
        error_share: 0.0,
        ips: hosts(rng, n, 1),
        user_agent: "cron-reconcile/0.3".into(),
        reads: vec![("GET", "/api/v1/balances/current".into())],
        write: ("GET", "/api/v1/balances/current".into()),
        batches: Vec::new(),
        from: start,
        until: end,
    });
    // bursty webhook consumer with a steady trickle of refusals
    let n = net(rng);
    out.push(Profile {
        key: "webhooks".into(),
        pattern: Pattern::AllDay {
            amp: rng.range(0.1, 0.3),
            low_hour: rng.range(0.0, 6.0),
            weekend: rng.range(0.8, 1.0),
        },
        rate: rng.range(20.0, 60.0),
        phi: rng.range(0.1, 0.25),
        write_share: 0.0,
        error_share: 0.01,
        ips: hosts(rng, n, 4),
        user_agent: "Go-http-client/1.1".into(),
        reads: vec![
            ("GET", format!("/api/v1/transfers/{}", path_id(rng))),
            ("GET", "/api/v1/webhooks".into()),
        ],
        write: ("GET", "/api/v1/webhooks".into()),
        batches: Vec::new(),
        from: start,
        until: end,
    });
    // legacy: one week of use, then silence (reactivated by an injection)
    let n = net(rng);
    out.push(Profile {
        key: "legacy".into(),
        pattern: Pattern::Office { start: 9, end: 17 },
        rate: rng.range(5.0, 15.0),
        phi: 0.02,
        write_share: 0.0,
        error_share: 0.0,
        ips: hosts(rng, n, 1),
        user_agent: "legacy-batch/0.9".into(),
        reads: vec![("GET", "/api/v1/transfers".into())],
        write: ("GET", "/api/v1/transfers".into()),
        batches: Vec::new(),
        from: start,
        until: start + 7 * DAY,
    });
    // two new keys (cold start), ten days before the end: one ordinary, one with a first burst
    for key in ["fresh", "fresh-burst"] {
        let n = net(rng);
        let s = rng.int(7, 9);
        out.push(Profile {
            key: key.into(),
            pattern: Pattern::Office {
                start: s,
                end: s + 9,
            },
            rate: rng.range(20.0, 80.0),
            phi: 0.03,
            write_share: 0.0,
            error_share: 0.0,
            ips: hosts(rng, n, 1),
            user_agent: format!("{key}-app/1.0"),
            reads: reads(rng),
            write: ("GET", "/api/v1/transfers".into()),
            batches: Vec::new(),
            from: end - 10 * DAY + rng.int(0, 23) * HOUR,
            until: end,
        });
    }
    out
}
