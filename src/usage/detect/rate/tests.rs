//! The rate detector's unit tests.

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
