//! `awxguard demo`: the whole story on generated data, with no Airwallex account and no network.
//! It writes a sample repository (a key in its history), a key inventory with an admin key and a
//! payee-and-pay key, five weeks of usage with a weekly batch peak and an incident, serves the
//! local Airwallex simulator on loopback (on the caller's runtime), and runs the library's jobs
//! against them, recording into one store: scans of the tree and the history with live
//! verification, the usage anomaly detection, the least-privilege audit, the money-movement
//! watch catching a payee created and paid at once with the leaked key, the alerts delivered to
//! the file sink, and the HTML report (`story.rs`). Every key is made up on the spot; the files'
//! text is in `data/`, with `{placeholders}` for the keys.

mod story;
mod usage;

pub use story::{run, DemoOutcome, DemoRequest};

use chrono::{DateTime, Utc};
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
    #[error("{step} failed")]
    Step {
        step: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DemoError {
    /// A step of the story (a library job) that failed.
    pub fn step(
        step: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> DemoError {
        DemoError::Step {
            step,
            source: Box::new(e),
        }
    }
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

/// A key the demo made: from now on the redaction gate scrubs it from anything going out.
fn held(key: String) -> String {
    crate::redact::hold(&key);
    key
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
            env_key: held(random_api_key()),
            script_key: held(random_api_key()),
            k8s_key: held(random_api_key()),
            history_key: held(random_api_key()),
            branch_key: held(random_api_key()),
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

/// Runs git in `repo` as the demo's developer, commits dated `when`.
fn git(repo: &Path, when: DateTime<Utc>, args: &[&str]) -> Result<(), DemoError> {
    let date = when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = Command::new("git")
        .current_dir(repo)
        .args([
            "-c",
            "user.name=Dana Developer",
            "-c",
            "user.email=dana@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
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

/// Gives the sample repository a history, dated back from `t0`: a key committed 60 days ago and
/// deleted 45 days ago (still live), and one living only on an unmerged branch.
fn write_history(repo: &Path, keys: &DemoKeys, t0: DateTime<Utc>) -> Result<(), DemoError> {
    let io = |source| DemoError::Write {
        path: repo.to_path_buf(),
        source,
    };
    let vars = [
        ("client_id", keys.client_id.as_str()),
        ("history_key", keys.history_key.as_str()),
        ("branch_key", keys.branch_key.as_str()),
    ];
    let days = |d: i64| t0 - chrono::Duration::days(d);
    git(repo, days(60), &["init", "-q"])?;
    write(
        repo,
        "config/airwallex.yml",
        &fill(include_str!("data/history/airwallex.yml"), &vars),
    )
    .map_err(io)?;
    git(repo, days(60), &["add", "-A"])?;
    git(repo, days(60), &["commit", "-qm", "Payouts service"])?;
    std::fs::remove_file(repo.join("config/airwallex.yml")).map_err(io)?;
    git(repo, days(45), &["add", "-A"])?;
    git(
        repo,
        days(45),
        &["commit", "-qm", "Move the Airwallex key to the environment"],
    )?;
    git(repo, days(40), &["checkout", "-qb", "feature/staging"])?;
    write(
        repo,
        ".env.staging",
        &fill(include_str!("data/history/env.staging"), &vars),
    )
    .map_err(io)?;
    git(repo, days(40), &["add", ".env.staging"])?;
    git(repo, days(40), &["commit", "-qm", "Staging config"])?;
    git(repo, days(40), &["checkout", "-q", "main"])?;
    std::fs::remove_file(repo.join(".env.staging")).ok();
    Ok(())
}

/// Writes the sample repository (history when git is installed, then the working tree, committed
/// `LEAK_DAYS` days before `t0`: that commit brings payvy-ap's key in `.env`). Returns whether
/// git made a history.
pub fn write_repo(repo: &Path, keys: &DemoKeys, t0: DateTime<Utc>) -> Result<bool, DemoError> {
    let io = |source| DemoError::Write {
        path: repo.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(repo).map_err(io)?;
    let have_git = Command::new("git").arg("--version").output().is_ok();
    if have_git {
        write_history(repo, keys, t0)?;
    }
    write_sample_repo(repo, keys).map_err(io)?;
    if have_git {
        let when = t0 - chrono::Duration::days(LEAK_DAYS);
        git(repo, when, &["add", "-A"])?;
        git(
            repo,
            when,
            &["commit", "-qm", "Payouts: read the Airwallex key from .env"],
        )?;
    }
    Ok(have_git)
}

/// How many days before the story the commit that leaked payvy-ap's key was made.
pub const LEAK_DAYS: i64 = 9;

/// The keys of the inventory besides payvy-ap (whose key is `DemoKeys::env_key`).
pub struct OtherKeys {
    pub reporting: String,
    pub legacy: String,
    pub sandbox: String,
    pub watcher: String,
    /// Client IDs of reporting, legacy-admin, payvy-sandbox and treasury-watch.
    pub cids: [String; 4],
}

impl Default for OtherKeys {
    fn default() -> OtherKeys {
        OtherKeys {
            reporting: held(random_api_key()),
            legacy: held(random_api_key()),
            sandbox: held(random_api_key()),
            watcher: held(random_api_key()),
            cids: std::array::from_fn(|_| random_client_id()),
        }
    }
}

/// The inventory: five keys with the problems a real audit finds (and a read-only key for the
/// watch), their secrets in files, followed by `sections` (the demo's `[airwallex]`,
/// `[alerts]`, `[watch]`).
pub fn write_inventory(
    ops: &Path,
    keys: &DemoKeys,
    other: &OtherKeys,
    sections: &str,
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
    secret("reporting.key", &other.reporting, 0o644)?;
    secret("legacy-admin.key", &other.legacy, 0o600)?;
    secret("payvy-sandbox.key", &other.sandbox, 0o600)?;
    secret("treasury-watch.key", &other.watcher, 0o600)?;
    let vars = [
        ("payvy_cid", keys.client_id.as_str()),
        ("reporting_cid", other.cids[0].as_str()),
        ("legacy_cid", other.cids[1].as_str()),
        ("sandbox_cid", other.cids[2].as_str()),
        ("watch_cid", other.cids[3].as_str()),
    ];
    write(
        ops,
        "awxguard.toml",
        &format!("{}\n{sections}", fill(INVENTORY, &vars)),
    )
}
