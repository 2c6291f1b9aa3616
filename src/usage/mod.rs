//! Usage evidence: which key called which route, when, from where, with what status. Read from
//! JSON Lines files in the usage-event contract format (and later recorded by a proxy and
//! watched for anomalies): one reader, `ingest`, for every source.

pub mod detect;
pub mod evidence;
pub mod ingest;
pub mod job;
mod pipeline;
pub mod reader;
pub mod screen;
pub mod stored;

pub use evidence::{Evidence, KeyUsage, RouteUsage, SourceSpan};
pub use screen::{AnomalyWindow, Screen, Screened};

/// Why usage evidence could not be read at all (a bad line is not this: it is counted in
/// `Evidence::rejected` and reported, and the rest is kept).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{path}: cannot read usage events: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Reads usage events (JSON Lines files, directories of them, or `-` for standard input) and
/// aggregates them per key, mapping each request to its route and scope with `catalog`.
/// Directories give every `*.jsonl`, `*.ndjson`, `*.json` and `*.log` file below them.
pub fn read_evidence(
    paths: &[std::path::PathBuf],
    catalog: &crate::airwallex::Catalog,
) -> Result<Evidence, UsageError> {
    ingest::read(paths, catalog)
}

/// `read_evidence` with the calls `screen` says are not evidence of need kept aside
/// (`Evidence::screened`), and events dated after `not_after` (now plus `[usage]
/// max_future`) rejected; each path becomes an input id in `Evidence::inputs`.
pub fn read_screened_evidence(
    paths: &[std::path::PathBuf],
    catalog: &crate::airwallex::Catalog,
    screen: &Screen,
    not_after: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Evidence, UsageError> {
    let mut ev = ingest::read_screened_until(paths, catalog, Some(screen), not_after)?;
    ev.inputs = paths
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                "usage:<stdin>".to_string()
            } else {
                format!(
                    "usage:{}",
                    std::fs::canonicalize(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                )
            }
        })
        .collect();
    Ok(ev)
}
