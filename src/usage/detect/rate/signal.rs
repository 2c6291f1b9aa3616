//! Turning an anomalous run into a signal: its peak hour, severity, baseline text, evidence
//! and the window tightened to the calls that stand out.

use super::super::rules::AnomalyRule;
use super::super::series::{KeySeries, DAY, FINE, HOUR, SUBS};
use super::super::{human_count, human_window, rfc3339, signal, SampleFilter, Signal};
use super::{BaselineKind, Judged, Metric, RateParams, Run};
use crate::finding::Severity;
use std::collections::BTreeMap;

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

pub(super) fn run_signal(
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
