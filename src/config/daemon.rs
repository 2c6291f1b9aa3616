//! `[daemon]`: the daemon (issue 13): schedules, lifecycle. The section is accepted and has no fields
//! yet: the issue that builds it adds them here (raw form, validated form, `validate`), documents
//! them in `examples/awxguard.toml` and the README's config table. Unknown fields are errors.

use super::{ConfigProblem, Source};
use serde::Deserialize;

/// The `[daemon]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {}

/// The validated `[daemon]` section.
#[derive(Debug, Clone, Default)]
pub struct DaemonConfig {}

/// Validates `[daemon]`.
pub(super) fn validate(
    _src: &Source<'_>,
    _raw: &RawDaemon,
    _problems: &mut Vec<ConfigProblem>,
) -> DaemonConfig {
    DaemonConfig {}
}
