//! Usage evidence: which key called which route, when, from where, with what status. Read from
//! JSON Lines files in the usage-event contract format (and later recorded by a proxy and
//! watched for anomalies).

pub mod evidence;

pub use evidence::{Evidence, KeyUsage, RouteUsage, SourceSpan};

// INTERFACE PLACEHOLDER (lead): the usage engineer replaces this with the real reader.

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
pub fn read_evidence(
    _paths: &[std::path::PathBuf],
    _catalog: &crate::privilege::Catalog,
) -> Result<Evidence, UsageError> {
    Ok(Evidence::default())
}
