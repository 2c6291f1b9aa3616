//! Judging each hour of a key against its own history before it (seasonal or learning
//! baseline, learnt over-dispersion, strong and weak levels) and finding the anomalous runs.

use super::super::stats::{median, CountDist};
use super::{BaselineKind, Judged, Level, Metric, RateParams, DAY_H, WEEK_H};
use std::collections::VecDeque;

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
