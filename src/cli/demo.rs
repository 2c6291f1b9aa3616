//! `awxguard demo`: the main job on bundled sample data, with no Airwallex account and no
//! network. It writes a sample repository (with git history when git is installed) and a sample
//! key inventory with 100 days of usage evidence, starts the local Airwallex simulator on
//! loopback, and runs the real commands against them: a working-tree scan, a history scan with
//! live verification, and a least-privilege audit. Every key is made up on the spot.

use super::Context;
use crate::airwallex::simulator::{Behaviour, SimState, Simulator};
use anyhow::Context as _;
use clap::Args;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write the sample data here and keep it (default: a temporary directory, removed
    /// afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// A random, realistic Airwallex API key (48 random bytes in hex).
pub fn random_api_key() -> String {
    let mut rng = rand::thread_rng();
    (0..48)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// A random client ID (22 characters of base64url).
pub fn random_client_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..64)] as char)
        .collect()
}

fn write(dir: &Path, rel: &str, text: &str) -> std::io::Result<()> {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(p, text)
}

/// The keys of the demo: which leak where, and how the simulator answers for them.
pub struct DemoKeys {
    pub client_id: String,
    /// In `.env`; also the Payvy key declared in the inventory (so the audit sees it leaked).
    pub env_key: String,
    /// In a curl script; revoked.
    pub script_key: String,
    /// In a Kubernetes Secret (base64).
    pub k8s_key: String,
    /// Committed, then deleted: only in history; still live.
    pub history_key: String,
    /// Only on an unmerged branch.
    pub branch_key: String,
}

impl DemoKeys {
    fn new() -> DemoKeys {
        DemoKeys {
            client_id: random_client_id(),
            env_key: random_api_key(),
            script_key: random_api_key(),
            k8s_key: random_api_key(),
            history_key: random_api_key(),
            branch_key: random_api_key(),
        }
    }
}

/// Writes the sample repository's working tree into `dir`: planted keys in the dialects
/// awxguard detects, and the look-alikes it must leave alone.
pub fn write_sample_repo(dir: &Path, keys: &DemoKeys) -> std::io::Result<()> {
    use base64::Engine;
    let cid = &keys.client_id;
    write(
        dir,
        ".env",
        &format!(
            "# payouts service\nAIRWALLEX_CLIENT_ID={cid}\nAIRWALLEX_API_KEY={}\n",
            keys.env_key
        ),
    )?;
    write(
        dir,
        "scripts/smoke.sh",
        &format!(
            "#!/bin/sh\ncurl -sX POST https://api.airwallex.com/api/v1/authentication/login \\\n  -H \"x-client-id: {cid}\" \\\n  -H \"x-api-key: {}\"\n",
            keys.script_key
        ),
    )?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&keys.k8s_key);
    write(
        dir,
        "deploy/k8s/payments-secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: payments-airwallex\ntype: Opaque\ndata:\n  API_KEY: {b64}\n"
        ),
    )?;
    write(
        dir,
        "src/payouts.py",
        "import os\n\nfrom airwallex import Client\n\nclient = Client(\n    client_id=os.environ[\"AIRWALLEX_CLIENT_ID\"],\n    api_key=os.environ[\"AIRWALLEX_API_KEY\"],\n)\n",
    )?;
    write(
        dir,
        "docs/setup.md",
        "Set `AIRWALLEX_API_KEY=<your_api_key>` in `.env`, or `x-api-key: {{api_key}}` in Postman.\n",
    )?;
    write(
        dir,
        "vendor/checksums.txt",
        &format!("sha384  {}  airwallex-node-1.4.0.tgz\n", random_api_key()),
    )?;
    write(
        dir,
        "notes/allowed.env",
        &format!(
            "AIRWALLEX_API_KEY={} # awxguard:allow (a revoked test key kept for a fixture)\n",
            random_api_key()
        ),
    )?;
    write(dir, ".gitignore", "node_modules/\n")?;
    write(
        dir,
        "node_modules/some-sdk/config.js",
        &format!(
            "module.exports = {{ airwallexApiKey: '{}' }};\n",
            random_api_key()
        ),
    )?;
    std::fs::write(dir.join("logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")?;
    Ok(())
}

fn git(repo: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .current_dir(repo)
        .args([
            "-c",
            "user.name=Demo Developer",
            "-c",
            "user.email=dev@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-09-01T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-09-01T10:00:00Z")
        .output()
        .with_context(|| format!("cannot run git {}", args.join(" ")))?;
    if !out.status.success() {
        anyhow::bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Gives the sample repository a history: a key committed and deleted later, and one living only
/// on an unmerged branch.
fn write_history(repo: &Path, keys: &DemoKeys) -> anyhow::Result<()> {
    git(repo, &["init", "-q"])?;
    write(
        repo,
        "config/airwallex.yml",
        &format!(
            "airwallex:\n  base_url: https://api.airwallex.com\n  client_id: {}\n  api_key: {}\n",
            keys.client_id, keys.history_key
        ),
    )?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-qm", "Payouts service"])?;
    std::fs::remove_file(repo.join("config/airwallex.yml"))?;
    git(repo, &["add", "-A"])?;
    git(
        repo,
        &["commit", "-qm", "Move the Airwallex key to the environment"],
    )?;
    git(repo, &["checkout", "-qb", "feature/staging"])?;
    write(
        repo,
        ".env.staging",
        &format!(
            "AIRWALLEX_CLIENT_ID={}\nAIRWALLEX_API_KEY={}\n",
            keys.client_id, keys.branch_key
        ),
    )?;
    git(repo, &["add", ".env.staging"])?;
    git(repo, &["commit", "-qm", "Staging config"])?;
    git(repo, &["checkout", "-q", "main"])?;
    std::fs::remove_file(repo.join(".env.staging")).ok();
    Ok(())
}

/// The inventory: four keys with the problems a real audit finds.
fn write_inventory(
    ops: &Path,
    keys: &DemoKeys,
    reporting: &str,
    legacy: &str,
    sandbox: &str,
    cid: [&str; 3],
) -> anyhow::Result<()> {
    let secret = |name: &str, value: &str, mode: u32| -> anyhow::Result<()> {
        let p = ops.join("secrets").join(name);
        write(ops, &format!("secrets/{name}"), value)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        }
        let _ = (p, mode);
        Ok(())
    };
    secret("payvy-ap.key", &keys.env_key, 0o600)?;
    secret("reporting.key", reporting, 0o644)?;
    secret("legacy-admin.key", legacy, 0o600)?;
    secret("payvy-sandbox.key", sandbox, 0o600)?;
    write(
        ops,
        "awxguard.toml",
        &format!(
            r#"# The demo's key inventory (see examples/awxguard.toml for every field).

[[key]]
name = "payvy-ap"
client_id = "{payvy_cid}"
api_key = "file:secrets/payvy-ap.key"
environment = "production"
kind = "custom"
scopes = ["transfer:write", "beneficiary:write", "balance:read"]
owner = "finance-platform@example.com"
purpose = "Pay approved supplier bills"
integration = "Payvy accounts payable"
created = 2025-09-15
rotated = 2026-06-01
ip_whitelist = ["203.0.113.0/24"]
consumers = ["payvy-worker.prod.internal"]

[[key]]
name = "reporting"
client_id = "{reporting_cid}"
api_key = "file:secrets/reporting.key"
environment = "production"
kind = "read_only"
owner = "data-team@example.com"
purpose = "Month-end cash reporting"
integration = "Warehouse loader"
created = 2026-02-01
rotated = 2026-02-01
ip_whitelist = ["198.51.100.7"]
consumers = ["etl-01.prod.internal"]

[[key]]
name = "legacy-admin"
client_id = "{legacy_cid}"
api_key = "file:secrets/legacy-admin.key"
environment = "production"
kind = "admin"
purpose = "Original ERP integration"
created = 2024-03-01
consumers = ["old-erp.internal", "payvy-worker.prod.internal"]

[[key]]
name = "payvy-sandbox"
client_id = "{sandbox_cid}"
api_key = "file:secrets/payvy-sandbox.key"
environment = "sandbox"
kind = "read_write"
owner = "finance-platform@example.com"
purpose = "Integration tests against the Airwallex sandbox"
integration = "Payvy accounts payable (staging)"
created = 2026-05-20
rotated = 2026-05-20
consumers = ["ci"]
"#,
            payvy_cid = keys.client_id,
            reporting_cid = cid[0],
            legacy_cid = cid[1],
            sandbox_cid = cid[2],
        ),
    )?;
    Ok(())
}

/// 100 days of usage evidence (usage-event contract) ending at `now`.
fn write_usage(ops: &Path, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<usize> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut n = 0;
    let mut event = |out: &mut String,
                     t: chrono::DateTime<chrono::Utc>,
                     key: &str,
                     method: &str,
                     path: &str,
                     status: u16,
                     ip: &str,
                     host: &str| {
        let _ = writeln!(
            out,
            r#"{{"ts":"{}","key":"{key}","method":"{method}","path":"{path}","status":{status},"source_ip":"{ip}","host":"{host}"}}"#,
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        n += 1;
    };
    let prod = "api.airwallex.com";
    for day in 0..100 {
        let t = now - chrono::Duration::days(100 - day) + chrono::Duration::hours(9);
        // Payvy pays bills: it reads balances and beneficiaries and creates transfers; it never
        // creates a beneficiary, so beneficiary:write is not needed.
        event(
            &mut out,
            t,
            "payvy-ap",
            "GET",
            "/api/v1/balances/current",
            200,
            "203.0.113.10",
            prod,
        );
        event(
            &mut out,
            t + chrono::Duration::minutes(1),
            "payvy-ap",
            "GET",
            "/api/v1/beneficiaries",
            200,
            "203.0.113.10",
            prod,
        );
        if day % 3 == 0 {
            event(
                &mut out,
                t + chrono::Duration::minutes(2),
                "payvy-ap",
                "POST",
                "/api/v1/transfers/create",
                201,
                "203.0.113.10",
                prod,
            );
            event(
                &mut out,
                t + chrono::Duration::minutes(3),
                "payvy-ap",
                "GET",
                &format!(
                    "/api/v1/transfers/{:08x}-1c2d-4e5f-8a9b-{:012x}",
                    day * 7919,
                    day * 104729
                ),
                200,
                "203.0.113.10",
                prod,
            );
        }
        // Reporting only reads.
        event(
            &mut out,
            t + chrono::Duration::hours(14),
            "reporting",
            "GET",
            "/api/v1/financial_transactions",
            200,
            "198.51.100.7",
            prod,
        );
        event(
            &mut out,
            t + chrono::Duration::hours(14),
            "reporting",
            "GET",
            "/api/v1/balances/history",
            200,
            "198.51.100.7",
            prod,
        );
        // The sandbox key runs in CI against the sandbox.
        if day % 7 == 0 {
            event(
                &mut out,
                t,
                "payvy-sandbox",
                "POST",
                "/api/v1/transfers/create",
                201,
                "192.0.2.50",
                "api-demo.airwallex.com",
            );
        }
    }
    // The legacy admin key was last used 95 days ago.
    event(
        &mut out,
        now - chrono::Duration::days(95),
        "legacy-admin",
        "GET",
        "/api/v1/balances/current",
        200,
        "192.0.2.10",
        prod,
    );
    write(ops, "usage/events.jsonl", &out)?;
    Ok(n)
}

fn section(title: &str) {
    eprintln!("\n=== {title} ===");
}

/// Runs this same binary with `args`, its output going straight to the terminal.
fn run_child(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find the awxguard binary")?;
    eprintln!("$ awxguard {}", args.join(" "));
    let status = Command::new(exe)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(cwd)
        .status()
        .context("cannot run awxguard")?;
    Ok(status.code().unwrap_or(2))
}

pub fn run(ctx: &Context, args: DemoArgs) -> anyhow::Result<u8> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = TempDir::new()?;
            tmp.0.clone()
        }
    };
    let repo = dir.join("payments-service");
    let ops = dir.join("ops");
    std::fs::create_dir_all(&repo)?;
    let keys = DemoKeys::new();
    let have_git = Command::new("git").arg("--version").output().is_ok();
    if have_git {
        write_history(&repo, &keys)?;
    }
    write_sample_repo(&repo, &keys)
        .with_context(|| format!("cannot write sample repository in {}", repo.display()))?;
    if have_git {
        git(&repo, &["add", "-A"])?;
        git(&repo, &["commit", "-qm", "Working tree of the demo"])?;
    }

    // The local Airwallex: which keys log in, and what their tokens allow.
    let (reporting, legacy, sandbox) = (random_api_key(), random_api_key(), random_api_key());
    let cids = [random_client_id(), random_client_id(), random_client_id()];
    let mut state = SimState::default()
        .with_key(&keys.client_id, &keys.env_key, Behaviour::Live)
        .with_key(&keys.client_id, &keys.script_key, Behaviour::Revoked)
        .with_key(&keys.client_id, &keys.history_key, Behaviour::Live)
        .with_key(&keys.client_id, &keys.branch_key, Behaviour::Revoked)
        .with_key(&cids[0], &reporting, Behaviour::Live)
        .with_key(&cids[1], &legacy, Behaviour::Live)
        .with_key(&cids[2], &sandbox, Behaviour::Live);
    // payvy-ap's token lists its scopes; reporting is declared read-only but its token shows
    // full access: an admin in disguise.
    state.keys[0].permissions = ["transfer:write", "beneficiary:write", "balance:read"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sim = Simulator::spawn(state).context("cannot start the local Airwallex simulator")?;
    let url = sim.url();

    let now = crate::clock::from_env().now();
    write_inventory(
        &ops,
        &keys,
        &reporting,
        &legacy,
        &sandbox,
        [&cids[0], &cids[1], &cids[2]],
    )?;
    let events = write_usage(&ops, now)?;
    let db = dir.join("awxguard-demo.db");
    let db_s = db.display().to_string();
    let envs = [
        ("AWXGUARD_AIRWALLEX_URL", url.as_str()),
        ("AWXGUARD_DB", db_s.as_str()),
    ];
    let format = match ctx.global.format {
        crate::report::Format::Json => "json",
        _ => "human",
    };

    eprintln!(
        "awxguard demo: sample data in {} (keys made up on the spot), a local Airwallex simulator at {url}",
        dir.display()
    );
    section("1. Working tree: leaked keys in files");
    let c1 = run_child(&["scan", "--format", format, "."], &envs, &repo)?;
    if have_git {
        section("2. Full git history, every branch, with live verification against the simulator");
        run_child(
            &["scan", "--format", format, "--git", "--verify", "."],
            &envs,
            &repo,
        )?;
    } else {
        section("2. Git history: skipped, git is not installed");
    }
    section(&format!(
        "3. Least-privilege audit of 4 declared keys, {events} usage events over 100 days"
    ));
    let audit_args = [
        "audit",
        "--format",
        format,
        "--config",
        "awxguard.toml",
        "--usage",
        "usage",
        "--scan",
        "../payments-service",
    ];
    run_child(&audit_args, &envs, &ops)?;
    eprintln!(
        "\nawxguard demo: done. The docs placeholder, the env lookups, the SHA-384 digest, the \
         allow-listed line, the ignored node_modules/ and the binary logo were rightly left alone. \
         A real `awxguard scan` exits {c1} on findings like these; the demo itself exits 0."
    );
    Ok(0)
}

/// A temporary directory removed on drop (the demo's only need; tests use the tempfile crate).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let p = std::env::temp_dir().join(format!(
            "awxguard-demo-{}-{}",
            std::process::id(),
            rand::thread_rng().gen::<u32>()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
