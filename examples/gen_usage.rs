//! Usage-event generator and benchmark of the least-privilege audit.
//!
//! ```sh
//! cargo run --release --example gen_usage -- DIR [KEYS] [EVENTS]      # write DIR/usage-NN.jsonl
//! cargo run --release --example gen_usage -- --bench DIR [KEYS] [EVENTS]  # and time the audit
//! ```
//!
//! Writes `EVENTS` (default 1,000,000) events of `KEYS` (default 1,000) keys named
//! `key-0000`..., spread over the 90 days before 2026-11-24, in the usage-event contract format,
//! across 8 files. With `--bench` it then times `usage::read_evidence` over the directory and
//! `privilege::evaluate` over the keys (custom keys with a few unused scopes) and prints both.
//! `GEN_USAGE_REUSE=1` reuses the events already in DIR.

use awxguard::finding::Verification;
use awxguard::privilege::{
    evaluate, Catalog, Environment, KeyDescription, KeyFacts, KeyKind, LoginFacts, PrivilegeRules,
    SecretSource, Storage,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/transfers"),
    ("GET", "/api/v1/transfers/{uuid}"),
    ("GET", "/api/v1/balances/current"),
    ("GET", "/api/v1/beneficiaries"),
    ("GET", "/api/v1/financial_transactions"),
    ("POST", "/api/v1/transfers/create"),
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/authentication/login"),
];

fn generate(dir: &Path, keys: usize, events: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let end = chrono::DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z")
        .unwrap()
        .timestamp();
    let start = end - 90 * 86_400;
    let files = 8;
    let mut rng = StdRng::seed_from_u64(20261124);
    let mut out: Vec<std::io::BufWriter<std::fs::File>> = (0..files)
        .map(|i| {
            std::fs::File::create(dir.join(format!("usage-{i:02}.jsonl")))
                .map(std::io::BufWriter::new)
        })
        .collect::<Result<_, _>>()?;
    for n in 0..events {
        let k = rng.gen_range(0..keys);
        // each key uses the first few routes; one key in ten also writes
        let span = if k % 10 == 0 { ROUTES.len() } else { 5 };
        let (method, path) = ROUTES[rng.gen_range(0..span)];
        let path = if path.contains("{uuid}") {
            format!(
                "/api/v1/transfers/{:08x}-{:04x}-4000-8000-{:012x}",
                rng.gen::<u32>(),
                rng.gen::<u16>(),
                rng.gen::<u64>() & 0xffff_ffff_ffff
            )
        } else {
            path.to_string()
        };
        // the first event of every key sits at the window's start, so coverage is complete
        let ts = if n < keys {
            start
        } else {
            rng.gen_range(start..end)
        };
        let t = chrono::DateTime::from_timestamp(ts, rng.gen_range(0..1000) * 1_000_000).unwrap();
        let status = if rng.gen_ratio(1, 50) {
            429
        } else if method == "POST" {
            201
        } else {
            200
        };
        let key = if n < keys { n } else { k };
        writeln!(
            out[n % files],
            r#"{{"ts":"{}","key":"key-{key:04}","method":"{method}","path":"{path}","status":{status},"source_ip":"10.{}.{}.{}","user_agent":"svc-{key}/1.0","host":"api.airwallex.com","latency_ms":{}}}"#,
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            key / 256 % 256,
            key % 256,
            1 + key % 3,
            rng.gen_range(20..400)
        )?;
    }
    for mut f in out {
        f.flush()?;
    }
    Ok(())
}

fn facts(keys: usize, catalog: &Catalog) -> Vec<KeyFacts> {
    let _ = catalog;
    (0..keys)
        .map(|i| KeyFacts {
            key: KeyDescription {
                name: format!("key-{i:04}"),
                client_id: format!("cid{i:019}"),
                environment: Environment::Production,
                kind: KeyKind::Custom,
                scopes: vec![],
                owner: Some("payments".into()),
                purpose: Some("bench".into()),
                integration: Some(format!("svc-{i}")),
                created: chrono::NaiveDate::from_ymd_opt(2026, 1, 1),
                rotated: None,
                ip_whitelist: vec![],
                consumers: vec![],
                declared_at: String::new(),
                config_problems: vec![],
            },
            declared: true,
            fingerprint: None,
            declared_scopes: [
                "transfer:read",
                "transfer:write",
                "balance:read",
                "beneficiary:read",
                "financial_transaction:read",
                "webhook:write",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            storage: Storage {
                source: SecretSource::Env {
                    var: format!("KEY_{i}"),
                },
                file_mode: None,
                world_readable: false,
                group_readable: false,
                in_git_work_tree: None,
                plaintext_locations: vec![],
            },
            secret_problem: None,
            login: Some(LoginFacts {
                verification: Verification::Live,
                detail: String::new(),
                permissions: None,
                base_url: "http://127.0.0.1".into(),
            }),
            leaks: vec![],
            found_by: Default::default(),
        })
        .collect()
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.first().is_some_and(|a| a == "--bench");
    if bench {
        args.remove(0);
    }
    let dir = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "target/usage-bench".into()),
    );
    let keys: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let events: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    if std::env::var_os("GEN_USAGE_REUSE").is_some() && dir.is_dir() {
        println!("reusing the events in {}", dir.display());
    } else {
        let t = Instant::now();
        generate(&dir, keys, events).expect("write events");
        println!(
            "generated {events} events of {keys} keys in {} ({:.2?})",
            dir.display(),
            t.elapsed()
        );
    }
    if !bench {
        return;
    }
    let catalog = Catalog::builtin();
    let rules = PrivilegeRules::builtin();
    let t = Instant::now();
    let ev = awxguard::usage::read_evidence(std::slice::from_ref(&dir), &catalog).expect("read");
    let read = t.elapsed();
    println!(
        "read_evidence: {} events ({} duplicates, {} rejected) of {} keys in {read:.2?} ({:.0} events/s)",
        ev.events,
        ev.duplicates,
        ev.rejected,
        ev.keys.len(),
        ev.events as f64 / read.as_secs_f64()
    );
    let facts = facts(keys, &catalog);
    let now = "2026-11-24T12:00:00Z".parse().unwrap();
    let t = Instant::now();
    let found = evaluate(&facts, Some(&ev), &catalog, &rules, now);
    let judged = t.elapsed();
    println!(
        "evaluate: {} keys -> {} findings in {judged:.2?}",
        facts.len(),
        found.len()
    );
    println!("total (after generation): {:.2?}", read + judged);
}
