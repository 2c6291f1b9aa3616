//! Rate detectors (`anomaly.rate-spike`, `anomaly.error-burst`): each hour of a key is judged
//! against that key's own history strictly before it, so the judgement of an hour never changes
//! when later events arrive.
//!
//! Baselines, by how much history the key has at that hour:
//! - *seasonal* (at least `seasonal_weeks` weeks): the larger of the median of the same hour of
//!   the week over up to `lookback_weeks` previous weeks and the median of the same hour of the
//!   day over the previous seven days. A weekly batch is in its own slot's history and so is no
//!   anomaly; a noisy slot of few weeks is held up by the previous days (a one-sided shrinkage
//!   toward the key's recent level, so the baseline is never pulled below either).
//! - *learning* (less history, or no same-slot weeks): the busiest hour the key had so far
//!   (within four weeks); only `learning_ratio` times that is flagged, and on the key's first
//!   day (no same hour on a previous day) 2.5 times more, with at least `new_key_floor` calls as
//!   the busiest hour: a new key's first burst is not invisible, its ordinary rhythm is not an
//!   alarm. The key's very first hour is not judged.
//!
//! Test: the count is compared with a negative binomial of the expected mean whose
//! over-dispersion is learnt daily from the key's own ordinary hours of the previous four weeks
//! (moments, the largest 1% trimmed), widened for the error of a median of few weeks. An hour is
//! *strong* when it is at least `min_ratio` times and `min_excess` above the expected count and
//! either its upper tail probability is below `alpha` or it is twice the busiest hour of the
//! previous four weeks (a record by a margin: robust when the real tail is heavier than the
//! model's). It is *weak* below `alpha_weak` (or a record), at `weak_ratio` and half the excess.
//! A run of weak-or-strong hours is an anomaly if it holds a strong hour or lasts
//! `persist_hours`; its window is tightened to the 5-minute sub-buckets that stand out (calls),
//! or to the first and last write or refusal.

mod chart;
mod judge;
mod signal;

pub use chart::{chart, ChartPoint};
pub use judge::{judge, runs, Run};

use super::rules::AnomalyRule;
use super::series::{HourBucket, KeySeries, DAY, HOUR};
use super::stats::CountDist;
use super::Signal;
use serde::Serialize;
use signal::run_signal;
use std::collections::BTreeSet;

const WEEK_H: usize = 168;
const DAY_H: usize = 24;

/// Parameters of a rate rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateParams {
    pub alpha: f64,
    pub alpha_weak: f64,
    pub min_ratio: f64,
    pub weak_ratio: f64,
    pub min_excess: f64,
    pub persist: usize,
    pub seasonal_weeks: usize,
    pub lookback_weeks: usize,
    pub dispersion: f64,
    pub learning_ratio: f64,
    pub new_key_floor: f64,
}

impl RateParams {
    pub fn from_rule(r: &AnomalyRule) -> RateParams {
        RateParams {
            alpha: r.float("alpha"),
            alpha_weak: r.float("alpha_weak"),
            min_ratio: r.float("min_ratio"),
            weak_ratio: r.float("weak_ratio"),
            min_excess: r.int("min_excess") as f64,
            persist: r.int("persist_hours").max(1) as usize,
            seasonal_weeks: r.int("seasonal_weeks").max(1) as usize,
            lookback_weeks: r.int("lookback_weeks").clamp(1, 52) as usize,
            dispersion: r.float("dispersion"),
            learning_ratio: r.float("learning_ratio"),
            new_key_floor: r.int("new_key_floor") as f64,
        }
    }
}

/// What is counted per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Calls in the hour.
    Calls,
    /// Calls in the busiest 5 minutes of the hour.
    Burst,
    /// Write calls in the hour.
    Writes,
    /// Refused (401, 403) and throttled (429) calls in the hour.
    Errors,
}

impl Metric {
    pub fn value(self, b: &HourBucket) -> f64 {
        match self {
            Metric::Calls => b.calls as f64,
            Metric::Burst => b.peak() as f64,
            Metric::Writes => b.writes as f64,
            Metric::Errors => b.errors() as f64,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Calls => "calls",
            Metric::Burst => "burst",
            Metric::Writes => "writes",
            Metric::Errors => "errors",
        }
    }

    /// How the counted things are called in messages.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Calls => "calls",
            Metric::Burst => "calls in 5 minutes",
            Metric::Writes => "write calls",
            Metric::Errors => "refused or throttled calls (401/403/429)",
        }
    }

    /// Scale of `new_key_floor` for this metric.
    fn floor_scale(self) -> f64 {
        match self {
            Metric::Calls | Metric::Errors => 1.0,
            Metric::Burst => 0.25,
            Metric::Writes => 0.34,
        }
    }
}

/// Which history an hour was judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineKind {
    /// Same hour of the week, previous weeks.
    Seasonal,
    /// Learning: same hour on previous days.
    PreviousDays,
    /// Learning, first day: previous hours.
    PreviousHours,
    /// Not judged (the key's first hour, a gap in the evidence, after the watermark).
    None,
}

/// How an hour came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// A day the evidence does not cover.
    Missing,
    /// No history to judge against.
    Unjudged,
    Normal,
    Weak,
    Strong,
}

/// The judgement of one hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub observed: f64,
    /// What the hour should hold (seasonal: the shrunk median; learning: the median of previous
    /// days or hours).
    pub expected: f64,
    /// Centre of the tail test: the expected count, or while learning the highest previous one.
    pub reference: f64,
    pub variance: f64,
    /// The strong band is at least `reference * ratio` and `reference + excess`.
    pub ratio: f64,
    pub excess: f64,
    /// Weeks behind a seasonal baseline.
    pub weeks: u8,
    pub dispersion: f64,
    /// The busiest previous hour of the last four weeks.
    pub busiest: f64,
    pub kind: BaselineKind,
    pub level: Level,
}

impl Judged {
    fn unjudged(observed: f64, level: Level) -> Judged {
        Judged {
            observed,
            expected: 0.0,
            reference: 0.0,
            variance: 0.0,
            ratio: 0.0,
            excess: 0.0,
            weeks: 0,
            dispersion: 0.0,
            busiest: 0.0,
            kind: BaselineKind::None,
            level,
        }
    }

    pub fn dist(&self) -> CountDist {
        CountDist::with_variance(self.reference.max(0.05), self.variance.max(0.05))
    }

    /// The band: counts outside `[low, high]` are in the `alpha` tails (`high` also honours the
    /// minimum ratio and excess). `low` is 0 while learning.
    pub fn band(&self, alpha: f64) -> (f64, f64) {
        if self.kind == BaselineKind::None {
            return (0.0, 0.0);
        }
        let d = self.dist();
        let hi = d
            .upper_quantile(alpha)
            .max((self.reference * self.ratio).ceil())
            .max((self.reference + self.excess).ceil());
        let lo = if self.kind == BaselineKind::Seasonal {
            (d.lower_quantile(alpha) + 1.0).max(0.0)
        } else {
            0.0
        };
        (lo, hi)
    }
}

/// A key's dense hourly values of `metric` from its first hour to `last_hour` (inclusive), and
/// which hours the evidence does not cover.
pub fn dense(
    ks: &KeySeries,
    active_days: &BTreeSet<i64>,
    metric: Metric,
    last_hour: i64,
) -> (i64, Vec<f64>, Vec<bool>) {
    let h0 = ks.first.div_euclid(HOUR);
    let n = (last_hour - h0 + 1).max(0) as usize;
    let mut values = vec![0.0; n];
    let mut missing = vec![false; n];
    if n == 0 {
        // nothing judged yet: the key's first hour is after `last_hour` (the watermark)
        return (h0, values, missing);
    }
    for (h, b) in ks.hours.range(h0..=last_hour) {
        values[(h - h0) as usize] = metric.value(b);
    }
    if !active_days.is_empty() {
        for (i, m) in missing.iter_mut().enumerate() {
            let day = ((h0 + i as i64) * HOUR).div_euclid(DAY);
            *m = !active_days.contains(&day) && !ks.hours.contains_key(&(h0 + i as i64));
        }
    }
    (h0, values, missing)
}

fn last_hour(ks: &KeySeries, watermark: i64) -> i64 {
    ks.last.min(watermark).div_euclid(HOUR)
}
fn rule_excess(rule: &AnomalyRule, metric: Metric) -> f64 {
    let name = match metric {
        Metric::Burst => "burst_min_excess",
        Metric::Writes => "writes_min_excess",
        _ => "min_excess",
    };
    match rule.params.get(name).and_then(|v| v.as_integer()) {
        Some(n) => n as f64,
        None => rule.int("min_excess") as f64,
    }
}

/// The metrics a rule watches.
fn metrics_of(rule: &AnomalyRule) -> &'static [Metric] {
    match rule.detector.as_str() {
        "error-burst" => &[Metric::Errors],
        _ => &[Metric::Calls, Metric::Burst, Metric::Writes],
    }
}

/// Runs a rate rule over one key.
pub fn detect(
    ks: &KeySeries,
    active_days: &BTreeSet<i64>,
    rule: &AnomalyRule,
    watermark: i64,
) -> Vec<Signal> {
    let mut out = Vec::new();
    let last = last_hour(ks, watermark);
    for &metric in metrics_of(rule) {
        let mut p = RateParams::from_rule(rule);
        p.min_excess = rule_excess(rule, metric);
        let (h0, values, missing) = dense(ks, active_days, metric, last);
        if values.iter().all(|v| *v == 0.0) {
            continue;
        }
        let judged = judge(&values, &missing, &p, metric);
        for run in runs(&judged, &p) {
            out.push(run_signal(ks, rule, &p, metric, h0, &judged, run));
        }
    }
    out
}

#[cfg(test)]
mod tests;
