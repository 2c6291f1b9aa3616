//! `awxguard demo`: the main job on bundled sample data, with no Airwallex account and no
//! network. It writes a sample repository (with git history when git is installed) and a sample
//! key inventory with 100 days of usage evidence, serves the local Airwallex simulator on
//! loopback (on the caller's runtime), and runs the real commands against them: a working-tree
//! scan, a history scan with live verification, and a least-privilege audit. Every key is made up
//! on the spot; the files' text is in `data/`, with `{placeholders}` for the keys.

use crate::airwallex::simulator::{Behaviour, SimState, Simulator};
use crate::clock::Clock;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write the sample data in {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {what}")]
    Run {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Git(String),
    #[error("cannot start the local Airwallex simulator")]
    Simulator(#[source] std::io::Error),
    #[error("the demo stopped: {0}")]
    Panicked(String),
}

/// What the demo is asked to do.
#[derive(Debug, Clone)]
pub struct DemoRequest {
    /// Write the sample data here and keep it (else a temporary directory, removed afterwards).
    pub dir: Option<PathBuf>,
    /// The report format of the commands it runs: `human` or `json`.
    pub format: &'static str,
}

/// The sample repository's files: (path in the repository, template).
const REPO_FILES: &[(&str, &str)] = &[
    (".env", include_str!("data/repo/env")),
    ("scripts/smoke.sh", include_str!("data/repo/smoke.sh")),
    (
        "deploy/k8s/payments-secret.yaml",
        include_str!("data/repo/payments-secret.yaml"),
    ),
    ("src/payouts.py", include_str!("data/repo/payouts.py")),
    ("docs/setup.md", include_str!("data/repo/setup.md")),
    (
        "vendor/checksums.txt",
        include_str!("data/repo/checksums.txt"),
    ),
    ("notes/allowed.env", include_str!("data/repo/allowed.env")),
    (".gitignore", include_str!("data/repo/gitignore")),
    (
        "node_modules/some-sdk/config.js",
        include_str!("data/repo/config.js"),
    ),
];

/// The key inventory of the demo (`ops/awxguard.toml`).
const INVENTORY: &str = include_str!("data/awxguard.toml");

/// Fills `{name}` placeholders of `template` from `vars`; other braces stay as they are.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
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

/// Writes `text` to `dir/rel`, creating parent directories.
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

impl Default for DemoKeys {
    /// Fresh keys, made up on the spot.
    fn default() -> DemoKeys {
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
    let b64 = base64::engine::general_purpose::STANDARD.encode(&keys.k8s_key);
    let (digest, allowed, vendored) = (random_api_key(), random_api_key(), random_api_key());
    let vars = [
        ("client_id", keys.client_id.as_str()),
        ("env_key", keys.env_key.as_str()),
        ("script_key", keys.script_key.as_str()),
        ("k8s_key_base64", b64.as_str()),
        ("digest", digest.as_str()),
        ("allowed_key", allowed.as_str()),
        ("vendored_key", vendored.as_str()),
    ];
    for (rel, template) in REPO_FILES {
        write(dir, rel, &fill(template, &vars))?;
    }
    std::fs::write(dir.join("logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")?;
    Ok(())
}

fn git(repo: &Path, args: &[&str]) -> Result<(), DemoError> {
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
        .map_err(|source| DemoError::Run {
            what: format!("git {}", args.join(" ")),
            source,
        })?;
    if !out.status.success() {
        return Err(DemoError::Git(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Gives the sample repository a history: a key committed and deleted later, and one living only
/// on an unmerged branch.
fn write_history(repo: &Path, keys: &DemoKeys) -> Result<(), DemoError> {
    let io = |source| DemoError::Write {
        path: repo.to_path_buf(),
        source,
    };
    let vars = [
        ("client_id", keys.client_id.as_str()),
        ("history_key", keys.history_key.as_str()),
        ("branch_key", keys.branch_key.as_str()),
    ];
    git(repo, &["init", "-q"])?;
    write(
        repo,
        "config/airwallex.yml",
        &fill(include_str!("data/history/airwallex.yml"), &vars),
    )
    .map_err(io)?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-qm", "Payouts service"])?;
    std::fs::remove_file(repo.join("config/airwallex.yml")).map_err(io)?;
    git(repo, &["add", "-A"])?;
    git(
        repo,
        &["commit", "-qm", "Move the Airwallex key to the environment"],
    )?;
    git(repo, &["checkout", "-qb", "feature/staging"])?;
    write(
        repo,
        ".env.staging",
        &fill(include_str!("data/history/env.staging"), &vars),
    )
    .map_err(io)?;
    git(repo, &["add", ".env.staging"])?;
    git(repo, &["commit", "-qm", "Staging config"])?;
    git(repo, &["checkout", "-q", "main"])?;
    std::fs::remove_file(repo.join(".env.staging")).ok();
    Ok(())
}

/// The inventory: four keys with the problems a real audit finds, their secrets in files.
fn write_inventory(
    ops: &Path,
    keys: &DemoKeys,
    reporting: &str,
    legacy: &str,
    sandbox: &str,
    cid: [&str; 3],
) -> std::io::Result<()> {
    let secret = |name: &str, value: &str, mode: u32| -> std::io::Result<()> {
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
    let vars = [
        ("payvy_cid", keys.client_id.as_str()),
        ("reporting_cid", cid[0]),
        ("legacy_cid", cid[1]),
        ("sandbox_cid", cid[2]),
    ];
    write(ops, "awxguard.toml", &fill(INVENTORY, &vars))
}

/// 100 days of usage evidence (usage-event contract) ending at `now`.
fn write_usage(ops: &Path, now: chrono::DateTime<chrono::Utc>) -> std::io::Result<usize> {
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
    tell!("\n=== {title} ===");
}

/// Runs this same binary with `args` on a blocking thread, its output going straight to the
/// terminal.
async fn run_child(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Result<i32, DemoError> {
    let exe = std::env::current_exe().map_err(|source| DemoError::Run {
        what: "the awxguard binary".into(),
        source,
    })?;
    tell!("$ awxguard {}", args.join(" "));
    let mut cmd = Command::new(exe);
    cmd.args(args).envs(envs.iter().copied()).current_dir(cwd);
    let status = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .map_err(|e| DemoError::Panicked(e.to_string()))?
        .map_err(|source| DemoError::Run {
            what: "awxguard".into(),
            source,
        })?;
    Ok(status.code().unwrap_or(2))
}

/// Runs the demo; the simulator serves on the caller's runtime until the demo is done.
pub async fn run(req: DemoRequest, clock: &dyn Clock) -> Result<(), DemoError> {
    let tmp;
    let dir = match &req.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| DemoError::Write {
                path: d.clone(),
                source,
            })?;
            d.clone()
        }
        None => {
            tmp = TempDir::new().map_err(|source| DemoError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
            tmp.0.clone()
        }
    };
    let repo = dir.join("payments-service");
    let ops = dir.join("ops");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Write { path, source }
    };
    std::fs::create_dir_all(&repo).map_err(io(&repo))?;
    let keys = DemoKeys::default();
    let have_git = Command::new("git").arg("--version").output().is_ok();
    if have_git {
        write_history(&repo, &keys)?;
    }
    write_sample_repo(&repo, &keys).map_err(io(&repo))?;
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Simulator)?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(DemoError::Simulator)?
    );
    let server = tokio::spawn(Simulator::new(state).serve(listener));

    let now = clock.now();
    write_inventory(
        &ops,
        &keys,
        &reporting,
        &legacy,
        &sandbox,
        [&cids[0], &cids[1], &cids[2]],
    )
    .map_err(io(&ops))?;
    let events = write_usage(&ops, now).map_err(io(&ops))?;
    let db = dir.join("awxguard-demo.db");
    let db_s = db.display().to_string();
    let envs = [
        ("AWXGUARD_AIRWALLEX_URL", url.as_str()),
        ("AWXGUARD_DB", db_s.as_str()),
    ];
    let format = req.format;

    tell!(
        "awxguard demo: sample data in {} (keys made up on the spot), a local Airwallex simulator at {url}",
        dir.display()
    );
    section("1. Working tree: leaked keys in files");
    let c1 = run_child(&["scan", "--format", format, "."], &envs, &repo).await?;
    if have_git {
        section("2. Full git history, every branch, with live verification against the simulator");
        run_child(
            &["scan", "--format", format, "--git", "--verify", "."],
            &envs,
            &repo,
        )
        .await?;
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
    run_child(&audit_args, &envs, &ops).await?;
    server.abort();
    tell!(
        "\nawxguard demo: done. The docs placeholder, the env lookups, the SHA-384 digest, the \
         allow-listed line, the ignored node_modules/ and the binary logo were rightly left alone. \
         A real `awxguard scan` exits {c1} on findings like these; the demo itself exits 0."
    );
    Ok(())
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
