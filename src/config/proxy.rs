//! `[proxy]`: the recording and enforcing proxy (issue 10). The section is accepted and has no fields
//! yet: the issue that builds it adds them here (raw form, validated form, `validate`), documents
//! them in `examples/awxguard.toml` and the README's config table. Unknown fields are errors.

use super::{ConfigProblem, Source};
use serde::Deserialize;

/// The `[proxy]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {}

/// The validated `[proxy]` section.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {}

/// Validates `[proxy]`.
pub(super) fn validate(
    _src: &Source<'_>,
    _raw: &RawProxy,
    _problems: &mut Vec<ConfigProblem>,
) -> ProxyConfig {
    ProxyConfig {}
}
