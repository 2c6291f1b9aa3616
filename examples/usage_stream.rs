//! A time-ordered stream of usage events for the evidence-store benchmark
//! (`bench/usage-store.sh`): `KEYS` keys over the `DAYS` days before 2026-11-24, about `EVENTS`
//! events in all, each key with its own daily curve (office hours or around the clock), a few
//! routes (some with IDs in the path), two addresses, its user agent and a trickle of 429s and
//! 403s. Deterministic. Writes usage-contract JSON lines, or with `--csv` the same events as CSV
//! rows with a header (for `sqlite3 .import`).
//!
//! ```sh
//! cargo run --release --example usage_stream -- [--csv] KEYS DAYS EVENTS > out
//! ```

use std::io::Write;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn poisson(&mut self, l: f64) -> u64 {
        if l <= 0.0 {
            return 0;
        }
        if l > 30.0 {
            let u1 = self.f64().max(1e-300);
            let u2 = self.f64();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (l + l.sqrt() * z).round().max(0.0) as u64;
        }
        let (e, mut k, mut p) = ((-l).exp(), 0, 1.0);
        loop {
            p *= self.f64();
            if p <= e {
                return k;
            }
            k += 1;
        }
    }
}

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/transfers"),
    ("GET", "/api/v1/transfers/"),
    ("GET", "/api/v1/balances/current"),
    ("GET", "/api/v1/financial_transactions"),
    ("GET", "/api/v1/beneficiaries"),
    ("POST", "/api/v1/transfers/create"),
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/authentication/login"),
];

struct Key {
    name: String,
    office: bool,
    weight: f64,
    ips: [String; 2],
    agent: String,
    routes: usize,
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let csv = args.first().is_some_and(|a| a == "--csv");
    if csv {
        args.remove(0);
    }
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (keys, days, events) = (num(0, 1000), num(1, 90), num(2, 10_000_000));
    let end = 1_795_478_400i64; // 2026-11-24T00:00:00Z
    let start = end - days as i64 * 86_400;
    let mut rng = Rng(20261124);
    let ks: Vec<Key> = (0..keys)
        .map(|i| Key {
            name: format!("key-{i:04}"),
            office: i % 3 == 0,
            weight: 0.2 + 1.8 * rng.f64(),
            ips: [
                format!("198.51.{}.{}", i % 250, 10 + rng.below(200)),
                format!("203.0.{}.{}", i % 250, 10 + rng.below(200)),
            ],
            agent: format!("svc-{}/{}.{}", i % 37, 1 + i % 4, rng.below(10)),
            routes: if i % 10 == 0 { ROUTES.len() } else { 5 },
        })
        .collect();
    // hourly curve: office keys weekdays 8-18, others around the clock with a daytime bump
    let curve = |k: &Key, hour: i64| -> f64 {
        let hod = hour.rem_euclid(24);
        let dow = ((hour * 3600).div_euclid(86_400) + 3).rem_euclid(7);
        if k.office {
            if dow < 5 && (8..18).contains(&hod) {
                2.4
            } else {
                0.0
            }
        } else {
            0.6 + 0.4
                * (std::f64::consts::PI * (hod as f64 - 3.0) / 12.0)
                    .sin()
                    .abs()
        }
    };
    let hours = days as i64 * 24;
    let mut total_weight = 0.0;
    for k in &ks {
        for h in 0..(7 * 24) {
            total_weight += k.weight * curve(k, start / 3600 + h);
        }
    }
    let scale = events as f64 / (total_weight * hours as f64 / (7.0 * 24.0));
    let out = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out.lock());
    if csv {
        writeln!(
            w,
            "ts,key,method,path,status,source_ip,user_agent,host,latency_ms"
        )
        .unwrap();
    }
    let mut secs: Vec<(u32, usize)> = Vec::new();
    for h in 0..hours {
        let hour = start / 3600 + h;
        secs.clear();
        for (ki, k) in ks.iter().enumerate() {
            let n = rng.poisson(k.weight * curve(k, hour) * scale);
            for _ in 0..n {
                secs.push(((rng.below(3_600_000)) as u32, ki));
            }
        }
        secs.sort_unstable();
        for &(ms, ki) in &secs {
            let k = &ks[ki];
            let (method, path) = ROUTES[rng.below(k.routes as u64) as usize];
            let status = match rng.below(100) {
                0 => 429,
                1 => 403,
                _ if method == "POST" => 201,
                _ => 200,
            };
            let t = hour * 3_600_000 + ms as i64;
            let ts = chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let ip = &k.ips[rng.below(2) as usize];
            let lat = 20 + rng.below(400);
            let id;
            let path = if path.ends_with('/') {
                id = format!(
                    "{path}{:08x}-{:04x}-4000-8000-{:012x}",
                    rng.next() as u32,
                    rng.next() as u16,
                    rng.next() & 0xffff_ffff_ffff
                );
                id.as_str()
            } else {
                path
            };
            if csv {
                writeln!(
                    w,
                    "{ts},{},{method},{path},{status},{ip},{},api.airwallex.com,{lat}",
                    k.name, k.agent
                )
                .unwrap();
            } else {
                writeln!(
                    w,
                    r#"{{"ts":"{ts}","key":"{}","method":"{method}","path":"{path}","status":{status},"source_ip":"{ip}","user_agent":"{}","host":"api.airwallex.com","latency_ms":{lat}}}"#,
                    k.name, k.agent
                )
                .unwrap();
            }
        }
    }
}
