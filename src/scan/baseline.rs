//! Baselines: findings a team has judged, recorded so they do not come back on every run.
//! Entries are keyed on rule, secret fingerprint and path (never line or commit), so they survive
//! line shifts, rebases and squashes; an entry that matches nothing is reported as stale so
//! suppressions do not rot. The file never holds a secret, only its fingerprint.

use crate::finding::Finding;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The baseline file format version this build reads and writes.
pub const VERSION: u32 = 1;

/// Why a baseline could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{path}: cannot read baseline: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: not an awxguard baseline: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}: baseline version {found} is not supported; this awxguard reads version {VERSION} \
         (write a new one with `awxguard scan --write-baseline`)"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: cannot write baseline: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One judged finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub rule: String,
    /// The secret's fingerprint (`sha256:...`), or for findings without a secret their id.
    pub fingerprint: String,
    /// The path as findings report it (relative to the scanned root or repository).
    pub path: String,
    /// Why the finding was accepted (free text, kept across `--write-baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the entry was first written (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<String>,
}

impl Entry {
    fn key(&self) -> (&str, &str, &str) {
        (&self.rule, &self.fingerprint, &self.path)
    }
}

/// The baseline file: `{"version": 1, "tool": "awxguard", "entries": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub version: u32,
    pub tool: String,
    pub entries: Vec<Entry>,
}

/// The key a finding is matched on: (rule, fingerprint, path).
pub fn finding_key(f: &Finding) -> (String, String, String) {
    (
        f.rule.clone(),
        f.secret
            .as_ref()
            .map(|s| s.fingerprint.clone())
            .unwrap_or_else(|| f.id.clone()),
        f.path.clone().unwrap_or_default(),
    )
}

/// What applying a baseline did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Findings the baseline dropped.
    pub suppressed: usize,
    /// Entries that matched no finding.
    pub stale: Vec<Entry>,
}

impl Baseline {
    /// A baseline of `findings` (one entry per rule, fingerprint and path). Entries of
    /// `previous` that still match keep their `reason` and `added`; new ones get `added = now`.
    pub fn from_findings(findings: &[Finding], previous: Option<&Baseline>, now: &str) -> Self {
        let keys: BTreeSet<(String, String, String)> = findings.iter().map(finding_key).collect();
        let entries = keys
            .into_iter()
            .map(|(rule, fingerprint, path)| {
                let old = previous.and_then(|b| {
                    b.entries
                        .iter()
                        .find(|e| e.key() == (rule.as_str(), fingerprint.as_str(), path.as_str()))
                });
                Entry {
                    reason: old.and_then(|e| e.reason.clone()),
                    added: Some(
                        old.and_then(|e| e.added.clone())
                            .unwrap_or_else(|| now.to_string()),
                    ),
                    rule,
                    fingerprint,
                    path,
                }
            })
            .collect();
        Baseline {
            version: VERSION,
            tool: "awxguard".into(),
            entries,
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Baseline, BaselineError> {
        // Check the version first, so a future format gets a version message, not a shape one.
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            if let Some(found) = v.get("version").and_then(Value::as_u64) {
                if found != u64::from(VERSION) {
                    return Err(BaselineError::Version {
                        path: path.to_path_buf(),
                        found: found as u32,
                    });
                }
            }
        }
        serde_json::from_str(text).map_err(|e| BaselineError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let text = crate::files::read_text_capped(path, crate::files::cap::BASELINE, "baselines")
            .map_err(|e| match e {
            crate::files::FileError::Io { source, .. } => BaselineError::Read {
                path: path.to_path_buf(),
                source,
            },
            e => BaselineError::Read {
                path: path.to_path_buf(),
                source: e.into_io(),
            },
        })?;
        Baseline::parse(path, &text)
    }

    /// Writes the baseline as pretty JSON (stable order, so it diffs well in review).
    pub fn write(&self, path: &Path) -> Result<(), BaselineError> {
        let mut text = serde_json::to_string_pretty(self).expect("baseline serializes");
        text.push('\n');
        // Temporary file beside it, fsync, rename: a failure part-way leaves the old baseline.
        crate::files::write_atomic(path, text.as_bytes(), 0o600).map_err(|e| BaselineError::Write {
            path: path.to_path_buf(),
            source: e.into_io(),
        })
    }

    /// Drops the findings this baseline records and reports the entries that matched nothing.
    /// A function over findings, so it applies unchanged to working-tree, staged and history
    /// scans: one entry covers every occurrence of a secret in a path, in any commit.
    pub fn apply(&self, findings: Vec<Finding>) -> (Vec<Finding>, Applied) {
        let mut used = vec![false; self.entries.len()];
        let mut kept = Vec::new();
        let mut applied = Applied::default();
        for f in findings {
            let (rule, fp, path) = finding_key(&f);
            let hit = self
                .entries
                .iter()
                .position(|e| e.key() == (rule.as_str(), fp.as_str(), path.as_str()));
            match hit {
                Some(i) => {
                    used[i] = true;
                    applied.suppressed += 1;
                }
                None => kept.push(f),
            }
        }
        applied.stale = self
            .entries
            .iter()
            .zip(used)
            .filter(|(_, u)| !u)
            .map(|(e, _)| e.clone())
            .collect();
        (kept, applied)
    }
}

/// The summary's `baseline` section.
pub fn summary_section(path: &Path, baseline: &Baseline, applied: &Applied) -> BaselineSummary {
    BaselineSummary {
        file: path.display().to_string(),
        entries: baseline.entries.len(),
        suppressed: applied.suppressed,
        stale: applied.stale.clone(),
    }
}

/// The summary's `baseline` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineSummary {
    pub file: String,
    pub entries: usize,
    pub suppressed: usize,
    /// Entries that matched nothing.
    pub stale: Vec<Entry>,
}

/// The notes a person reads under the human report.
pub fn notes(path: &Path, applied: &Applied) -> Vec<String> {
    let mut out = vec![format!(
        "baseline {}: {} findings suppressed, {} stale entries",
        path.display(),
        applied.suppressed,
        applied.stale.len()
    )];
    for e in &applied.stale {
        out.push(format!(
            "stale baseline entry (matches nothing; remove it): {} {} in {}",
            e.rule, e.fingerprint, e.path
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{SecretRef, Severity};

    fn finding(path: &str, fp: &str, line: u64) -> Finding {
        let mut f = Finding::new("leak.airwallex.api-key", Severity::High, "m", &[path, fp]);
        f.path = Some(path.into());
        f.line = Some(line);
        f.secret = Some(SecretRef {
            preview: "aaaa…bbbb".into(),
            fingerprint: fp.into(),
            client_id: None,
        });
        f
    }

    #[test]
    fn entries_ignore_lines_and_report_stale() {
        let b = Baseline::from_findings(&[finding("a", "sha256:1", 3)], None, "t");
        let (kept, applied) = b.apply(vec![
            finding("a", "sha256:1", 40),
            finding("b", "sha256:2", 1),
        ]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].path.as_deref(), Some("b"));
        assert_eq!(applied.suppressed, 1);
        assert!(applied.stale.is_empty());
        let (_, applied) = b.apply(vec![finding("renamed", "sha256:1", 3)]);
        assert_eq!(applied.stale.len(), 1);
    }

    #[test]
    fn rewriting_keeps_reasons_and_dates() {
        let mut b = Baseline::from_findings(&[finding("a", "sha256:1", 3)], None, "t1");
        b.entries[0].reason = Some("revoked 2026-11-01".into());
        let b2 = Baseline::from_findings(
            &[finding("a", "sha256:1", 9), finding("c", "sha256:3", 1)],
            Some(&b),
            "t2",
        );
        assert_eq!(b2.entries[0].reason.as_deref(), Some("revoked 2026-11-01"));
        assert_eq!(b2.entries[0].added.as_deref(), Some("t1"));
        assert_eq!(b2.entries[1].added.as_deref(), Some("t2"));
    }

    #[test]
    fn other_versions_are_refused_with_a_clear_message() {
        let e = Baseline::parse(
            Path::new("b.json"),
            r#"{"version": 2, "tool": "awxguard", "entries": []}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("version 2 is not supported"), "{e}");
        let e = Baseline::parse(Path::new("b.json"), "[]").unwrap_err();
        assert!(e.to_string().starts_with("b.json:1:"), "{e}");
    }
}
