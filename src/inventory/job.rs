//! Gathering the inventory: the declared keys, then (as asked) one login per key, discovery over
//! config directories and env files, a leak scan over source trees, and usage evidence. What
//! `awxguard inventory` lists and what the audit judges. Scanning and reading evidence are CPU
//! work on blocking threads; logins are async.

use super::{
    discover, verify, DiscoverOutcome, Entry, Found, Inventory, VerifyOptions, VerifyStats,
};
use super::{KeyDescription, Storage};
use crate::airwallex::login::LoginError;
use crate::airwallex::Catalog;
use crate::config::Config;
use crate::rules::RuleError;
use crate::scan::{ScanOptions, DEFAULT_MAX_FILE_SIZE};
use crate::usage::{AnomalyWindow, Evidence, UsageError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What to gather beyond the declared keys.
#[derive(Debug, Clone, Default)]
pub struct GatherRequest {
    /// Log each key in once.
    pub verify: bool,
    /// Config directories and env files to search for keys (where keys are stored).
    pub discover: Vec<PathBuf>,
    /// Source trees and repositories to search for keys (where a key is leaked).
    pub leaks: Vec<PathBuf>,
    /// Usage-event files or directories.
    pub usage: Vec<PathBuf>,
    /// Open anomaly findings: the calls of their key inside their window are not evidence of
    /// need (`usage::screen`).
    pub anomalies: Vec<AnomalyWindow>,
}

/// Why the inventory could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("cannot search {path} for keys")]
    Search {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error("cannot read usage events")]
    Usage(#[source] UsageError),
    #[error("the inventory stopped: {0}")]
    Panicked(String),
}

/// What the inventory steps produced.
#[derive(Debug)]
pub struct Gathered {
    pub inventory: Inventory,
    pub verify: Option<VerifyStats>,
    pub discover: Option<DiscoverOutcome>,
    /// The leak scan over source trees (`audit --scan`).
    pub leak_scan: Option<DiscoverOutcome>,
    pub evidence: Option<Evidence>,
    /// Repositories among the leak-scan roots whose history was scanned too.
    pub history: Vec<PathBuf>,
    /// What the leak scan could not cover (a root inside a repository: its history is not
    /// scanned) and how to cover it.
    pub history_notes: Vec<String>,
    pub catalog: Catalog,
    /// Milliseconds per step (`inventory`, `verify`, `discover`, `leak_scan`, `evidence`).
    pub timings: BTreeMap<String, u64>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, GatherError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GatherError::Panicked(e.to_string()))
}

/// The declared keys, then (optionally) verification, discovery, the leak scan and usage
/// evidence. `now` decides whether an access token found has expired.
pub async fn gather(
    req: &GatherRequest,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Gathered, GatherError> {
    let mut timings = BTreeMap::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &str, timings: &mut BTreeMap<String, u64>| {
        timings.insert(name.to_string(), clock.elapsed().as_millis() as u64);
        clock = std::time::Instant::now();
    };
    let catalog = Catalog::builtin();
    let mut inv = Inventory::from_config(config, &catalog);
    lap("inventory", &mut timings);
    let verify = if req.verify {
        Some(verify(&mut inv, &config.airwallex, &VerifyOptions::default()).await?)
    } else {
        None
    };
    if verify.is_some() {
        lap("verify", &mut timings);
    }
    let mut discovered = None;
    let mut leak_scan = None;
    for (paths, mode) in [(&req.discover, Found::Stored), (&req.leaks, Found::Leaked)] {
        if paths.is_empty() {
            continue;
        }
        for p in paths {
            std::fs::symlink_metadata(p).map_err(|source| GatherError::Search {
                path: p.clone(),
                source,
            })?;
        }
        let matcher = crate::scan::job::matcher(&config.scan, &[], &[], now)?;
        let opts = ScanOptions {
            respect_ignore: true,
            follow_symlinks: config.scan.follow_symlinks.unwrap_or(true),
            max_file_size: config.scan.max_file_size.unwrap_or(DEFAULT_MAX_FILE_SIZE),
            keep_secrets: None,
        };
        let before = inv.entries.len();
        let roots = paths.clone();
        let (back, out) = blocking(move || {
            let out = discover(&mut inv, &matcher, &roots, &opts, mode);
            (inv, out)
        })
        .await?;
        inv = back;
        // Shadow keys found with a client ID next to them are verified too.
        if verify.is_some() && inv.entries.len() > before {
            let mut shadow = Inventory {
                entries: inv.entries.split_off(before),
            };
            super::verify(&mut shadow, &config.airwallex, &VerifyOptions::default()).await?;
            inv.entries.extend(shadow.entries);
        }
        match mode {
            Found::Stored => {
                lap("discover", &mut timings);
                discovered = Some(out);
            }
            Found::Leaked => {
                lap("leak_scan", &mut timings);
                leak_scan = Some(out);
            }
        }
    }
    // The history of each leak-scan root that is a repository: a key committed once stays in
    // it after the file is fixed.
    let mut history = Vec::new();
    let mut history_notes = Vec::new();
    for root in &req.leaks {
        match super::storage::git_work_tree(root) {
            Some(top)
                if super::facts::input::canonical(&top) == super::facts::input::canonical(root) =>
            {
                let matcher = crate::scan::job::matcher(&config.scan, &[], &[], now)?;
                let opts = ScanOptions {
                    respect_ignore: true,
                    follow_symlinks: false,
                    max_file_size: config.scan.max_file_size.unwrap_or(DEFAULT_MAX_FILE_SIZE),
                    keep_secrets: None,
                };
                let repo = root.clone();
                let scanned = blocking(move || {
                    crate::scan::git::scan_history(
                        &matcher,
                        &repo,
                        &crate::scan::git::Selection::All,
                        &opts,
                    )
                })
                .await?;
                match scanned {
                    Ok(out) => {
                        let linked = discover::link_history(&mut inv, root, &out.findings);
                        if linked.unknown > 0 {
                            history_notes.push(format!(
                                "the history of {} holds {} Airwallex key(s) no [[key]] declares \
                                 and the work tree does not hold: run `awxguard scan --git {} \
                                 --record` to list them",
                                root.display(),
                                linked.unknown,
                                root.display()
                            ));
                        }
                        history.push(root.clone());
                    }
                    Err(e) => history_notes.push(format!(
                        "the history of {} was not scanned ({e}): run `awxguard scan --git {} \
                         --record` where git can read it",
                        root.display(),
                        root.display()
                    )),
                }
            }
            Some(top) => history_notes.push(format!(
                "{} is inside the repository {}: its work tree was scanned, not the \
                 repository's history; run `awxguard scan --git {} --record` (or `audit --scan \
                 {}`) to check the history",
                root.display(),
                top.display(),
                top.display(),
                top.display()
            )),
            None => {}
        }
    }
    if !history.is_empty() {
        lap("leak_history", &mut timings);
    }
    let evidence = if req.usage.is_empty() {
        None
    } else {
        let usage = req.usage.clone();
        let cat = catalog.clone();
        // What the keys declare (and their open anomalies) decides which calls are evidence;
        // events dated beyond now plus the allowed clock skew are rejected.
        let screen = super::screen(&inv.facts(), &req.anomalies, &catalog);
        let not_after = chrono::Duration::from_std(config.usage.max_future)
            .ok()
            .and_then(|d| now.checked_add_signed(d));
        let ev = blocking(move || {
            crate::usage::read_screened_evidence(&usage, &cat, &screen, not_after)
        })
        .await?
        .map_err(GatherError::Usage)?;
        lap("evidence", &mut timings);
        Some(ev)
    };
    Ok(Gathered {
        inventory: inv,
        verify,
        discover: discovered,
        leak_scan,
        evidence,
        history,
        history_notes,
        catalog,
        timings,
    })
}

/// One key as the inventory lists it: its description, what the checks found, and ages derived
/// at the time of the listing. Never the secret: its fingerprint only.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    #[serde(flatten)]
    pub key: KeyDescription,
    pub declared: bool,
    /// How many catalog scopes the declaration grants.
    pub scope_count: usize,
    pub age_days: Option<i64>,
    pub rotated_days_ago: Option<i64>,
    /// Last event in the usage evidence; `None` without evidence for the key.
    pub last_used: Option<DateTime<Utc>>,
    /// `live`, `revoked`, `forbidden`, `unknown` (login), or `unverified`.
    pub status: String,
    /// The token's permissions claim, when a login succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// What those permissions mean, as far as Airwallex documents them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_detail: Option<String>,
    pub fingerprint: Option<String>,
    /// Why the secret could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub found_in: Vec<String>,
    /// Where and how the secret is stored (source, file mode, git work tree).
    pub storage: Storage,
}

impl std::ops::Deref for KeyRow {
    type Target = KeyDescription;
    fn deref(&self) -> &KeyDescription {
        &self.key
    }
}

/// The rows of the listing at `now`.
pub fn rows(g: &Gathered, now: DateTime<Utc>) -> Vec<KeyRow> {
    let today = now.date_naive();
    g.inventory
        .entries
        .iter()
        .map(|e: &Entry| {
            let f = &e.facts;
            let usage = g
                .evidence
                .as_ref()
                .and_then(|ev| ev.for_key(&f.name, f.fingerprint.as_deref()));
            // calls that are not evidence of need are use all the same
            let screened_last = g
                .evidence
                .as_ref()
                .and_then(|ev| ev.screened_of(&f.name, f.fingerprint.as_deref()))
                .and_then(|s| s.last());
            KeyRow {
                key: f.key.clone(),
                declared: f.declared,
                scope_count: f.declared_scopes.len(),
                age_days: f.created.map(|c| (today - c).num_days()),
                rotated_days_ago: f.rotated.map(|r| (today - r).num_days()),
                last_used: usage.map(|u| u.last_seen).max(screened_last),
                status: f
                    .login
                    .as_ref()
                    .map(|l| l.verification.as_str().to_string())
                    .unwrap_or_else(|| "unverified".into()),
                permissions: f.login.as_ref().and_then(|l| l.permissions.clone()),
                effective: f
                    .login
                    .as_ref()
                    .and_then(|l| l.permissions.as_ref())
                    .map(|p| super::effective_access(p).describe()),
                login_detail: f.login.as_ref().map(|l| l.detail.clone()),
                fingerprint: f.fingerprint.clone(),
                problem: f.secret_problem.clone(),
                found_in: f.storage.plaintext_locations.clone(),
                storage: f.storage.clone(),
            }
        })
        .collect()
}
