//! Injecting each kind of anomaly once, at a random suitable hour of a random suitable key,
//! away from its batches and from the other injections.

use super::super::series::{DAY, HOUR};
use super::gen::{ip, Gen, Route};
use super::{Injection, Kind, Profile, Rng};
use std::net::IpAddr;

/// An hour of `p` at least `from` and before `until`, where `ok` holds, avoiding its batches
/// and the hours in `taken`.
fn pick_hour(
    rng: &mut Rng,
    p: &Profile,
    from: i64,
    until: i64,
    taken: &[(String, i64)],
    ok: impl Fn(i64) -> bool,
) -> Option<i64> {
    for _ in 0..2000 {
        let h = rng.int(from / HOUR, until / HOUR - 1);
        let hod = h.rem_euclid(24);
        let near_batch = p
            .batches
            .iter()
            .any(|b| (hod - b.hour).abs() <= 1 || (hod - b.hour).abs() >= 23);
        // another injection on the same key within a day would fold into one incident
        let clash = taken
            .iter()
            .any(|(k, t)| *k == p.key && (t - h * HOUR).abs() < DAY);
        if !near_batch && !clash && ok(h) {
            return Some(h);
        }
    }
    None
}

pub(super) fn inject(
    g: &mut Gen<'_, '_>,
    profiles: &[Profile],
    start: i64,
    end: i64,
    out: &mut Vec<Injection>,
) {
    let by = |k: &&str| profiles.iter().find(|p| p.key == *k).expect("profile");
    // after four weeks of history: seasonal baselines, learnt networks and hours
    let from = start + 28 * DAY;
    let until = end - DAY;
    let mut taken: Vec<(String, i64)> = Vec::new();
    let fresh_net = |rng: &mut Rng| ip(203, 0, rng.int(100, 113) as u8, rng.int(2, 250) as u8);
    for kind in Kind::ALL {
        let (p, hour) = match kind {
            Kind::Dormant => (by(&"legacy"), None),
            Kind::ColdBurst => (by(&"fresh-burst"), None),
            Kind::OffHours => {
                let p = by(g.rng.pick(&["erp", "reporting"]));
                // at least three hours away from the key's working hours
                let h = pick_hour(&mut g.rng, p, from, until, &taken, |h| {
                    (-3..=3).all(|d| !p.in_pattern(h + d))
                });
                (p, h)
            }
            Kind::RateSpike => {
                let p = by(g
                    .rng
                    .pick(&["erp", "payments", "webhooks", "reporting", "sparse"]));
                let h = pick_hour(&mut g.rng, p, from, until, &taken, |h| {
                    p.key == "sparse" || p.in_pattern(h)
                });
                (p, h)
            }
            Kind::WriteSpike => {
                let p = by(g.rng.pick(&["erp", "payments"]));
                let h = pick_hour(&mut g.rng, p, from, until, &taken, |h| p.in_pattern(h));
                (p, h)
            }
            Kind::ErrorBurst => {
                let p = by(g.rng.pick(&["erp", "payments", "webhooks"]));
                let h = pick_hour(&mut g.rng, p, from, until, &taken, |h| p.in_pattern(h));
                (p, h)
            }
            Kind::NewNetwork | Kind::NewUserAgent | Kind::NewRoute => {
                let p = by(g.rng.pick(&["erp", "payments", "reporting"]));
                let h = pick_hour(&mut g.rng, p, from, until, &taken, |h| p.in_pattern(h));
                (p, h)
            }
        };
        let ua = p.user_agent.clone();
        let ip0 = p.ips[0];
        let read = g.route(p.reads[0].0, &p.reads[0].1);
        let inj = match kind {
            Kind::Dormant => {
                // 31 to 40 silent days after its last call
                let at = p.until + g.rng.int(31, 40) * DAY + g.rng.int(9, 16) * HOUR;
                let at = at.min(end - HOUR);
                let n = g.rng.int(5, 40) as u32;
                let minutes = g.rng.int(5, 30);
                g.spread(&p.key, at, minutes, n, &read, 200, ip0, &ua);
                Injection {
                    kind,
                    key: p.key.clone(),
                    start: at,
                    end: at + minutes * 60,
                    calls: n,
                }
            }
            Kind::ColdBurst => {
                // on the third to sixth day after its first call, in working hours, far above
                // its rate
                let mut first = p.from.div_euclid(HOUR);
                while !p.in_pattern(first) {
                    first += 1;
                }
                let day0 = (first * HOUR).div_euclid(DAY) + 2;
                let hours: Vec<i64> = (day0 * 24..(day0 + 5) * 24)
                    .filter(|&h| p.in_pattern(h) && (h + 1) * HOUR < p.until)
                    .collect();
                let at = *g.rng.pick(&hours) * HOUR + g.rng.int(0, 30) * 60;
                let n = (p.rate * g.rng.range(15.0, 40.0)).round() as u32;
                let minutes = g.rng.int(15, 45);
                g.spread(&p.key, at, minutes, n, &read, 200, ip0, &ua);
                Injection {
                    kind,
                    key: p.key.clone(),
                    start: at,
                    end: at + minutes * 60,
                    calls: n,
                }
            }
            _ => {
                let Some(h) = hour else { continue };
                let at = h * HOUR + g.rng.int(0, 40) * 60;
                let mean = p.mean(h).max(p.rate / 24.0);
                let (n, minutes, route, status, ip, ua): (u32, i64, Route, u16, IpAddr, String) =
                    match kind {
                        // far above the key's own noise: at least three times the hour's
                        // mean and ten of its standard deviations above it
                        Kind::RateSpike => (
                            (mean * g.rng.range(3.0, 8.0))
                                .max(10.0 * (mean + p.phi * mean * mean).sqrt())
                                .max(g.rng.range(80.0, 150.0)) as u32,
                            g.rng.int(10, 60),
                            read.clone(),
                            200,
                            ip0,
                            ua,
                        ),
                        Kind::WriteSpike => (
                            (mean * p.write_share * g.rng.range(5.0, 10.0))
                                .max(g.rng.range(25.0, 60.0)) as u32,
                            g.rng.int(10, 30),
                            g.route("POST", "/api/v1/transfers/create"),
                            201,
                            ip0,
                            ua,
                        ),
                        Kind::ErrorBurst => (
                            g.rng.int(60, 300) as u32,
                            g.rng.int(5, 30),
                            read.clone(),
                            403,
                            ip0,
                            ua,
                        ),
                        Kind::NewNetwork => (
                            g.rng.int(3, 30) as u32,
                            g.rng.int(5, 30),
                            read.clone(),
                            200,
                            fresh_net(&mut g.rng),
                            ua,
                        ),
                        Kind::NewUserAgent => (
                            g.rng.int(3, 20) as u32,
                            g.rng.int(5, 30),
                            read.clone(),
                            200,
                            ip0,
                            g.rng
                                .pick(&["curl/8.5.0", "PostmanRuntime/7.36.0", "Wget/1.21.4"])
                                .to_string(),
                        ),
                        Kind::OffHours => (
                            g.rng.int(2, 15) as u32,
                            g.rng.int(2, 20),
                            read.clone(),
                            200,
                            ip0,
                            ua,
                        ),
                        Kind::NewRoute => (
                            g.rng.int(1, 5) as u32,
                            g.rng.int(1, 10),
                            g.route("POST", "/api/v1/beneficiaries/create"),
                            201,
                            ip0,
                            ua,
                        ),
                        Kind::Dormant | Kind::ColdBurst => unreachable!(),
                    };
                g.spread(&p.key, at, minutes, n, &route, status, ip, &ua);
                Injection {
                    kind,
                    key: p.key.clone(),
                    start: at,
                    end: at + minutes * 60,
                    calls: n,
                }
            }
        };
        taken.push((inj.key.clone(), inj.start));
        out.push(inj);
    }
}
