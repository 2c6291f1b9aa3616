//! Folding signals into findings: the anomaly signals of one key whose windows overlap or lie
//! less than the folding gap apart are one incident, one finding with `evidence.signals` (a new
//! network that also writes and bursts 403s is one incident, not three findings).
//!
//! The finding's rule and id come from the incident's earliest signal (rule + key + its first
//! anomalous hour, as the findings contract says), so later evidence that extends the incident
//! keeps its id; its severity is the highest of its signals and its steps those of the most
//! severe one. Rule-like checks (`usage.*`) are conditions, not incidents: each is its own
//! finding with the id rule + key + subject.

use super::{rfc3339, Signal};
use crate::finding::{finding_id, Finding, Recommendation, Severity};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// The id of an anomaly finding: rule + key + the start of its first anomalous hour.
pub fn anomaly_id(rule: &str, key: &str, bucket: i64) -> String {
    finding_id(rule, &[key, &rfc3339(bucket)])
}

/// Folds signals into findings (sorted by severity, then key, then time).
pub fn fold(signals: &[Signal], gap: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<&Signal>> = BTreeMap::new();
    for s in signals {
        if s.subject.is_some() {
            out.push(condition(s));
        } else {
            by_key.entry(s.key.as_str()).or_default().push(s);
        }
    }
    for (_, mut list) in by_key {
        list.sort_by(|a, b| (a.start, &a.rule, a.end).cmp(&(b.start, &b.rule, b.end)));
        let mut group: Vec<&Signal> = Vec::new();
        let mut group_end = i64::MIN;
        for s in list {
            if !group.is_empty() && s.start > group_end.saturating_add(gap) {
                out.push(incident(&group));
                group.clear();
            }
            group_end = if group.is_empty() {
                s.end
            } else {
                group_end.max(s.end)
            };
            group.push(s);
        }
        if !group.is_empty() {
            out.push(incident(&group));
        }
    }
    out.sort_by(|a, b| {
        (Reverse(a.severity), &a.key, &a.start, &a.rule).cmp(&(
            Reverse(b.severity),
            &b.key,
            &b.start,
            &b.rule,
        ))
    });
    out
}

fn signal_json(s: &Signal) -> serde_json::Value {
    serde_json::json!({
        "rule": s.rule,
        "severity": s.severity,
        "start": rfc3339(s.start),
        "end": rfc3339(s.end),
        "message": s.message,
        "evidence": s.evidence,
    })
}

fn condition(s: &Signal) -> Finding {
    // rule + key + subject; rule + key when the subject is the key itself (usage.unknown-key)
    let mut f = match s.subject.as_deref().filter(|x| !x.is_empty()) {
        Some(subject) => Finding::new(&s.rule, s.severity, s.message.clone(), &[&s.key, subject]),
        None => Finding::new(&s.rule, s.severity, s.message.clone(), &[&s.key]),
    };
    f.key = Some(s.key.clone());
    f.start = Some(rfc3339(s.start));
    f.end = Some(rfc3339(s.end));
    let mut ev = s.evidence.clone();
    if let Some(o) = ev.as_object_mut() {
        o.insert("signals".into(), serde_json::json!([signal_json(s)]));
    }
    f.evidence = Some(ev);
    f.recommendation = Some(Recommendation {
        action: s.action,
        steps: s.steps.clone(),
        replacement: None,
    });
    f
}

fn incident(group: &[&Signal]) -> Finding {
    let first = group
        .iter()
        .min_by_key(|s| (s.bucket, Reverse(s.severity), s.rule.as_str(), s.start))
        .expect("non-empty group");
    let primary = group
        .iter()
        .max_by_key(|s| (s.severity, Reverse(s.start), Reverse(s.rule.as_str())))
        .expect("non-empty group");
    // corroboration: three or more kinds of signal in one incident weigh one level more
    let kinds: BTreeSet<&str> = group
        .iter()
        .filter(|s| s.severity >= Severity::Low)
        .map(|s| s.rule.as_str())
        .collect();
    let severity = if kinds.len() >= 3 {
        raise(primary.severity)
    } else {
        primary.severity
    };
    let start = group.iter().map(|s| s.start).min().unwrap_or(first.start);
    let end = group.iter().map(|s| s.end).max().unwrap_or(first.end);
    let mut also: Vec<String> = group
        .iter()
        .map(|s| s.rule.clone())
        .filter(|r| *r != first.rule)
        .collect();
    also.sort();
    also.dedup();
    let mut message = first.message.clone();
    if group.len() > 1 {
        let others: Vec<&str> = group
            .iter()
            .filter(|s| !std::ptr::eq(**s, *first))
            .map(|s| s.message.as_str())
            .collect();
        message = format!("{message}; in the same incident: {}", others.join("; "));
    }
    let mut f = Finding {
        id: anomaly_id(&first.rule, &first.key, first.bucket),
        ..Finding::new(&first.rule, severity, message, &[])
    };
    f.key = Some(first.key.clone());
    f.start = Some(rfc3339(start));
    f.end = Some(rfc3339(end));
    let mut ev = serde_json::Map::new();
    for k in ["observed", "expected", "band", "baseline"] {
        if let Some(v) = first.evidence.get(k) {
            ev.insert(k.into(), v.clone());
        }
    }
    let mut samples: Vec<serde_json::Value> = Vec::new();
    for s in std::iter::once(first).chain(group.iter()) {
        for x in s
            .evidence
            .get("samples")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            if samples.len() < MAX_SAMPLES && !samples.contains(x) {
                samples.push(x.clone());
            }
        }
    }
    ev.insert(
        "signals".into(),
        serde_json::Value::Array(
            group
                .iter()
                .map(|s| {
                    let mut j = signal_json(s);
                    if let Some(e) = j.get_mut("evidence").and_then(|e| e.as_object_mut()) {
                        e.remove("samples");
                    }
                    j
                })
                .collect(),
        ),
    );
    ev.insert("samples".into(), samples.into());
    f.evidence = Some(serde_json::Value::Object(ev));
    // the most severe signal's steps, then how to check each other kind of signal
    let mut steps: Vec<String> = primary.steps.clone();
    for s in group.iter() {
        if s.rule == primary.rule {
            continue;
        }
        if let Some(st) = s.steps.first() {
            if !steps.contains(st) {
                steps.push(st.clone());
            }
        }
    }
    f.recommendation = Some(Recommendation {
        action: primary.action,
        steps,
        replacement: None,
    });
    f.also = also;
    f
}

/// Sample events kept in a folded finding.
const MAX_SAMPLES: usize = 10;

fn raise(s: Severity) -> Severity {
    match s {
        Severity::Info => Severity::Low,
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        _ => Severity::Critical,
    }
}
