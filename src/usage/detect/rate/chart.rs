//! A key's hourly series with its expected values and band, for charts.

use super::super::rfc3339;
use super::super::rules::AnomalyRule;
use super::super::series::{KeySeries, HOUR};
use super::{dense, judge, last_hour, rule_excess, BaselineKind, Level, Metric, RateParams};
use serde::Serialize;
use std::collections::BTreeSet;

/// One hour of a key's chart: observed count, expected count and band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartPoint {
    /// Start of the hour, RFC 3339.
    pub hour: String,
    pub observed: f64,
    pub expected: f64,
    pub band_low: f64,
    pub band_high: f64,
    pub baseline: BaselineKind,
    pub level: Level,
}

/// The hourly series of a key with its expected values and band, for charts.
pub fn chart(
    ks: &KeySeries,
    active_days: &BTreeSet<i64>,
    rule: &AnomalyRule,
    metric: Metric,
) -> Vec<ChartPoint> {
    let mut p = RateParams::from_rule(rule);
    if metric == Metric::Writes {
        p.min_excess = rule_excess(rule, metric);
    }
    let (h0, values, missing) = dense(ks, active_days, metric, last_hour(ks, i64::MAX));
    judge(&values, &missing, &p, metric)
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let (lo, hi) = j.band(p.alpha);
            ChartPoint {
                hour: rfc3339((h0 + i as i64) * HOUR),
                observed: j.observed,
                expected: j.expected,
                band_low: lo,
                band_high: hi,
                baseline: j.kind,
                level: j.level,
            }
        })
        .collect()
}
