//! A seeded generator of synthetic usage streams for testing the detectors: several weeks,
//! several keys with daily and weekly seasonality (office-hours keys, 24/7 keys with a daily
//! curve and quieter weekends, a sparse key, a bursty key), weekly and nightly batch peaks,
//! over-dispersed counts, and each kind of anomaly injected at a random time on a random
//! suitable key. It returns what it injected and where the seasonal peaks are, so tests can
//! check that every injection is found and no peak is alarmed on.
//!
//! Deterministic for a seed on every platform (its own SplitMix64 generator).

use super::series::{classify, Access, Event, EventRef, Series, DAY, HOUR};
use crate::airwallex::Catalog;
use std::net::{IpAddr, Ipv4Addr};

/// SplitMix64 with the few distributions the generator needs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in [lo, hi].
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.int(0, v.len() as i64 - 1) as usize]
    }

    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-300);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Gamma(shape, 1) (Marsaglia and Tsang).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = self.f64().max(1e-300);
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.f64();
            if u.max(1e-300).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let l = (-lambda).exp();
            let mut k = 0u32;
            let mut p = 1.0;
            loop {
                p *= self.f64();
                if p <= l {
                    return k;
                }
                k += 1;
            }
        }
        (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32
    }

    /// A count with mean `mean` and variance `mean + phi * mean^2`.
    pub fn count(&mut self, mean: f64, phi: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        let rate = if phi > 0.0 {
            self.gamma(1.0 / phi) * phi * mean
        } else {
            mean
        };
        self.poisson(rate)
    }
}

/// When a key is active.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// Weekdays from `start` to `end` o'clock (UTC), busiest mid-day.
    Office { start: i64, end: i64 },
    /// Every hour, with a daily curve (`amp`, lowest at `low_hour`) and weekends at `weekend`.
    AllDay {
        amp: f64,
        low_hour: f64,
        weekend: f64,
    },
}

/// A recurring batch: `size` calls over `minutes` from `hour:minute`, on `weekday` (Monday = 0)
/// or every day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Batch {
    pub weekday: Option<i64>,
    pub hour: i64,
    pub minute: i64,
    pub size: f64,
    pub minutes: i64,
}

/// One synthetic key.
#[derive(Debug, Clone)]
pub struct Profile {
    pub key: String,
    pub pattern: Pattern,
    /// Mean calls in the busiest hour.
    pub rate: f64,
    /// Over-dispersion of hourly counts.
    pub phi: f64,
    pub write_share: f64,
    /// Share of calls refused with 403 in normal use.
    pub error_share: f64,
    pub ips: Vec<IpAddr>,
    pub user_agent: String,
    pub reads: Vec<(&'static str, String)>,
    pub write: (&'static str, String),
    pub batches: Vec<Batch>,
    /// Active from / until (Unix seconds).
    pub from: i64,
    pub until: i64,
}

impl Profile {
    /// Mean calls in `hour` (index) outside batches.
    pub fn mean(&self, hour: i64) -> f64 {
        let t = hour * HOUR;
        if t < self.from || t >= self.until {
            return 0.0;
        }
        let hod = hour.rem_euclid(24);
        let dow = (t.div_euclid(DAY) + 3).rem_euclid(7);
        match self.pattern {
            Pattern::Office { start, end } => {
                if dow >= 5 || hod < start || hod >= end {
                    return 0.0;
                }
                let x = (hod - start) as f64 + 0.5;
                let span = (end - start) as f64;
                self.rate * (0.55 + 0.45 * (std::f64::consts::PI * x / span).sin())
            }
            Pattern::AllDay {
                amp,
                low_hour,
                weekend,
            } => {
                let curve =
                    1.0 - amp * (2.0 * std::f64::consts::PI * (hod as f64 - low_hour) / 24.0).cos();
                let w = if dow >= 5 { weekend } else { 1.0 };
                self.rate * curve / (1.0 + amp) * w
            }
        }
    }

    /// Whether `hour` is one the key's ordinary pattern uses.
    pub fn in_pattern(&self, hour: i64) -> bool {
        self.mean(hour) > 0.0
    }
}

/// What kind of anomaly was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    RateSpike,
    WriteSpike,
    ErrorBurst,
    NewNetwork,
    NewUserAgent,
    OffHours,
    NewRoute,
    Dormant,
    ColdBurst,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::RateSpike,
        Kind::WriteSpike,
        Kind::ErrorBurst,
        Kind::NewNetwork,
        Kind::NewUserAgent,
        Kind::OffHours,
        Kind::NewRoute,
        Kind::Dormant,
        Kind::ColdBurst,
    ];

    /// The rule expected to report it.
    pub fn rule(self) -> &'static str {
        match self {
            Kind::RateSpike | Kind::WriteSpike | Kind::ColdBurst => "anomaly.rate-spike",
            Kind::ErrorBurst => "anomaly.error-burst",
            Kind::NewNetwork => "anomaly.new-network",
            Kind::NewUserAgent => "anomaly.new-user-agent",
            Kind::OffHours => "anomaly.off-hours",
            Kind::NewRoute => "anomaly.new-route",
            Kind::Dormant => "anomaly.dormant-key-active",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::RateSpike => "rate spike",
            Kind::WriteSpike => "write spike",
            Kind::ErrorBurst => "error burst",
            Kind::NewNetwork => "new network",
            Kind::NewUserAgent => "new user agent",
            Kind::OffHours => "off hours",
            Kind::NewRoute => "new route",
            Kind::Dormant => "dormant key active",
            Kind::ColdBurst => "new key's first burst",
        }
    }
}

/// One injected anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    pub kind: Kind,
    pub key: String,
    /// Window of the injected calls, Unix seconds (`end` exclusive).
    pub start: i64,
    pub end: i64,
    pub calls: u32,
}

/// A seasonal peak (a batch run): no detector may alarm on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    pub key: String,
    pub start: i64,
    pub end: i64,
}

/// A generated stream: identical calls grouped (`n` calls of `event`).
#[derive(Debug, Clone)]
pub struct Stream {
    pub start: i64,
    pub end: i64,
    pub profiles: Vec<Profile>,
    pub groups: Vec<(Event, u32)>,
    pub injections: Vec<Injection>,
    pub peaks: Vec<Peak>,
    /// First runs of batches, in a key's first week: new to the key, judged while it learns.
    pub first_runs: Vec<Peak>,
    /// Keys created late (cold start) that behave ordinarily: no alarm expected.
    pub quiet_new_keys: Vec<String>,
}

impl Stream {
    /// The series of the whole stream.
    pub fn series(&self) -> Series {
        let mut s = Series::default();
        for (e, n) in &self.groups {
            s.add(&e.as_ref(), *n);
        }
        s
    }

    /// The stream as usage-contract JSON lines, one per call.
    pub fn jsonl(&self) -> String {
        let mut out = String::new();
        for (e, n) in &self.groups {
            let (method, path) = e.route.split_once(' ').unwrap_or(("GET", &e.route));
            let path = path.replace("{id}", "3f2a9c1e77");
            for i in 0..*n {
                let mut o = serde_json::json!({
                    "ts": super::rfc3339(e.ts),
                    "key": e.key,
                    "method": method,
                    "path": path,
                    "status": e.status,
                    "latency_ms": i,
                });
                if let Some(ip) = e.source_ip {
                    o["source_ip"] = ip.to_string().into();
                }
                if let Some(ua) = &e.user_agent {
                    o["user_agent"] = ua.clone().into();
                }
                if e.via_proxy {
                    o["via"] = "proxy".into();
                }
                out.push_str(&o.to_string());
                out.push('\n');
            }
        }
        out
    }
}

/// Generator settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Weeks of history (at least 7: the dormant key needs 30 silent days after a week).
    pub weeks: i64,
    /// A Monday 00:00 UTC.
    pub start: i64,
    /// Inject anomalies (false: only ordinary traffic).
    pub inject: bool,
}

impl Config {
    pub fn new(seed: u64) -> Config {
        Config {
            seed,
            weeks: 7,
            // 2026-09-07, a Monday
            start: 1_788_739_200,
            inject: true,
        }
    }
}

/// A route of the catalog, classified once.
#[derive(Debug, Clone)]
struct Route {
    route: String,
    scope: Option<String>,
    access: Access,
}

type Sink<'s> = &'s mut dyn FnMut(&EventRef<'_>, u32);

struct Gen<'c, 's> {
    rng: Rng,
    catalog: &'c Catalog,
    sink: Sink<'s>,
}

impl Gen<'_, '_> {
    fn route(&self, method: &str, path: &str) -> Route {
        let (route, scope, access) = classify(self.catalog, method, path);
        Route {
            route,
            scope,
            access,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(&mut self, key: &str, ts: i64, r: &Route, status: u16, ip: IpAddr, ua: &str, n: u32) {
        if n == 0 {
            return;
        }
        let e = EventRef {
            ts,
            key,
            route: &r.route,
            scope: r.scope.as_deref(),
            access: r.access,
            status,
            source_ip: Some(ip),
            user_agent: Some(ua),
            via_proxy: false,
            host: Some("api.airwallex.com"),
            account: None,
        };
        (self.sink)(&e, n);
    }

    /// `n` calls spread over `minutes` from `at`, one group a minute.
    #[allow(clippy::too_many_arguments)]
    fn spread(
        &mut self,
        key: &str,
        at: i64,
        minutes: i64,
        n: u32,
        r: &Route,
        status: u16,
        ip: IpAddr,
        ua: &str,
    ) {
        let minutes = minutes.max(1);
        for m in 0..minutes {
            let share = n / minutes as u32 + u32::from((m as u32) < n % minutes as u32);
            let sec = self.rng.int(0, 59);
            self.push(key, at + m * 60 + sec, r, status, ip, ua, share);
        }
    }

    /// Ordinary traffic of one profile in one hour.
    fn hour(&mut self, p: &Profile, reads: &[Route], write: &Route, hour: i64) {
        let mean = p.mean(hour);
        if mean <= 0.0 {
            return;
        }
        let count = self.rng.count(mean, p.phi);
        let base = hour * HOUR;
        // spread over the 12 sub-buckets
        for k in 0..12 {
            let c = self.rng.poisson(count as f64 / 12.0);
            if c == 0 {
                continue;
            }
            let ts = base + k * 300 + self.rng.int(0, 299);
            let writes = (self.rng.poisson(c as f64 * p.write_share)).min(c);
            let errors = (self.rng.poisson(c as f64 * p.error_share)).min(c - writes);
            let ip = *self.rng.pick(&p.ips);
            let r = self.rng.int(0, reads.len() as i64 - 1) as usize;
            self.push(
                &p.key,
                ts,
                &reads[r],
                200,
                ip,
                &p.user_agent,
                c - writes - errors,
            );
            self.push(&p.key, ts, write, 201, ip, &p.user_agent, writes);
            self.push(&p.key, ts, &reads[r], 403, ip, &p.user_agent, errors);
        }
    }
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn path_id(rng: &mut Rng) -> String {
    format!("{:010x}", rng.next_u64() & 0xff_ffff_ffff)
}

/// The keys of a stream, with parameters drawn from `rng`.
fn profiles(rng: &mut Rng, start: i64, end: i64) -> Vec<Profile> {
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

/// Generates a stream (see the module comment), keeping its calls as events.
pub fn generate(cfg: &Config, catalog: &Catalog) -> Stream {
    let mut groups: Vec<(Event, u32)> = Vec::new();
    let mut stream = generate_with(cfg, catalog, &mut |e, n| {
        groups.push((
            Event {
                ts: e.ts,
                key: e.key.to_string(),
                route: e.route.to_string(),
                scope: e.scope.map(str::to_string),
                access: e.access,
                status: e.status,
                source_ip: e.source_ip,
                user_agent: e.user_agent.map(str::to_string),
                via_proxy: e.via_proxy,
                host: e.host.map(str::to_string),
                account: e.account.map(str::to_string),
            },
            n,
        ))
    });
    stream.groups = groups;
    stream
}

/// Generates a stream straight into its series (`groups` stays empty): the fast path for
/// property tests.
pub fn generate_series(cfg: &Config, catalog: &Catalog) -> (Stream, Series) {
    let mut series = Series::default();
    let stream = generate_with(cfg, catalog, &mut |e, n| series.add(e, n));
    (stream, series)
}

/// Generates a stream, handing each group of identical calls to `sink`.
pub fn generate_with(
    cfg: &Config,
    catalog: &Catalog,
    sink: &mut dyn FnMut(&EventRef<'_>, u32),
) -> Stream {
    let mut g = Gen {
        rng: Rng::new(cfg.seed),
        catalog,
        sink,
    };
    let start = cfg.start;
    let end = start + cfg.weeks.max(7) * 7 * DAY;
    let profiles = profiles(&mut g.rng, start, end);
    let mut peaks = Vec::new();
    let mut first_runs = Vec::new();
    for p in &profiles {
        let reads: Vec<Route> = p.reads.iter().map(|(m, path)| g.route(m, path)).collect();
        let write = g.route(p.write.0, &p.write.1);
        let mut hour = p.from.div_euclid(HOUR).max(start / HOUR);
        while hour * HOUR < p.until.min(end) {
            g.hour(p, &reads, &write, hour);
            hour += 1;
        }
        // batches
        let mut day = start / DAY;
        while day * DAY < p.until.min(end) {
            let dow = (day + 3).rem_euclid(7);
            for b in &p.batches {
                if b.weekday.is_some_and(|w| w != dow) {
                    continue;
                }
                let at = day * DAY + b.hour * HOUR + (b.minute + g.rng.int(0, 3)) * 60;
                if at < p.from || at >= p.until {
                    continue;
                }
                let size = (b.size * g.rng.range(0.8, 1.2)).round() as u32;
                let ip = *g.rng.pick(&p.ips);
                g.spread(
                    &p.key,
                    at,
                    b.minutes,
                    size,
                    &reads[0],
                    200,
                    ip,
                    &p.user_agent,
                );
                // the first run of a batch is new to the key (judged while learning): only
                // the runs after it are seasonal peaks
                let peak = Peak {
                    key: p.key.clone(),
                    start: at,
                    end: at + b.minutes * 60 + 60,
                };
                if at >= p.from + 7 * DAY {
                    peaks.push(peak);
                } else {
                    first_runs.push(peak);
                }
            }
            day += 1;
        }
    }
    let mut injections = Vec::new();
    if cfg.inject {
        inject(&mut g, &profiles, start, end, &mut injections);
    }
    Stream {
        start,
        end,
        profiles,
        groups: Vec::new(),
        injections,
        peaks,
        first_runs,
        quiet_new_keys: vec!["fresh".into()],
    }
}

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

fn inject(
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
