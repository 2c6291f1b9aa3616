//! Rules are data: the TOML files under `rules/` are embedded in the binary, users add their own
//! from a directory and disable built-ins by id, and every rule carries examples that
//! `awxguard rules check` runs.

pub mod detector;
pub mod leak;

pub use leak::{LeakRule, LeakRules, Pattern, RuleExample};

/// A rule as a report describes it (SARIF rule metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub severity: crate::finding::Severity,
}

use std::path::{Path, PathBuf};

/// The built-in leak rule files, embedded at build time.
pub const BUILTIN_LEAK_RULES: &[(&str, &str)] = &[(
    "rules/leak/airwallex.toml",
    include_str!("../../rules/leak/airwallex.toml"),
)];

/// The built-in privilege rule files, embedded at build time.
pub const BUILTIN_PRIVILEGE_RULES: &[(&str, &str)] = &[
    (
        "rules/privilege/access.toml",
        include_str!("../../rules/privilege/access.toml"),
    ),
    (
        "rules/privilege/hygiene.toml",
        include_str!("../../rules/privilege/hygiene.toml"),
    ),
    (
        "rules/privilege/evidence.toml",
        include_str!("../../rules/privilege/evidence.toml"),
    ),
];

/// Why a rule file could not be used. Each message names the file and, where TOML can tell, the
/// line and the field.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{path}: cannot read rule file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A rule file that is not a regular file, is too large, or cannot be read.
    #[error("{0}")]
    File(String),
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: rule {id}: {message}")]
    Invalid {
        path: PathBuf,
        id: String,
        message: String,
    },
    #[error("rule id {id} is defined twice ({first} and {second}); rule ids are never reused")]
    Duplicate {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("cannot disable rule {id}: no such rule (known: {known})")]
    UnknownDisabled { id: String, known: String },
}

/// 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Turns a TOML deserialization error into a `file:line: message` error.
pub fn toml_error(path: &Path, text: &str, err: toml::de::Error) -> RuleError {
    let line = err.span().map(|s| line_of(text, s.start)).unwrap_or(1);
    RuleError::Parse {
        path: path.to_path_buf(),
        line,
        message: err.message().trim().to_string(),
    }
}

/// The `.toml` files in a directory, sorted by name so rule order never depends on the file
/// system.
pub fn toml_files_in(dir: &Path) -> Result<Vec<PathBuf>, RuleError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RuleError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    Ok(out)
}

/// The rule files named in `extra` (a file, or every `.toml` of a directory) with their text.
pub fn read_rule_files(extra: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, RuleError> {
    let mut out = Vec::new();
    for dir in extra {
        let files = if dir.is_file() {
            vec![dir.clone()]
        } else {
            toml_files_in(dir)?
        };
        for path in files {
            let text =
                crate::files::read_text_capped(&path, crate::files::cap::RULE_FILE, "rule files")
                    .map_err(|e| RuleError::File(e.to_string()))?;
            out.push((path, text));
        }
    }
    Ok(out)
}

/// Rule ids are never reused: fails on an id defined twice, else returns where each id came
/// from.
pub fn unique_ids<'a>(
    rules: impl IntoIterator<Item = (&'a str, &'a Path)>,
) -> Result<std::collections::HashMap<String, PathBuf>, RuleError> {
    let mut seen = std::collections::HashMap::new();
    for (id, source) in rules {
        if let Some(first) = seen.insert(id.to_string(), source.to_path_buf()) {
            return Err(RuleError::Duplicate {
                id: id.to_string(),
                first,
                second: source.to_path_buf(),
            });
        }
    }
    Ok(seen)
}

/// The `{placeholder}` names of a finding-text template (every rule family's templates).
pub fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}'))
        .map(|(p, _)| p)
}

/// A rule id's family prefix aside, its words are non-empty lower-case ASCII, digits and `-`,
/// separated by dots (`watch.new-payee-paid`).
pub fn id_words_valid(id: &str) -> bool {
    id.split('.').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}
