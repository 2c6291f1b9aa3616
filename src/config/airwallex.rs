//! `[airwallex]`: how to reach Airwallex. The validated form, `AirwallexConfig`, lives beside the
//! client in `airwallex::settings`; this file reads and checks it.

use super::{ConfigProblem, Source};
pub use crate::airwallex::AirwallexConfig;
use serde::Deserialize;
use toml::Spanned;

/// The `[airwallex]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAirwallex {
    pub base_url: Option<Spanned<String>>,
    /// Extra hosts (`host` or `host:port`) a key may be sent to over HTTPS.
    #[serde(default)]
    pub allow_hosts: Vec<Spanned<String>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub retries: Option<Spanned<u32>>,
    pub retry_base_ms: Option<Spanned<u64>>,
}

/// Validates `[airwallex]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawAirwallex,
    problems: &mut Vec<ConfigProblem>,
) -> AirwallexConfig {
    let mut airwallex = AirwallexConfig::default();
    if let Some(u) = &raw.base_url {
        let s = u.get_ref().trim_end_matches('/').to_string();
        if !(s.starts_with("https://") || s.starts_with("http://")) {
            problems.push(src.problem(
                u.span(),
                "airwallex.base_url",
                format!("{s:?} is not an http(s) URL; e.g. https://api.airwallex.com"),
            ));
        }
        airwallex.base_url = Some(s);
    }
    for h in &raw.allow_hosts {
        let host = h.get_ref().trim().to_ascii_lowercase();
        let bare = !host.is_empty()
            && !host.contains("://")
            && !host.contains('/')
            && !host.contains(char::is_whitespace);
        if !bare {
            problems.push(src.problem(
                h.span(),
                "airwallex.allow_hosts",
                format!(
                    "{:?} is not a host name; give the host alone (or host:port), e.g. \
                     \"airwallex-gw.internal.example\"",
                    h.get_ref()
                ),
            ));
        }
        airwallex.allow_hosts.push(host);
    }
    // Bounded: a run must end. At most 10 minutes a request, 10 retries, a minute of base
    // backoff.
    let mut bounded = |field: &str, span: std::ops::Range<usize>, v: u64, lo: u64, hi: u64| {
        if !(lo..=hi).contains(&v) {
            problems.push(src.problem(span, field, format!("{v} is out of range: {lo} to {hi}")));
        }
        v.clamp(lo, hi)
    };
    if let Some(t) = &raw.timeout_ms {
        airwallex.timeout_ms = bounded("airwallex.timeout_ms", t.span(), *t.get_ref(), 1, 600_000);
    }
    if let Some(r) = &raw.retries {
        airwallex.retries = bounded(
            "airwallex.retries",
            r.span(),
            u64::from(*r.get_ref()),
            0,
            10,
        ) as u32;
    }
    if let Some(b) = &raw.retry_base_ms {
        airwallex.retry_base_ms =
            bounded("airwallex.retry_base_ms", b.span(), *b.get_ref(), 0, 60_000);
    }
    airwallex
}
