//! `[alerts]`: alerts by email with a durable outbox (issue 12). The section is accepted and has no fields
//! yet: the issue that builds it adds them here (raw form, validated form, `validate`), documents
//! them in `examples/awxguard.toml` and the README's config table. Unknown fields are errors.

use super::{ConfigProblem, Source};
use serde::Deserialize;

/// The `[alerts]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {}

/// The validated `[alerts]` section.
#[derive(Debug, Clone, Default)]
pub struct AlertsConfig {}

/// Validates `[alerts]`.
pub(super) fn validate(
    _src: &Source<'_>,
    _raw: &RawAlerts,
    _problems: &mut Vec<ConfigProblem>,
) -> AlertsConfig {
    AlertsConfig {}
}
