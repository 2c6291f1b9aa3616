//! A seeded generator of synthetic usage streams for testing the detectors: several weeks,
//! several keys with daily and weekly seasonality (office-hours keys, 24/7 keys with a daily
//! curve and quieter weekends, a sparse key, a bursty key), weekly and nightly batch peaks,
//! over-dispersed counts, and each kind of anomaly injected at a random time on a random
//! suitable key. It returns what it injected and where the seasonal peaks are, so tests can
//! check that every injection is found and no peak is alarmed on.
//!
//! Deterministic for a seed on every platform (its own SplitMix64 generator).

mod gen;
mod inject;
mod profiles;
mod rng;

pub use rng::Rng;

use super::series::{Event, EventRef, Series, DAY, HOUR};
use crate::airwallex::Catalog;
use gen::{Gen, Route};
use inject::inject;
use profiles::profiles;
use std::net::IpAddr;

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
