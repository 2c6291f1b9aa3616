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

use super::rules::AnomalyRule;
use super::series::{HourBucket, KeySeries, DAY, FINE, HOUR, SUBS};
use super::stats::{median, CountDist};
use super::{human_count, human_window, rfc3339, signal, SampleFilter, Signal};
use crate::finding::Severity;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const WEEK_H: usize = 168;
const DAY_H: usize = 24;
/// Days of residuals the dispersion is learnt from.
const DISPERSION_DAYS: usize = 28;
/// Share of the variance the 1% trimming keeps (normal residuals).
const TRIM_KEPT: f64 = 0.9;
/// Weeks a typical seasonal median is taken over, for the dispersion estimate.
const ESTIMATE_WEEKS: f64 = 4.0;
/// Residual samples the prior dispersion weighs as.
const PRIOR_WEIGHT: f64 = 48.0;
/// On a key's first day only this many times `learning_ratio` is flagged.
const FIRST_DAY_FACTOR: f64 = 2.5;
/// Hours back the busiest previous hour is taken from (four weeks).
const RECORD_HOURS: usize = 28 * DAY_H;
/// A seasonal hour this many times the busiest of the previous four weeks is strong whatever
/// the tail model says.
const RECORD_RATIO: f64 = 2.0;

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

/// Judges every hour of `values` (index 0 = the key's first hour); `missing` marks hours the
/// evidence does not cover.
pub fn judge(values: &[f64], missing: &[bool], p: &RateParams, metric: Metric) -> Vec<Judged> {
    let n = values.len();
    let mut out: Vec<Judged> = Vec::with_capacity(n);
    let mut phi = p.dispersion;
    let mut resid: VecDeque<(usize, f64, f64)> = VecDeque::new();
    let floor = (p.new_key_floor * metric.floor_scale()).max(1.0);
    let mut s = [0f64; 52];
    let mut d = [0f64; 7];
    let mut scratch: Vec<f64> = Vec::new();
    // the busiest previous hour of the last RECORD_HOURS (a monotonic queue of indices)
    let mut record: VecDeque<usize> = VecDeque::new();
    for i in 0..n {
        if i > 0 && i % DAY_H == 0 {
            while resid
                .front()
                .is_some_and(|(j, _, _)| i - j > DISPERSION_DAYS * DAY_H)
            {
                resid.pop_front();
            }
            phi = dispersion(&resid, p.dispersion, &mut scratch);
        }
        if i > 0 && !missing[i - 1] {
            while record.back().is_some_and(|&j| values[j] <= values[i - 1]) {
                record.pop_back();
            }
            record.push_back(i - 1);
        }
        while record.front().is_some_and(|&j| i - j > RECORD_HOURS) {
            record.pop_front();
        }
        let x = values[i];
        if missing[i] {
            out.push(Judged::unjudged(x, Level::Missing));
            continue;
        }
        // the key's very first hour has nothing to be judged against (the first hour of a
        // busy key's first log is no burst)
        let Some(busiest) = record.front().map(|&j| values[j]) else {
            out.push(Judged::unjudged(x, Level::Unjudged));
            continue;
        };
        let mut ns = 0;
        for k in 1..=p.lookback_weeks {
            if i >= k * WEEK_H && !missing[i - k * WEEK_H] {
                s[ns] = values[i - k * WEEK_H];
                ns += 1;
            }
        }
        let mut nd = 0;
        for j in 1..=7 {
            if i >= j * DAY_H && !missing[i - j * DAY_H] {
                d[nd] = values[i - j * DAY_H];
                nd += 1;
            }
        }
        let day = if nd > 0 {
            scratch.clear();
            scratch.extend_from_slice(&d[..nd]);
            median(&mut scratch).unwrap_or(0.0)
        } else {
            0.0
        };
        let seasonal = i >= p.seasonal_weeks * WEEK_H && ns >= p.seasonal_weeks.min(2);
        let j = if seasonal {
            scratch.clear();
            scratch.extend_from_slice(&s[..ns]);
            let week = median(&mut scratch).unwrap_or(0.0);
            // the larger of the two baselines: a weekly batch keeps its slot, a noisy slot of
            // few weeks is held up by the previous days
            let e = week.max(day).max(0.05);
            // the key's over-dispersion, widened for a median of few weeks
            let var = (e + phi * e * e) * (1.0 + 1.0 / ns as f64);
            Judged {
                observed: x,
                expected: e,
                reference: e,
                variance: var,
                ratio: p.min_ratio,
                excess: p.min_excess,
                weeks: ns as u8,
                dispersion: phi,
                busiest,
                kind: BaselineKind::Seasonal,
                level: Level::Normal,
            }
        } else {
            // learning: only a multiple of the busiest hour so far is flagged
            let first_day = nd == 0;
            let (r, ratio, expected) = if first_day {
                let prev: f64 = values[..i].iter().sum();
                (
                    busiest.max(floor),
                    p.learning_ratio * FIRST_DAY_FACTOR,
                    prev / i.max(1) as f64,
                )
            } else {
                (busiest.max(1.0), p.learning_ratio, day)
            };
            Judged {
                observed: x,
                expected,
                reference: r,
                variance: r + p.dispersion * r * r,
                ratio,
                excess: p.min_excess,
                weeks: 0,
                dispersion: p.dispersion,
                busiest,
                kind: if first_day {
                    BaselineKind::PreviousHours
                } else {
                    BaselineKind::PreviousDays
                },
                level: Level::Normal,
            }
        };
        let level = level_of(&j, p);
        let j = Judged { level, ..j };
        // residuals for the dispersion: ordinary hours against the seasonal expected count, or
        // while learning against the median of previous days
        if j.kind != BaselineKind::PreviousHours && level == Level::Normal && j.expected >= 3.0 {
            resid.push_back((i, x, j.expected));
        }
        out.push(j);
    }
    out
}

/// Weak and strong thresholds of the learning baselines are relative to the busiest previous
/// hour; those of the seasonal one to the expected count. A seasonal hour is strong when its
/// tail probability is below `alpha`, or when it beats the busiest hour of the previous four
/// weeks by `RECORD_RATIO` (robust to tails heavier than the model's).
fn level_of(j: &Judged, p: &RateParams) -> Level {
    let x = j.observed;
    let r = j.reference;
    let weak_ratio = if j.kind == BaselineKind::Seasonal {
        p.weak_ratio
    } else {
        p.weak_ratio.max(j.ratio / 2.0)
    };
    if x < r * weak_ratio || x < r + p.min_excess / 2.0 {
        return Level::Normal;
    }
    let tail = j.dist().upper_tail(x);
    let record = j.kind == BaselineKind::Seasonal && x >= RECORD_RATIO * j.busiest;
    if x >= r * j.ratio && x >= r + j.excess && (tail <= p.alpha || record) {
        Level::Strong
    } else if tail <= p.alpha_weak || record {
        Level::Weak
    } else {
        Level::Normal
    }
}

/// Over-dispersion by moments over the previous four weeks' ordinary hours: the squared
/// residuals beyond the Poisson part against the squared expected counts (the largest 1%
/// trimmed), deflated for the error of the expected value itself, shrunk toward the prior by the
/// number of samples.
fn dispersion(resid: &VecDeque<(usize, f64, f64)>, prior: f64, scratch: &mut Vec<f64>) -> f64 {
    let m = resid.len();
    if m < 12 {
        return prior;
    }
    scratch.clear();
    scratch.extend(
        resid
            .iter()
            .map(|(_, x, e)| (x - e) * (x - e) / (e + prior * e * e)),
    );
    let cut_at = (m * 99 / 100).min(m - 1);
    let (_, cut, _) = scratch.select_nth_unstable_by(cut_at, f64::total_cmp);
    let cut = *cut;
    let (mut num, mut den) = (0.0, 0.0);
    for (_, x, e) in resid {
        if (x - e) * (x - e) / (e + prior * e * e) <= cut {
            num += (x - e) * (x - e) - e;
            den += e * e;
        }
    }
    let est = if den > 0.0 {
        (num / den).max(0.0) / TRIM_KEPT / (1.0 + 1.0 / ESTIMATE_WEEKS)
    } else {
        prior
    };
    let m = m as f64;
    ((m * est + PRIOR_WEIGHT * prior) / (m + PRIOR_WEIGHT)).clamp(0.001, 4.0)
}

/// A run of weak-or-strong hours (indices, `end` inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub end: usize,
}

/// The anomalous runs: weak-or-strong hours in a row holding a strong hour, lasting
/// `persist_hours`, or (seasonal hours only) strong taken together: a burst that straddles an
/// hour boundary is weak in each hour and strong as a whole.
pub fn runs(j: &[Judged], p: &RateParams) -> Vec<Run> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < j.len() {
        if j[i].level < Level::Weak {
            i += 1;
            continue;
        }
        let start = i;
        let mut strong = false;
        while i < j.len() && j[i].level >= Level::Weak {
            strong |= j[i].level == Level::Strong;
            i += 1;
        }
        let run = &j[start..i];
        if strong || run.len() >= p.persist || strong_together(run, p) {
            out.push(Run { start, end: i - 1 });
        }
    }
    out
}

/// Whether the hours of a run of seasonal hours, summed, are a strong hour.
fn strong_together(run: &[Judged], p: &RateParams) -> bool {
    if run.len() < 2 || run.iter().any(|h| h.kind != BaselineKind::Seasonal) {
        return false;
    }
    let x: f64 = run.iter().map(|h| h.observed).sum();
    let m: f64 = run.iter().map(|h| h.reference).sum();
    let v: f64 = run.iter().map(|h| h.variance).sum();
    x >= m * p.min_ratio
        && x >= m + p.min_excess
        && CountDist::with_variance(m.max(0.05), v.max(0.05)).upper_tail(x) <= p.alpha
}

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

fn baseline_text(j: &Judged, ks: &KeySeries, p: &RateParams) -> String {
    match j.kind {
        BaselineKind::Seasonal => format!(
            "seasonal: same hour of the week over {} previous week{}",
            j.weeks,
            if j.weeks == 1 { "" } else { "s" }
        ),
        BaselineKind::PreviousDays => format!(
            "learning until {}: the highest at this hour on previous days",
            rfc3339(ks.first + p.seasonal_weeks as i64 * 7 * DAY)
        ),
        BaselineKind::PreviousHours => format!(
            "learning until {} (first day): the highest hour so far",
            rfc3339(ks.first + p.seasonal_weeks as i64 * 7 * DAY)
        ),
        BaselineKind::None => "none".into(),
    }
}

fn run_signal(
    ks: &KeySeries,
    rule: &AnomalyRule,
    p: &RateParams,
    metric: Metric,
    h0: i64,
    judged: &[Judged],
    run: Run,
) -> Signal {
    let hours = run.start..=run.end;
    // the hour that stands out most
    let peak_i = hours
        .clone()
        .max_by(|&a, &b| {
            let ra = judged[a].observed / judged[a].reference.max(1.0);
            let rb = judged[b].observed / judged[b].reference.max(1.0);
            ra.total_cmp(&rb).then(b.cmp(&a))
        })
        .unwrap_or(run.start);
    let pj = judged[peak_i];
    let (peak_lo, peak_hi) = pj.band(p.alpha);
    let (observed, expected, band_lo, band_hi) = if metric == Metric::Burst {
        (pj.observed, pj.expected, peak_lo, peak_hi)
    } else {
        let mut o = 0.0;
        let mut e = 0.0;
        let mut lo = 0.0;
        let mut hi = 0.0;
        for i in hours.clone() {
            o += judged[i].observed;
            e += judged[i].expected;
            let (l, h) = if i == peak_i {
                (peak_lo, peak_hi)
            } else {
                judged[i].band(p.alpha)
            };
            lo += l;
            hi += h;
        }
        (o, e, lo, hi)
    };
    let (start, end) = window(ks, p, metric, h0, judged, run);
    let bucket = (h0 + run.start as i64) * HOUR;
    let severity = match metric {
        Metric::Writes => rule.severity_param("severity_writes"),
        _ => rule.severity,
    };
    let peak_hour = (h0 + peak_i as i64) * HOUR;
    let peak_text = format!(
        "{} in {} (expected {}, band up to {})",
        human_count(pj.observed),
        human_window(peak_hour, peak_hour + HOUR),
        human_count(pj.expected),
        human_count(peak_hi)
    );
    let mut v: BTreeMap<&'static str, String> = BTreeMap::new();
    v.insert("metric", metric.label().to_string());
    v.insert("observed", human_count(observed));
    v.insert("expected", human_count(expected));
    v.insert("band_low", human_count(band_lo));
    v.insert("band_high", human_count(band_hi));
    v.insert("baseline", baseline_text(&pj, ks, p));
    v.insert("peak", peak_text);
    if pj.kind != BaselineKind::Seasonal {
        v.insert(
            "learning_until",
            rfc3339(ks.first + p.seasonal_weeks as i64 * 7 * DAY),
        );
    }
    let (refused, throttled, writes) = hours.clone().fold((0u64, 0u64, 0u64), |(r, t, w), i| {
        match ks.hours.get(&(h0 + i as i64)) {
            Some(b) => (
                r + b.denied as u64,
                t + b.throttled as u64,
                w + b.writes as u64,
            ),
            None => (r, t, w),
        }
    });
    v.insert("refused", refused.to_string());
    v.insert("throttled", throttled.to_string());
    v.insert("writes", writes.to_string());
    let evidence = serde_json::json!({
        "metric": metric.as_str(),
        "observed": observed,
        "expected": round2(expected),
        "band": [band_lo, band_hi],
        "hours": run.end - run.start + 1,
        "peak_hour": {
            "start": rfc3339(peak_hour),
            "observed": pj.observed,
            "expected": round2(pj.expected),
            "band": [peak_lo, peak_hi],
        },
        "baseline": {
            "kind": pj.kind,
            "text": baseline_text(&pj, ks, p),
            "weeks": pj.weeks,
            "dispersion": round2(pj.dispersion * 1000.0) / 1000.0,
            "reference": round2(pj.reference),
        },
        "refused": refused,
        "throttled": throttled,
    });
    let samples = match metric {
        Metric::Writes => SampleFilter::Writes,
        Metric::Errors => SampleFilter::Errors,
        _ => SampleFilter::Any,
    };
    let _ = Severity::Info;
    signal(
        rule, &ks.key, severity, start, end, bucket, v, evidence, samples,
    )
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The window of a run: the 5-minute sub-buckets that stand out (calls and bursts), or the
/// first and last write or refusal; clipped to the calls themselves.
fn window(
    ks: &KeySeries,
    p: &RateParams,
    metric: Metric,
    h0: i64,
    judged: &[Judged],
    run: Run,
) -> (i64, i64) {
    let mut start: Option<i64> = None;
    let mut end: Option<i64> = None;
    let mut whole: Option<(i64, i64)> = None;
    for (i, j) in judged.iter().enumerate().take(run.end + 1).skip(run.start) {
        let hour = h0 + i as i64;
        let Some(b) = ks.hours.get(&hour) else {
            continue;
        };
        let base = hour * HOUR;
        let (f, l) = match metric {
            Metric::Writes if b.writes > 0 => (b.write_first, b.write_last),
            Metric::Errors if b.errors() > 0 => (b.err_first, b.err_last),
            Metric::Writes | Metric::Errors => continue,
            _ => (b.first, b.last),
        };
        let span = (base + f as i64, base + l as i64 + 1);
        whole = Some(match whole {
            None => span,
            Some((a, z)) => (a.min(span.0), z.max(span.1)),
        });
        if matches!(metric, Metric::Writes | Metric::Errors) {
            continue;
        }
        let threshold = match metric {
            Metric::Burst => (j.reference * p.weak_ratio).max(j.reference + p.min_excess / 2.0),
            _ => {
                let m = j.expected / SUBS as f64;
                m + 3.0 * m.sqrt() + 1.0
            }
        };
        for (k, &c) in b.sub.iter().enumerate() {
            if (c as f64) > threshold {
                let s = base + k as i64 * FINE;
                start = Some(start.map_or(s, |x: i64| x.min(s)));
                end = Some(end.map_or(s + FINE, |x: i64| x.max(s + FINE)));
            }
        }
    }
    let (wa, wz) = whole.unwrap_or((
        (h0 + run.start as i64) * HOUR,
        (h0 + run.end as i64 + 1) * HOUR,
    ));
    match (start, end) {
        (Some(s), Some(e)) => (s.max(wa), e.min(wz).max(s.max(wa) + 1)),
        _ => (wa, wz),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> RateParams {
        RateParams {
            alpha: 1e-6,
            alpha_weak: 1e-3,
            min_ratio: 2.0,
            weak_ratio: 1.5,
            min_excess: 30.0,
            persist: 3,
            seasonal_weeks: 2,
            lookback_weeks: 8,
            dispersion: 0.05,
            learning_ratio: 4.0,
            new_key_floor: 30.0,
        }
    }

    fn office(i: usize) -> f64 {
        let hod = i % 24;
        let dow = (i / 24) % 7;
        if dow < 5 && (8..18).contains(&hod) {
            100.0 + ((i * 7919) % 23) as f64
        } else {
            0.0
        }
    }

    #[test]
    fn a_weekly_batch_is_baseline_and_a_spike_is_not() {
        let n = 6 * WEEK_H;
        let mut v: Vec<f64> = (0..n).map(office).collect();
        for w in 0..6 {
            v[w * WEEK_H + 9] += 2000.0; // Monday 09:00 batch
        }
        let spike = 5 * WEEK_H + 2 * 24 + 14; // Wednesday 14:00, week 6
        v[spike] += 900.0;
        let missing = vec![false; n];
        let j = judge(&v, &missing, &params(), Metric::Calls);
        let r = runs(&j, &params());
        // the first Monday batch is judged while learning (first day): flagged as a first
        // burst; every later one is baseline
        assert!(
            r.iter().all(|r| r.start == spike || r.start < WEEK_H),
            "{r:?}"
        );
        assert!(r.iter().any(|r| r.start == spike), "{r:?}");
        for w in 1..6 {
            assert_eq!(j[w * WEEK_H + 9].level, Level::Normal, "week {w}");
        }
        assert_eq!(j[spike].kind, BaselineKind::Seasonal);
        let (lo, hi) = j[spike].band(1e-6);
        assert!(
            lo > 0.0 && lo < 100.0 && hi > 200.0 && hi < 400.0,
            "{lo} {hi}"
        );
    }

    #[test]
    fn sparse_keys_need_a_real_excess() {
        let n = 5 * WEEK_H;
        let mut v: Vec<f64> = (0..n).map(|i| if i % 7 == 0 { 1.0 } else { 0.0 }).collect();
        v[4 * WEEK_H + 30] = 8.0; // eight calls: noise for a sparse key
        let missing = vec![false; n];
        let j = judge(&v, &missing, &params(), Metric::Calls);
        assert!(runs(&j, &params()).is_empty());
        v[4 * WEEK_H + 30] = 60.0;
        let j = judge(&v, &missing, &params(), Metric::Calls);
        assert_eq!(runs(&j, &params()).len(), 1);
    }
}
