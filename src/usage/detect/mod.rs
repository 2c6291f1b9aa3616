//! Anomaly detection over usage series: a pure, synchronous function of the events, in event
//! time. The same events give the same anomalies whether they arrived at once, in daily pieces
//! or shuffled, because every detector reads only order-free aggregates ([`Series`]) and judges
//! each hour against history strictly before it.
//!
//! Detectors are data (`rules/anomaly/*.toml`, [`AnomalyRules`]); each produces [`Signal`]s;
//! signals of one key whose windows touch are folded into one finding ([`fold`]).
//!
//! Method, in short (details in `rate.rs` and `novelty.rs`):
//! - rates (calls, the busiest 5 minutes of each hour, writes, refusals): each hour is compared
//!   with the larger of the same hour of the week over up to `lookback_weeks` previous weeks and
//!   the same hour of the day over the previous week (medians), with a count-aware tail test
//!   (negative binomial whose over-dispersion is learnt from the key's own residuals), a
//!   "record by a margin" test for tails heavier than the model, a minimum ratio and a minimum
//!   excess so sparse keys are not noisy, and hysteresis (a strong hour, or `persist_hours` weak
//!   hours in a row, opens a run; weak hours extend it). Until a key has `seasonal_weeks` of
//!   history it is *learning*: only a multiple of its busiest hour so far is flagged.
//! - novelty (network, user agent, route, hour of week, dormancy): first appearances after the
//!   key's learning period, silent for keys whose values keep changing anyway.
//! - rule-like checks (outside the IP whitelist, undeclared scope): at once, no learning.

pub mod examples;
pub mod fold;
pub mod novelty;
pub mod rate;
pub mod rules;
pub mod series;
pub mod stats;
pub mod synth;
pub mod usage_checks;

#[cfg(test)]
mod tests;

pub use rules::{AnomalyExample, AnomalyRule, AnomalyRules};
pub use series::{
    classify, Access, AttrKind, AttrStats, Event, EventRef, HourBucket, KeySeries, Series,
};

use crate::finding::{Action, Finding, Severity};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A key as declared in config, for the rule-like checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyDecl {
    pub name: String,
    pub fingerprint: Option<String>,
    /// Declared whitelist; empty: none declared (nothing to check against).
    pub ip_whitelist: Vec<ipnet::IpNet>,
    /// Declared scopes; `None`: every scope (admin and read-write keys).
    pub scopes: Option<BTreeSet<String>>,
    /// Route templates the declared scopes allow (a write scope often allows its resource's
    /// reads): [`usage_checks::allowed_routes`].
    pub allowed_routes: BTreeSet<String>,
}

/// What the detectors are run with besides the series.
#[derive(Debug, Clone, Default)]
pub struct DetectOptions {
    /// Hours starting after this time (Unix seconds) are not judged yet: the newest event minus
    /// the configured lateness. `None`: judge everything.
    pub watermark: Option<i64>,
    /// Declared keys; empty: the rule-like checks have nothing to compare with and stay silent.
    pub declared: Vec<KeyDecl>,
    /// Signals of one key closer than this (seconds) fold into one finding; 0 means the default
    /// (one hour).
    pub fold_gap: i64,
}

/// Events a finding's samples are drawn from (the store picks them from its raw events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SampleFilter {
    /// Any event of the key in the window.
    Any,
    /// Events from a network (CIDR), Airwallex's view or the proxy's.
    Network { cidr: String, via_proxy: bool },
    /// Events whose user agent belongs to this family.
    UserAgent { family: String },
    /// Events on a route template.
    Route { route: String },
    /// Events needing a scope.
    Scope { scope: String },
    /// Refused or throttled events.
    Errors,
    /// Write events.
    Writes,
}

/// One detector's judgement on one key and window, before folding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub rule: String,
    pub key: String,
    pub severity: Severity,
    /// The anomalous window, Unix seconds, `end` exclusive.
    pub start: i64,
    pub end: i64,
    /// Start of the first anomalous hour: with the rule and key, the finding's id.
    pub bucket: i64,
    /// For rule-like checks: what makes the condition the same condition (a network, a scope);
    /// their ids are rule + key + subject.
    pub subject: Option<String>,
    pub message: String,
    pub action: Action,
    pub steps: Vec<String>,
    /// Observed, expected, band, baseline and detector-specific counts.
    pub evidence: serde_json::Value,
    #[serde(skip)]
    pub samples: SampleFilter,
}

/// Which baseline a key is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyBaseline {
    pub key: String,
    pub events: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// `seasonal` (hour of week over previous weeks) or `learning`.
    pub baseline: String,
    /// Weeks of history behind the seasonal baseline at the newest event.
    pub weeks: i64,
    /// Until when the key is learning (rates compared with previous days only, novelty
    /// detectors silent); `None` once learnt.
    pub learning_until: Option<String>,
}

/// Everything one detection run found.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    /// Folded findings, sorted.
    pub findings: Vec<Finding>,
    /// The signals the findings were folded from.
    pub signals: Vec<Signal>,
    /// The baseline of each key.
    pub keys: Vec<KeyBaseline>,
}

/// Default folding gap: signals of one key less than an hour apart are one incident.
pub const FOLD_GAP: i64 = 3600;

/// Runs every rule over every key of `series`.
pub fn detect(series: &Series, rules: &AnomalyRules, opts: &DetectOptions) -> Detection {
    let mut signals = Vec::new();
    let mut keys = Vec::new();
    for ks in series.keys.values() {
        let (s, b) = detect_key(ks, &series.active_days, rules, opts);
        signals.extend(s);
        keys.push(b);
    }
    let findings = fold::fold(
        &signals,
        if opts.fold_gap > 0 {
            opts.fold_gap
        } else {
            FOLD_GAP
        },
    );
    Detection {
        findings,
        signals,
        keys,
    }
}

/// Runs every rule over one key; `active_days` are the days the evidence covers (any key).
pub fn detect_key(
    ks: &KeySeries,
    active_days: &BTreeSet<i64>,
    rules: &AnomalyRules,
    opts: &DetectOptions,
) -> (Vec<Signal>, KeyBaseline) {
    let mut out = Vec::new();
    if ks.events == 0 {
        return (out, baseline_of(ks, rules));
    }
    let watermark = opts.watermark.unwrap_or(i64::MAX);
    let decl = opts
        .declared
        .iter()
        .find(|d| d.name == ks.key || d.fingerprint.as_deref() == Some(ks.key.as_str()));
    for rule in &rules.rules {
        match rule.detector.as_str() {
            "rate-spike" | "error-burst" => {
                out.extend(rate::detect(ks, active_days, rule, watermark))
            }
            "new-network" => out.extend(novelty::new_network(ks, rule, watermark)),
            "new-user-agent" => out.extend(novelty::new_user_agent(ks, rule, watermark)),
            "new-route" => out.extend(novelty::new_route(ks, rule, watermark)),
            "off-hours" => out.extend(novelty::off_hours(ks, rule, watermark)),
            "dormant-key-active" => out.extend(novelty::dormant(ks, active_days, rule, watermark)),
            "outside-whitelist" => {
                if let Some(d) = decl {
                    out.extend(usage_checks::outside_whitelist(ks, d, rule, watermark))
                }
            }
            "undeclared-scope" => {
                if let Some(d) = decl {
                    out.extend(usage_checks::undeclared_scope(ks, d, rule, watermark))
                }
            }
            "unknown-key" if decl.is_none() && !opts.declared.is_empty() => {
                out.extend(usage_checks::unknown_key(ks, rule))
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| (a.start, &a.rule, a.end).cmp(&(b.start, &b.rule, b.end)));
    (out, baseline_of(ks, rules))
}

/// Weeks of history the rate rules need before the seasonal baseline (the largest of the rate
/// rules in force), and days the novelty rules learn for.
fn learning_spans(rules: &AnomalyRules) -> (i64, i64) {
    let weeks = rules
        .rules
        .iter()
        .filter(|r| matches!(r.detector.as_str(), "rate-spike" | "error-burst"))
        .map(|r| r.int("seasonal_weeks"))
        .max()
        .unwrap_or(0);
    let days = rules
        .rules
        .iter()
        .map(|r| r.int("learning_days"))
        .max()
        .unwrap_or(0);
    (weeks, days)
}

/// Which baseline `ks` is on at its newest event.
pub fn baseline_of(ks: &KeySeries, rules: &AnomalyRules) -> KeyBaseline {
    let (weeks, days) = learning_spans(rules);
    let seasonal_from = ks.first + weeks * 7 * series::DAY;
    let learnt_at = seasonal_from.max(ks.first + days * series::DAY);
    let history_weeks = (ks.last - ks.first).max(0) / (7 * series::DAY);
    KeyBaseline {
        key: ks.key.clone(),
        events: ks.events,
        first_seen: rfc3339(ks.first),
        last_seen: rfc3339(ks.last),
        baseline: if ks.last >= seasonal_from {
            "seasonal".into()
        } else {
            "learning".into()
        },
        weeks: history_weeks,
        learning_until: (ks.last < learnt_at).then(|| rfc3339(learnt_at)),
    }
}

/// A time as RFC 3339 UTC with seconds (`2026-11-20T10:15:00Z`).
pub fn rfc3339(ts: i64) -> String {
    match Utc.timestamp_opt(ts, 0).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => ts.to_string(),
    }
}

/// A window for people: `2026-11-20 10:15-10:40 UTC`, or with both dates when it spans days.
pub fn human_window(start: i64, end: i64) -> String {
    let (Some(s), Some(e)) = (
        Utc.timestamp_opt(start, 0).single(),
        Utc.timestamp_opt(end, 0).single(),
    ) else {
        return format!("{start}-{end}");
    };
    let s: DateTime<Utc> = s;
    if s.date_naive() == e.date_naive()
        || (end - start <= 3600 && e.format("%H:%M:%S").to_string() == "00:00:00")
    {
        format!("{}-{} UTC", s.format("%Y-%m-%d %H:%M"), e.format("%H:%M"))
    } else {
        format!(
            "{} to {} UTC",
            s.format("%Y-%m-%d %H:%M"),
            e.format("%Y-%m-%d %H:%M")
        )
    }
}

/// A duration for people: `25 min`, `3 h 10 min`, `2 days`.
pub fn human_duration(secs: i64) -> String {
    let m = (secs + 59) / 60;
    if m < 60 {
        format!("{m} min")
    } else if m < 48 * 60 {
        if m % 60 == 0 {
            format!("{} h", m / 60)
        } else {
            format!("{} h {} min", m / 60, m % 60)
        }
    } else {
        format!("{} days", m / (24 * 60))
    }
}

/// A count for people: `5,210`; fractions below 10 keep one decimal (`0.4`).
pub fn human_count(x: f64) -> String {
    if x.abs() < 10.0 && x.fract().abs() > 1e-9 {
        return format!("{x:.1}");
    }
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Fills a template's `{placeholders}` from `values` (a missing value renders as `?`).
pub fn render(template: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) => {
                let name = &after[..j];
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push('?'),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Builds a signal from a rule, its placeholder values and evidence.
#[allow(clippy::too_many_arguments)]
pub(crate) fn signal(
    rule: &AnomalyRule,
    key: &str,
    severity: Severity,
    start: i64,
    end: i64,
    bucket: i64,
    mut values: BTreeMap<&'static str, String>,
    evidence: serde_json::Value,
    samples: SampleFilter,
) -> Signal {
    values.insert("key", key.to_string());
    values.insert("window", human_window(start, end));
    values.insert("start", rfc3339(start));
    values.insert("end", rfc3339(end));
    values.insert("duration", human_duration(end - start));
    Signal {
        rule: rule.id.clone(),
        key: key.to_string(),
        severity,
        start,
        end,
        bucket,
        subject: None,
        message: render(&rule.message, &values),
        action: rule.action,
        steps: rule.steps.iter().map(|s| render(s, &values)).collect(),
        evidence,
        samples,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn rendering_and_formats() {
        let mut v = BTreeMap::new();
        v.insert("key", "erp".to_string());
        assert_eq!(render("{key}: {nope} {", &v), "erp: ? {");
        assert_eq!(human_count(5210.0), "5,210");
        assert_eq!(human_count(0.44), "0.4");
        assert_eq!(human_count(1_234_567.4), "1,234,567");
        assert_eq!(human_duration(25 * 60), "25 min");
        assert_eq!(human_duration(3 * 3600 + 600), "3 h 10 min");
        let t = 1_790_000_000 - 1_790_000_000 % 86_400 + 10 * 3600 + 15 * 60;
        assert_eq!(rfc3339(t), "2026-09-21T10:15:00Z");
        assert_eq!(human_window(t, t + 25 * 60), "2026-09-21 10:15-10:40 UTC");
    }
}
