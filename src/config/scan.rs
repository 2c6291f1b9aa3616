//! `[scan]`: extra leak rules, disabled rule ids, file size limit, symbolic links. Scans read
//! only this section.

use super::{ConfigProblem, Source};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// The `[scan]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScan {
    /// Extra rule directories (or files), relative to the config file.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Built-in rule ids to disable.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
    /// Skip files larger than this many bytes.
    pub max_file_size: Option<Spanned<u64>>,
    pub follow_symlinks: Option<bool>,
}

/// Settings of the scanner.
#[derive(Debug, Clone, Default)]
pub struct ScanConfig {
    pub rule_dirs: Vec<PathBuf>,
    pub disable: Vec<String>,
    pub max_file_size: Option<u64>,
    pub follow_symlinks: Option<bool>,
}

/// Validates `[scan]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawScan,
    problems: &mut Vec<ConfigProblem>,
) -> ScanConfig {
    let mut scan = ScanConfig::default();
    for r in &raw.rules {
        let p = src.base().join(r.get_ref());
        if !p.exists() {
            problems.push(src.problem(
                r.span(),
                "scan.rules",
                format!(
                    "rule directory {} does not exist; give a directory of .toml rule files",
                    p.display()
                ),
            ));
        }
        scan.rule_dirs.push(p);
    }
    scan.disable = raw.disable.iter().map(|d| d.get_ref().clone()).collect();
    if let Some(m) = &raw.max_file_size {
        if *m.get_ref() == 0 {
            problems.push(src.problem(
                m.span(),
                "scan.max_file_size",
                "must be a positive number of bytes, e.g. 26214400 for 25 MiB".into(),
            ));
        }
        scan.max_file_size = Some(*m.get_ref());
    }
    scan.follow_symlinks = raw.follow_symlinks;
    scan
}
