//! `awxguard demo`: the main job on bundled sample data. It writes a small sample repository
//! (keys generated on the spot, so nothing real and nothing committed), scans it and prints the
//! report. No Airwallex account, no network.

use super::Context;
use crate::report::Report;
use crate::scan;
use anyhow::Context as _;
use clap::Args;
use rand::Rng;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write the sample repository here and keep it (default: a temporary directory, removed
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

/// Writes the sample repository into `dir`: planted keys in the dialects awxguard detects, and
/// the look-alikes it must leave alone.
pub fn write_sample_repo(dir: &Path) -> std::io::Result<()> {
    use base64::Engine;
    let write = |rel: &str, text: &str| -> std::io::Result<()> {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)
    };
    let (k1, k2, k3, k4) = (
        random_api_key(),
        random_api_key(),
        random_api_key(),
        random_api_key(),
    );
    let cid = random_client_id();
    let sha384 = random_api_key();
    write(
        ".env",
        &format!("# payouts service\nAIRWALLEX_CLIENT_ID={cid}\nAIRWALLEX_API_KEY={k1}\n"),
    )?;
    write(
        "scripts/smoke.sh",
        &format!(
            "#!/bin/sh\ncurl -sX POST https://api.airwallex.com/api/v1/authentication/login \\\n  -H \"x-client-id: {cid}\" \\\n  -H \"x-api-key: {k2}\"\n"
        ),
    )?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&k3);
    write(
        "deploy/k8s/payments-secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: payments-airwallex\ntype: Opaque\ndata:\n  API_KEY: {b64}\n"
        ),
    )?;
    write(
        "src/payouts.py",
        "import os\n\nfrom airwallex import Client\n\nclient = Client(\n    client_id=os.environ[\"AIRWALLEX_CLIENT_ID\"],\n    api_key=os.environ[\"AIRWALLEX_API_KEY\"],\n)\n",
    )?;
    write(
        "docs/setup.md",
        "Set `AIRWALLEX_API_KEY=<your_api_key>` in `.env`, or `x-api-key: {{api_key}}` in Postman.\n",
    )?;
    write(
        "vendor/checksums.txt",
        &format!("sha384  {sha384}  airwallex-node-1.4.0.tgz\n"),
    )?;
    write(
        "notes/allowed.env",
        &format!(
            "AIRWALLEX_API_KEY={k4} # awxguard:allow (a revoked test key kept for a fixture)\n"
        ),
    )?;
    write(".gitignore", "node_modules/\n")?;
    write(
        "node_modules/some-sdk/config.js",
        &format!(
            "module.exports = {{ airwallexApiKey: '{}' }};\n",
            random_api_key()
        ),
    )?;
    std::fs::write(dir.join("logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")?;
    Ok(())
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
    write_sample_repo(&dir)
        .with_context(|| format!("cannot write sample repository in {}", dir.display()))?;
    eprintln!(
        "demo: scanning a generated sample repository ({}) with keys made up on the spot",
        dir.display()
    );
    let matcher = super::scan::build_matcher(ctx, &[], &[])?;
    let outcome = scan::scan_paths(
        &matcher,
        std::slice::from_ref(&dir),
        &scan::ScanOptions::default(),
    );
    let mut report = Report::new("scan", outcome.findings);
    report.summary.scan = Some(outcome.stats);
    report.summary.problems = outcome.problems;
    let code = ctx.emit(&report)?;
    eprintln!(
        "demo: {} findings; a real `awxguard scan` would exit {code} here. The docs placeholder, \
         the env lookups, the SHA-384 digest, the allow-listed line, the ignored node_modules/ \
         and the binary logo were rightly left alone.",
        report.findings.len()
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
