//! Leak scanning: inputs (working trees, standard input, git blobs, the index) go through one
//! matcher and come out as findings; `job` is the whole scan with its post-processing.

pub mod examples;
pub mod git;
pub mod hook;
pub mod job;
pub mod matcher;
pub mod staged;
pub mod text;
pub mod walk;

// After the scan: baselines and verification by login (`scan --baseline`, `--verify`).
pub mod baseline;
pub mod verify;

pub use matcher::{Match, Matcher};
pub use text::{is_binary, text_of};
pub use walk::Problem;

use crate::finding::{Action, Commit, Finding, Recommendation, SecretRef};
use crate::secret::{fingerprint, preview};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Files larger than this are skipped (and counted) unless `--max-file-size` says otherwise.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 25 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub respect_ignore: bool,
    pub follow_symlinks: bool,
    pub max_file_size: u64,
    /// Where to keep each API key found (in memory only, wrapped in `Secret`) with the client
    /// IDs found next to it, for `--verify`. `None` unless verification asks for it.
    pub keep_secrets: Option<std::sync::Arc<verify::Secrets>>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            respect_ignore: true,
            follow_symlinks: true,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            keep_secrets: None,
        }
    }
}

/// What a scan covered and what it left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScanStats {
    pub files: u64,
    pub bytes: u64,
    pub skipped_ignored: u64,
    pub skipped_binary: u64,
    pub skipped_too_large: u64,
    pub unreadable: u64,
    pub elapsed_ms: u64,
    /// The directory findings' paths are relative to (the top of the git work tree scanned, else
    /// the current directory); none for standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// The result of a scan: findings (unsorted), what was covered, what went wrong.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    pub findings: Vec<Finding>,
    pub stats: ScanStats,
    pub problems: Vec<Problem>,
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scans files and directories in parallel.
pub fn scan_paths(matcher: &Matcher, roots: &[PathBuf], opts: &ScanOptions) -> ScanOutcome {
    let started = Instant::now();
    let counts = walk::WalkCounts::default();
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let binary = AtomicU64::new(0);
    let too_large = AtomicU64::new(0);
    let findings = Mutex::new(Vec::new());
    let keep = opts.keep_secrets.as_deref();
    let walk_opts = walk::WalkOptions {
        respect_ignore: opts.respect_ignore,
        follow_symlinks: opts.follow_symlinks,
    };
    let visit = |entry: walk::FileEntry<'_>| {
        BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            // Opened only if it is still a regular file (a FIFO or device swapped in since the
            // listing is refused on the open descriptor, never read); its size comes from that
            // descriptor, so a file over the limit is skipped unread.
            let read = crate::files::open_listed_regular(entry.path)
                .map_err(|e| match e {
                    crate::files::FileError::NotRegular { kind, .. } => {
                        format!("is {kind}, not a regular file; not read")
                    }
                    e if e.kind() == std::io::ErrorKind::NotFound => {
                        "vanished during the scan".to_string()
                    }
                    crate::files::FileError::Io { source, .. } => source.to_string(),
                    e => e.to_string(),
                })
                .and_then(|(f, meta)| {
                    if meta.len() > opts.max_file_size {
                        return Ok(false);
                    }
                    // Read at most one byte past the limit: a file that grew since its metadata
                    // was read is still held to the limit.
                    f.take(opts.max_file_size + 1)
                        .read_to_end(&mut buf)
                        .map(|_| true)
                        .map_err(|e| e.to_string())
                });
            match read {
                Err(what) => {
                    counts.problem(entry.display, what);
                    return;
                }
                Ok(false) => {
                    too_large.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(true) => {}
            }
            if buf.len() as u64 > opts.max_file_size {
                too_large.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // UTF-16 text is decoded; other data with NUL bytes is binary.
            let Some(text) = text_of(&buf) else {
                binary.fetch_add(1, Ordering::Relaxed);
                return;
            };
            files.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            let matches = matcher.scan(entry.context(), &text);
            let found =
                findings_from_matches(matcher, &matches, &entry.display, None, keep, |_, _| true);
            if !found.is_empty() {
                findings.lock().expect("findings poisoned").extend(found);
            }
        });
    };
    let roots = walk::distinct_roots(roots);
    let base = walk::base_of(&roots);
    walk::walk(&roots, &base, &walk_opts, &counts, &visit);
    let problems = counts.problems.into_inner().expect("problems poisoned");
    ScanOutcome {
        findings: findings.into_inner().expect("findings poisoned"),
        stats: ScanStats {
            files: files.into_inner(),
            bytes: bytes.into_inner(),
            skipped_ignored: counts.ignored.into_inner(),
            skipped_binary: binary.into_inner(),
            skipped_too_large: too_large.into_inner(),
            unreadable: problems.len() as u64,
            elapsed_ms: started.elapsed().as_millis() as u64,
            root: Some(base.to_string_lossy().into_owned()),
        },
        problems,
    }
}

/// Scans standard input as one file named `<stdin>`.
pub fn scan_reader(
    matcher: &Matcher,
    mut input: impl Read,
    opts: &ScanOptions,
) -> std::io::Result<ScanOutcome> {
    let started = Instant::now();
    let mut buf = Vec::new();
    (&mut input)
        .take(opts.max_file_size + 1)
        .read_to_end(&mut buf)?;
    let mut outcome = ScanOutcome::default();
    if buf.len() as u64 > opts.max_file_size {
        outcome.stats.skipped_too_large = 1;
    } else if let Some(text) = text_of(&buf) {
        outcome.stats.files = 1;
        outcome.stats.bytes = buf.len() as u64;
        let keep = opts.keep_secrets.as_deref();
        outcome.findings = scan_bytes_keeping(matcher, "<stdin>", &text, None, keep);
    } else {
        outcome.stats.skipped_binary = 1;
    }
    outcome.stats.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(outcome)
}

/// Scans one buffer and turns its matches into findings, also handing each API key (with the
/// client ID found next to it) to `secrets` when given, for `--verify`.
pub fn scan_bytes_keeping(
    matcher: &Matcher,
    path: &str,
    data: &[u8],
    commit: Option<&Commit>,
    secrets: Option<&verify::Secrets>,
) -> Vec<Finding> {
    let matches = matcher.scan(path, data);
    findings_from_matches(matcher, &matches, path, commit, secrets, |_, _| true)
}

/// Findings for the matches of one input at `path`, numbering repeats of a secret in it (so each
/// occurrence keeps its own stable id); `keep(match, fingerprint)` filters which are reported.
/// Reported API keys go to `secrets` (for `--verify`) when given.
pub fn findings_from_matches(
    matcher: &Matcher,
    matches: &[Match],
    path: &str,
    commit: Option<&Commit>,
    secrets: Option<&verify::Secrets>,
    keep: impl Fn(&Match, &str) -> bool,
) -> Vec<Finding> {
    let mut seen: HashMap<(usize, String), usize> = HashMap::new();
    let mut out = Vec::new();
    for m in matches {
        let fp = fingerprint(m.secret.as_bytes());
        // A secret found is a secret held: the gate redacts any window of it from now on.
        crate::redact::hold(&m.secret);
        let n = seen.entry((m.rule, fp.clone())).or_insert(0);
        *n += 1;
        if keep(m, &fp) {
            if let Some(s) = secrets {
                s.keep(matcher.rule(m.rule), &fp, m);
            }
            out.push(finding_from_match(
                matcher,
                m,
                &fp,
                path,
                *n,
                commit.cloned(),
            ));
        }
    }
    out
}

/// The finding for one match. `occurrence` counts repeats of the same secret in the same file
/// (from 1), so each occurrence keeps its own stable id.
pub fn finding_from_match(
    matcher: &Matcher,
    m: &Match,
    fp: &str,
    path: &str,
    occurrence: usize,
    commit: Option<Commit>,
) -> Finding {
    let rule = matcher.rule(m.rule);
    let occ = occurrence.to_string();
    let subject: Vec<&str> = if occurrence > 1 {
        vec![path, fp, &occ]
    } else {
        vec![path, fp]
    };
    let mut message = format!("{} in {path}", rule.name);
    if let Some(note) = &m.note {
        message.push_str(&format!(" ({note})"));
    }
    let mut f = Finding::new(&rule.id, m.severity, message, &subject);
    f.path = Some(path.to_string());
    f.line = Some(m.line);
    f.column = Some(m.column);
    f.commit = commit;
    f.secret = Some(SecretRef {
        preview: preview(&m.secret),
        fingerprint: fp.to_string(),
        client_id: m.client_id.as_deref().map(preview),
    });
    f.evidence = Some(serde_json::json!({ "detector": m.pattern }));
    f.recommendation = Some(leak_recommendation(&rule.id));
    f
}

/// What to do about a leaked credential.
pub fn leak_recommendation(rule: &str) -> Recommendation {
    let steps = if rule == "leak.airwallex.access-token" {
        vec![
            "Treat the key that obtained this token as exposed: find it by the token's account and \
             regenerate it in the Airwallex web app (Settings > Developer > API keys)."
                .to_string(),
            "Stop logging or storing access tokens; they act as the key for 30 minutes.".into(),
            "Check money movement (transfers, beneficiaries, webhooks) since the token was issued."
                .into(),
        ]
    } else {
        vec![
            "Revoke or regenerate this key now in the Airwallex web app: Settings > Developer > \
             API keys (regenerating kills the old key at once)."
                .to_string(),
            "Put the new key where the integration reads it, from a secret store, not a file \
             in a repository."
                .into(),
            "Check money movement since the leak: transfers, new beneficiaries and webhook URLs \
             created since the key was exposed (`awxguard watch` with a read-only key)."
                .into(),
            "Delete the key from this file; if it was committed, history still holds it, so \
             rotating is the fix and rewriting history only tidies up."
                .into(),
        ]
    };
    Recommendation {
        action: Action::Revoke,
        steps,
        replacement: None,
    }
}
