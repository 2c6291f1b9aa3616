//! `[usage]`: usage monitoring (issue 9): the evidence store, its sources and the anomaly detectors. The section is accepted and has no fields
//! yet: the issue that builds it adds them here (raw form, validated form, `validate`), documents
//! them in `examples/awxguard.toml` and the README's config table. Unknown fields are errors.

use super::{ConfigProblem, Source};
use serde::Deserialize;

/// The `[usage]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsage {}

/// The validated `[usage]` section.
#[derive(Debug, Clone, Default)]
pub struct UsageConfig {}

/// Validates `[usage]`.
pub(super) fn validate(
    _src: &Source<'_>,
    _raw: &RawUsage,
    _problems: &mut Vec<ConfigProblem>,
) -> UsageConfig {
    UsageConfig {}
}
