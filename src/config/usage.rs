//! `[usage]`: usage monitoring (issue 9): the evidence store, its sources and the anomaly
//! detectors. Issue 9 adds its fields here (raw form, validated form, `validate`), documents
//! them in `examples/awxguard.toml` and the README's config table. Unknown fields are errors.
//! `max_clock_skew` (issue 17): how far in the future an event may be dated.

use super::{ConfigProblem, Source};
use serde::Deserialize;

/// The `[usage]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsage {
    /// How far past now an event's `ts` may be before it is rejected (`5m`, `1h`).
    pub max_clock_skew: Option<toml::Spanned<String>>,
}

/// The validated `[usage]` section.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// Events dated more than this after now are rejected (default 5 minutes).
    pub max_clock_skew: chrono::Duration,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            max_clock_skew: chrono::Duration::minutes(5),
        }
    }
}

/// Validates `[usage]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawUsage,
    problems: &mut Vec<ConfigProblem>,
) -> UsageConfig {
    let mut out = UsageConfig::default();
    if let Some(s) = &raw.max_clock_skew {
        match super::parse_duration(s.get_ref()) {
            Ok(d) if d <= std::time::Duration::from_secs(7 * 86_400) => {
                out.max_clock_skew = chrono::Duration::from_std(d).unwrap_or(out.max_clock_skew);
            }
            Ok(_) => problems.push(src.problem(
                s.span(),
                "usage.max_clock_skew",
                format!(
                    "{:?} is more than 7 days; clocks are not that far apart",
                    s.get_ref()
                ),
            )),
            Err(e) => problems.push(src.problem(s.span(), "usage.max_clock_skew", e)),
        }
    }
    out
}
