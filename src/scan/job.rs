//! The scan job: what `awxguard scan` (and later the daemon) runs. A request says what to scan
//! (files, standard input, git history, the index) and what to do after (baseline, verification
//! by login, writing a baseline, recording in the store); the job returns the findings with
//! typed summary sections. Scanning is CPU work on blocking threads; verification is async.

use super::baseline::{self, Baseline, BaselineError, BaselineSummary};
use super::git::{scan_history, GitError, Selection};
use super::staged::{self, StagedDiff};
use super::verify::{self, Secrets, VerificationSummary, VerifyError};
use super::{Matcher, Problem, ScanOptions, ScanOutcome, ScanStats, DEFAULT_MAX_FILE_SIZE};
use crate::clock::Clock;
use crate::config::{Config, ScanConfig};
use crate::finding::Finding;
use crate::rules::leak::Validator;
use crate::rules::{LeakRules, RuleError, RuleInfo};
use crate::store::{RecordSummary, Recorded, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

/// What to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Files and directories.
    Paths(Vec<PathBuf>),
    /// Standard input, as one file named `<stdin>`.
    Stdin,
    /// The blobs of a repository's history.
    History { repo: PathBuf, selection: Selection },
    /// What is staged in a repository's index.
    Staged { repo: PathBuf },
}

/// A scan and what to do with its findings.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub input: Input,
    /// Scan ignored files too.
    pub no_ignore: bool,
    /// Do not follow symbolic links.
    pub no_follow: bool,
    /// Skip larger files (else `[scan] max_file_size`, else 25 MiB).
    pub max_file_size: Option<u64>,
    /// Extra leak rule directories, beyond `[scan] rules`.
    pub rules: Vec<PathBuf>,
    /// Rule ids to disable, beyond `[scan] disable`.
    pub disable: Vec<String>,
    /// Log in with each client-ID-plus-key pair found.
    pub verify: bool,
    /// Drop the findings this baseline file records.
    pub baseline: Option<PathBuf>,
    /// Record every finding of this scan in this baseline file.
    pub write_baseline: Option<PathBuf>,
    /// Record the findings in the store (never for staged and standard-input scans).
    pub record: bool,
}

impl ScanRequest {
    /// A request for `input` with every option at its default.
    pub fn new(input: Input) -> ScanRequest {
        ScanRequest {
            input,
            no_ignore: false,
            no_follow: false,
            max_file_size: None,
            rules: Vec::new(),
            disable: Vec::new(),
            verify: false,
            baseline: None,
            write_baseline: None,
            record: false,
        }
    }

    /// The store scope of the scan: what was scanned, so that only a later scan of the same
    /// target can resolve its findings (`scan:tree:/srv/app`, `scan:git:/srv/app`,
    /// `scan:git:/srv/app:main..HEAD`). `None` unless recording; staged and standard-input scans
    /// are transient and never recorded.
    pub fn record_scope(&self) -> Option<String> {
        if !self.record {
            return None;
        }
        let canonical = |p: &PathBuf| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        };
        match &self.input {
            Input::Stdin | Input::Staged { .. } => None,
            Input::Paths(paths) => Some(format!(
                "scan:tree:{}",
                paths.iter().map(canonical).collect::<Vec<_>>().join(",")
            )),
            Input::History { repo, selection } => Some(match selection {
                Selection::All => format!("scan:git:{}", canonical(repo)),
                Selection::Range(r) => format!("scan:git:{}:{r}", canonical(repo)),
            }),
        }
    }

    /// Whether the request can run without the async runtime (`run_local`): it verifies
    /// nothing.
    pub fn is_local(&self) -> bool {
        !self.verify
    }

    /// The scanner's options from the request and `[scan]`.
    pub fn options(&self, config: &ScanConfig) -> ScanOptions {
        ScanOptions {
            respect_ignore: !self.no_ignore,
            follow_symlinks: !self.no_follow && config.follow_symlinks.unwrap_or(true),
            max_file_size: self
                .max_file_size
                .or(config.max_file_size)
                .unwrap_or(DEFAULT_MAX_FILE_SIZE),
            keep_secrets: self.verify.then(Default::default),
        }
    }
}

/// Why a scan could not do its job (skipped files are not this: they are in the summary).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error("cannot scan {path}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read standard input")]
    Stdin(#[source] std::io::Error),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    #[error("cannot verify keys")]
    Verify(#[source] VerifyError),
    #[error("recording needs a store")]
    NoStore,
    #[error("cannot record the scan's findings")]
    Store(#[source] StoreError),
    #[error("the scan stopped: {0}")]
    Panicked(String),
    #[error("verification logs in over the network: run the scan with scan::job::run")]
    NeedsAsync,
}

/// The summary's `store` section of a recorded scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreSection {
    pub scope: String,
    pub record: RecordSummary,
}

/// What a scan found, with its typed summary sections.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// After the baseline and verification.
    pub findings: Vec<Finding>,
    /// The rules in force, as a report describes them.
    pub rules: Vec<RuleInfo>,
    pub stats: ScanStats,
    /// Inputs that could not be read; the scan went on without them.
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
    pub baseline: Option<BaselineSummary>,
    pub verification: Option<VerificationSummary>,
    pub store: Option<StoreSection>,
    /// What earlier scans of the same target found and this one did not.
    pub resolved: Vec<Finding>,
    /// The exit code the job decided (`--write-baseline`: 0 once written), over the findings'.
    pub exit: Option<u8>,
}

/// The matcher for the rules `[scan]` and the request put in force; `now` decides whether an
/// access token found has expired.
pub fn matcher(
    config: &ScanConfig,
    extra: &[PathBuf],
    disable: &[String],
    now: DateTime<Utc>,
) -> Result<Matcher, RuleError> {
    let mut dirs = config.rule_dirs.clone();
    dirs.extend_from_slice(extra);
    let mut off = config.disable.clone();
    off.extend_from_slice(disable);
    let rules = LeakRules::load(&dirs, &off)?;
    Ok(Matcher::new(rules, now.timestamp()))
}

/// The rules in force as the report describes them (SARIF rule metadata).
pub fn rule_infos(matcher: &Matcher) -> Vec<RuleInfo> {
    matcher
        .rules()
        .rules
        .iter()
        .map(|r| RuleInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            severity: r.severity,
        })
        .collect()
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ScanError> + Send + 'static,
) -> Result<T, ScanError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ScanError::Panicked(e.to_string()))?
}

/// `run` for a request that verifies nothing (`ScanRequest::is_local`: no network, nothing
/// async), on the calling thread: what the pre-commit hook runs, with no runtime and no thread
/// to start.
pub fn run_local(
    req: ScanRequest,
    config: &Config,
    clock: &dyn Clock,
    store: Option<Arc<dyn Store>>,
) -> Result<ScanReport, ScanError> {
    if !req.is_local() {
        return Err(ScanError::NeedsAsync);
    }
    let now = clock.now();
    let scope = req.record_scope();
    if scope.is_some() && store.is_none() {
        return Err(ScanError::NoStore);
    }
    let (report, _, _, all, previous, req) = scan_and_baseline(req, &config.scan, now)?;
    finish(report, &req, &all, previous.as_ref(), scope, store, now)
}

/// Scans as `req` says, then applies the baseline, verifies, writes the baseline and records,
/// in that order. `store` is needed when `req.record_scope()` is `Some`.
pub async fn run(
    req: ScanRequest,
    config: &Config,
    clock: &dyn Clock,
    store: Option<Arc<dyn Store>>,
) -> Result<ScanReport, ScanError> {
    let now = clock.now();
    let scope = req.record_scope();
    if scope.is_some() && store.is_none() {
        return Err(ScanError::NoStore);
    }
    let scan_config = config.scan.clone();
    let (mut report, secrets, key_rules, all, previous, req) =
        blocking(move || scan_and_baseline(req, &scan_config, now)).await?;
    if req.verify {
        let (section, notes) = verify::verify_findings(
            &mut report.findings,
            &secrets,
            &key_rules,
            &config.airwallex,
        )
        .await
        .map_err(ScanError::Verify)?;
        report.verification = Some(section);
        report.notes.extend(notes);
    }
    blocking(move || finish(report, &req, &all, previous.as_ref(), scope, store, now)).await
}

/// After the scan, baseline and verification: writes the baseline and records, in that order.
fn finish(
    mut report: ScanReport,
    req: &ScanRequest,
    all: &[Finding],
    previous: Option<&Baseline>,
    scope: Option<String>,
    store: Option<Arc<dyn Store>>,
    now: DateTime<Utc>,
) -> Result<ScanReport, ScanError> {
    if let Some(path) = &req.write_baseline {
        let b = Baseline::from_findings(
            all,
            previous,
            &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        b.write(path)?;
        report.notes.push(format!(
            "wrote baseline {} with {} entries; later scans with --baseline {} leave these \
             findings out",
            path.display(),
            b.entries.len(),
            path.display()
        ));
        report.exit = Some(0);
    }
    if let (Some(scope), Some(store)) = (scope, store) {
        record(store.as_ref(), &scope, &mut report, now)?;
    }
    Ok(report)
}

/// What the blocking first half hands to the rest: the report so far, the keys kept for
/// verification, the ids of rules that report API keys, every finding before the baseline, the
/// baseline read, and the request.
type Scanned = (
    ScanReport,
    Arc<Secrets>,
    BTreeSet<String>,
    Vec<Finding>,
    Option<Baseline>,
    ScanRequest,
);

fn scan_and_baseline(
    req: ScanRequest,
    config: &ScanConfig,
    now: DateTime<Utc>,
) -> Result<Scanned, ScanError> {
    // A staged scan's `git diff --cached` (most of a pre-commit hook's latency) starts first
    // and runs while the rules load.
    let staged = match &req.input {
        Input::Staged { repo } => Some(staged::start(repo)?),
        _ => None,
    };
    let matcher = matcher(config, &req.rules, &req.disable, now)?;
    let opts = req.options(config);
    let (outcome, note) = scan_input(&matcher, &req.input, staged, &opts)?;
    let mut report = ScanReport {
        rules: rule_infos(&matcher),
        stats: outcome.stats,
        problems: outcome.problems,
        notes: note.into_iter().collect(),
        ..ScanReport::default()
    };
    report.problems.sort_by(|a, b| a.path.cmp(&b.path));
    let key_rules: BTreeSet<String> = matcher
        .rules()
        .rules
        .iter()
        .filter(|r| r.validate == Some(Validator::AirwallexApiKey))
        .map(|r| r.id.clone())
        .collect();
    let all = outcome.findings;
    let previous = req.baseline.as_deref().map(Baseline::load).transpose()?;
    report.findings = match (&req.baseline, &previous) {
        (Some(path), Some(b)) => {
            let (kept, applied) = b.apply(all.clone());
            report.baseline = Some(baseline::summary_section(path, b, &applied));
            report.notes.extend(baseline::notes(path, &applied));
            kept
        }
        _ => all.clone(),
    };
    let secrets = opts.keep_secrets.unwrap_or_default();
    Ok((report, secrets, key_rules, all, previous, req))
}

/// Runs the scanner over the input (for the index, on the `git diff` started for it); for git
/// inputs, also a note saying what was covered.
fn scan_input(
    matcher: &Matcher,
    input: &Input,
    staged: Option<StagedDiff>,
    opts: &ScanOptions,
) -> Result<(ScanOutcome, Option<String>), ScanError> {
    let (outcome, what, repo) = match input {
        Input::Stdin => {
            let outcome = super::scan_reader(matcher, std::io::stdin().lock(), opts)
                .map_err(ScanError::Stdin)?;
            return Ok((outcome, None));
        }
        Input::Paths(paths) => {
            for p in paths {
                // A root that does not exist is a mistake in the command, not a skipped file.
                std::fs::symlink_metadata(p).map_err(|source| ScanError::Root {
                    path: p.clone(),
                    source,
                })?;
            }
            return Ok((super::scan_paths(matcher, paths, opts), None));
        }
        Input::History { repo, selection } => {
            let what = match selection {
                Selection::All => "every blob reachable from any ref or stash entry".to_string(),
                Selection::Range(r) => format!("the blobs introduced by {r}"),
            };
            (scan_history(matcher, repo, selection, opts)?, what, repo)
        }
        Input::Staged { repo } => {
            let outcome = match staged {
                Some(diff) => staged::scan_started(matcher, diff, opts)?,
                None => staged::scan_staged(matcher, repo, opts)?,
            };
            (outcome, "what is staged in the index".to_string(), repo)
        }
    };
    let mut outcome = outcome;
    // Git names paths from the top of the work tree.
    outcome.stats.root = super::walk::work_tree_of(repo).map(|t| t.to_string_lossy().into_owned());
    let mut note = format!("git: scanned {what} in {}", repo.display());
    if outcome.stats.unreadable > 0 {
        note.push_str(&format!(
            "; {} blobs are not in the repository (a partial clone?) and were not scanned: \
             fetch them or scan a full clone",
            outcome.stats.unreadable
        ));
    }
    Ok((outcome, Some(note)))
}

/// Records the scan's findings in the store: each finding gets its lifecycle status (`new`,
/// `open`, `acknowledged`), and what an earlier scan of the same target found and this one does
/// not is reported as resolved. The audit links recorded API-key leaks to inventory keys by
/// fingerprint.
fn record(
    store: &dyn Store,
    scope: &str,
    report: &mut ScanReport,
    now: DateTime<Utc>,
) -> Result<(), ScanError> {
    let Recorded {
        summary, resolved, ..
    } = store
        .record(scope, &mut report.findings, now)
        .map_err(ScanError::Store)?;
    for f in &resolved {
        report.notes.push(format!(
            "resolved since the last scan: {} {} ({})",
            f.rule,
            f.path.as_deref().unwrap_or("-"),
            f.id
        ));
    }
    report.store = Some(StoreSection {
        scope: scope.to_string(),
        record: summary,
    });
    report.resolved = resolved;
    Ok(())
}
