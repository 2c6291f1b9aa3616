//! `[watch]`: the money-movement watch (issue 11). The section is accepted and has no fields
//! yet: the issue that builds it adds them here (raw form, validated form, `validate`), documents
//! them in `examples/awxguard.toml` and the README's config table. Unknown fields are errors.

use super::{ConfigProblem, Source};
use serde::Deserialize;

/// The `[watch]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {}

/// The validated `[watch]` section.
#[derive(Debug, Clone, Default)]
pub struct WatchConfig {}

/// Validates `[watch]`.
pub(super) fn validate(
    _src: &Source<'_>,
    _raw: &RawWatch,
    _problems: &mut Vec<ConfigProblem>,
) -> WatchConfig {
    WatchConfig {}
}
