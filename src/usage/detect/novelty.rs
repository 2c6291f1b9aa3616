//! Novelty detectors: a network, user agent or route a key starts using after its learning
//! period (`anomaly.new-network`, `anomaly.new-user-agent`, `anomaly.new-route`), activity in an
//! hour of the week the key has never been active in (`anomaly.off-hours`), and a key calling
//! again after a long silence (`anomaly.dormant-key-active`).
//!
//! Each judges a value on its first appearance (the first call, in event time) and the activity
//! that follows it without a pause; a key whose values keep changing anyway (a cloud egress
//! pool, a random schedule) is left alone rather than alarmed on every change.

use super::rules::AnomalyRule;
use super::series::{
    network_of, user_agent_family, Access, AttrKind, AttrStats, KeySeries, DAY, HOUR,
};
use super::{human_count, rfc3339, signal, SampleFilter, Signal};
use std::collections::{BTreeMap, BTreeSet};

/// Activity of a value from its first call on, while it goes on without a pause of more than
/// two hours (within its first day, not after the watermark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Burst {
    pub start: i64,
    pub end: i64,
    pub calls: u64,
    pub writes: u64,
    pub sensitive: u64,
    pub ok: u64,
}

/// The first activity of a value.
pub fn first_activity(a: &AttrStats, watermark: i64) -> Burst {
    let mut b = Burst {
        start: a.first,
        end: a.first + 1,
        ..Burst::default()
    };
    let mut prev: Option<i64> = None;
    let last_hour = watermark.div_euclid(HOUR);
    for (h, x) in &a.early {
        if *h > last_hour || prev.is_some_and(|p| h - p > 2) {
            break;
        }
        prev = Some(*h);
        b.calls += x.calls as u64;
        b.writes += x.writes as u64;
        b.sensitive += x.sensitive as u64;
        b.ok += x.ok as u64;
        b.end = b.end.max(h * HOUR + x.last as i64 + 1);
    }
    b
}

/// Values of `kind` grouped by `group` (a network, an agent family).
fn grouped(
    ks: &KeySeries,
    kind: AttrKind,
    group: impl Fn(&str) -> String,
) -> BTreeMap<String, AttrStats> {
    let mut out: BTreeMap<String, AttrStats> = BTreeMap::new();
    for (v, a) in ks.attrs_of(kind) {
        out.entry(group(v)).or_default().merge(a);
    }
    out
}

/// Values first seen within `churn_days` before `first` (but at least a day before it).
fn churn(firsts: &[i64], first: i64, churn_days: i64) -> usize {
    firsts
        .iter()
        .filter(|&&f| f >= first - churn_days * DAY && f < first - DAY)
        .count()
}

fn severity_for(rule: &AnomalyRule, b: &Burst) -> crate::finding::Severity {
    if b.writes > 0 {
        rule.severity_param("severity_write").max(rule.severity)
    } else {
        rule.severity
    }
}

fn list(values: &[&String], max: usize) -> String {
    let mut s: Vec<&str> = values.iter().take(max).map(|v| v.as_str()).collect();
    if values.len() > max {
        s.push("...");
    }
    s.join(", ")
}

/// `anomaly.new-network`.
pub fn new_network(ks: &KeySeries, rule: &AnomalyRule, watermark: i64) -> Vec<Signal> {
    let v4 = rule.int("ipv4_prefix").clamp(1, 32) as u8;
    let v6 = rule.int("ipv6_prefix").clamp(1, 128) as u8;
    let learning = rule.int("learning_days") * DAY;
    let mut out = Vec::new();
    for (kind, via_proxy) in [(AttrKind::SourceIp, false), (AttrKind::ProxyIp, true)] {
        let nets = grouped(ks, kind, |ip| network_of(ip, v4, v6));
        let Some(ns_first) = nets.values().map(|a| a.first).min() else {
            continue;
        };
        let learn_end = ns_first + learning;
        let mut firsts: Vec<i64> = nets.values().map(|a| a.first).collect();
        firsts.sort_unstable();
        for (net, a) in &nets {
            if a.first < learn_end || a.first > watermark {
                continue;
            }
            if churn(&firsts, a.first, rule.int("churn_days")) >= rule.int("churn_limit") as usize {
                continue;
            }
            let b = first_activity(a, watermark);
            let known: Vec<&String> = nets
                .iter()
                .filter(|(_, x)| x.first < a.first)
                .map(|(n, _)| n)
                .collect();
            let mut v = BTreeMap::new();
            v.insert("network", net.clone());
            v.insert("networks", list(&known, 5));
            v.insert("calls", human_count(b.calls as f64));
            v.insert("writes", human_count(b.writes as f64));
            v.insert("learning_until", rfc3339(learn_end));
            let evidence = serde_json::json!({
                "network": net,
                "via": if via_proxy { "proxy" } else { "log" },
                "first_seen": rfc3339(a.first),
                "observed": b.calls,
                "expected": 0,
                "writes": b.writes,
                "sensitive_writes": b.sensitive,
                "known_networks": known,
                "baseline": {
                    "kind": "networks seen before",
                    "learning_until": rfc3339(learn_end),
                },
            });
            out.push(signal(
                rule,
                &ks.key,
                severity_for(rule, &b),
                b.start,
                b.end,
                a.first.div_euclid(HOUR) * HOUR,
                v,
                evidence,
                SampleFilter::Network {
                    cidr: net.clone(),
                    via_proxy,
                },
            ));
        }
    }
    out
}

/// `anomaly.new-user-agent`.
pub fn new_user_agent(ks: &KeySeries, rule: &AnomalyRule, watermark: i64) -> Vec<Signal> {
    let families = rule.flag("ignore_versions");
    let agents = grouped(ks, AttrKind::UserAgent, |ua| {
        if families {
            user_agent_family(ua)
        } else {
            ua.to_string()
        }
    });
    let learn_end = ks.first + rule.int("learning_days") * DAY;
    let mut firsts: Vec<i64> = agents.values().map(|a| a.first).collect();
    firsts.sort_unstable();
    let mut out = Vec::new();
    for (ua, a) in &agents {
        if a.first < learn_end || a.first > watermark {
            continue;
        }
        if churn(&firsts, a.first, rule.int("churn_days")) >= rule.int("churn_limit") as usize {
            continue;
        }
        let b = first_activity(a, watermark);
        let mut v = BTreeMap::new();
        v.insert("user_agent", ua.clone());
        v.insert("calls", human_count(b.calls as f64));
        v.insert("writes", human_count(b.writes as f64));
        v.insert("learning_until", rfc3339(learn_end));
        let known: Vec<&String> = agents
            .iter()
            .filter(|(_, x)| x.first < a.first)
            .map(|(n, _)| n)
            .collect();
        let evidence = serde_json::json!({
            "user_agent": ua,
            "first_seen": rfc3339(a.first),
            "observed": b.calls,
            "expected": 0,
            "writes": b.writes,
            "known_user_agents": known,
            "baseline": {"kind": "user agents seen before", "learning_until": rfc3339(learn_end)},
        });
        out.push(signal(
            rule,
            &ks.key,
            severity_for(rule, &b),
            b.start,
            b.end,
            a.first.div_euclid(HOUR) * HOUR,
            v,
            evidence,
            SampleFilter::UserAgent { family: ua.clone() },
        ));
    }
    out
}

/// `anomaly.new-route`.
pub fn new_route(ks: &KeySeries, rule: &AnomalyRule, watermark: i64) -> Vec<Signal> {
    let learn_end = ks.first + rule.int("learning_days") * DAY;
    let mut out = Vec::new();
    for (route, a) in ks.attrs_of(AttrKind::Route) {
        if a.first < learn_end || a.first > watermark {
            continue;
        }
        let access = a.access.unwrap_or(Access::Read);
        if access == Access::Read && !rule.flag("reads") {
            continue;
        }
        let severity = match access {
            Access::Read => rule.severity,
            Access::Write => rule.severity_param("severity_write"),
            Access::Sensitive => rule.severity_param("severity_sensitive"),
        };
        let b = first_activity(a, watermark);
        let mut v = BTreeMap::new();
        v.insert("route", route.to_string());
        v.insert("access", access.as_str().to_string());
        v.insert("calls", human_count(b.calls as f64));
        v.insert("ok", human_count(b.ok as f64));
        v.insert("learning_until", rfc3339(learn_end));
        let evidence = serde_json::json!({
            "route": route,
            "access": access,
            "first_seen": rfc3339(a.first),
            "observed": b.calls,
            "expected": 0,
            "ok": b.ok,
            "baseline": {"kind": "routes used before", "learning_until": rfc3339(learn_end)},
        });
        out.push(signal(
            rule,
            &ks.key,
            severity,
            b.start,
            b.end,
            a.first.div_euclid(HOUR) * HOUR,
            v,
            evidence,
            SampleFilter::Route {
                route: route.to_string(),
            },
        ));
    }
    out
}

/// Hour of the week, Monday 00:00 UTC = 0.
pub fn hour_of_week(hour: i64) -> usize {
    let day = (hour * HOUR).div_euclid(DAY);
    let dow = (day + 3).rem_euclid(7); // 1970-01-01 was a Thursday
    (dow * 24 + hour.rem_euclid(24)) as usize
}

fn slot_name(slot: usize) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    format!(
        "{} {:02}:00-{:02}:59 UTC",
        DAYS[slot / 24],
        slot % 24,
        slot % 24
    )
}

/// `anomaly.off-hours`.
pub fn off_hours(ks: &KeySeries, rule: &AnomalyRule, watermark: i64) -> Vec<Signal> {
    let learn_end = ks.first + rule.int("learning_days") * DAY;
    let tol = rule.int("tolerance_hours").clamp(0, 12) as usize;
    let max_share = rule.float("max_active_share");
    let stable_h = rule.int("stable_days") * 24;
    let max_new = rule.int("max_new_slots") as usize;
    let min_calls = rule.int("min_calls").max(1) as u32;
    let mut active = [false; 168];
    let mut covered = [false; 168]; // active within the tolerance
    let mut covered_count = 0usize;
    // off-pattern activations (hour): a slot first used outside the pattern
    let mut activations: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    // the open run: (first hour, last hour, slots to learn when it closes)
    let mut run: Option<(i64, i64, Vec<usize>)> = None;
    let mut runs: Vec<(i64, i64)> = Vec::new();
    let activate = |slot: usize,
                    active: &mut [bool; 168],
                    covered: &mut [bool; 168],
                    covered_count: &mut usize| {
        active[slot] = true;
        for d in 0..=2 * tol {
            let s = (slot + 168 + d - tol) % 168;
            if !covered[s] {
                covered[s] = true;
                *covered_count += 1;
            }
        }
    };
    let wm_hour = watermark.div_euclid(HOUR);
    for (&h, b) in &ks.hours {
        if h > wm_hour {
            break;
        }
        if let Some((_, last, pending)) = &run {
            if h - last > 1 {
                let (first, last, pending) = run.take().expect("open run");
                runs.push((first, last));
                for s in pending {
                    activate(s, &mut active, &mut covered, &mut covered_count);
                }
            } else {
                let _ = pending;
            }
        }
        let slot = hour_of_week(h);
        let judged = h * HOUR >= learn_end;
        let recent = activations
            .iter()
            .filter(|&&a| a >= h - stable_h && a < h - 2)
            .count();
        let share = covered_count as f64 / 168.0;
        let off = !covered[slot];
        let flagged =
            judged && off && b.calls >= min_calls && share <= max_share && recent <= max_new;
        if off {
            activations.push(h);
        }
        if flagged {
            match &mut run {
                Some((_, last, pending)) => {
                    *last = h;
                    pending.push(slot);
                }
                None => run = Some((h, h, vec![slot])),
            }
        } else {
            if let Some((first, last, pending)) = run.take() {
                runs.push((first, last));
                for s in pending {
                    activate(s, &mut active, &mut covered, &mut covered_count);
                }
            }
            activate(slot, &mut active, &mut covered, &mut covered_count);
        }
    }
    if let Some((first, last, _)) = run.take() {
        runs.push((first, last));
    }
    let _ = active;
    for (first, last) in runs {
        let mut calls = 0u64;
        let mut writes = 0u64;
        let mut start = i64::MAX;
        let mut end = i64::MIN;
        let mut slots = BTreeSet::new();
        for (&h, b) in ks.hours.range(first..=last) {
            calls += b.calls as u64;
            writes += b.writes as u64;
            start = start.min(h * HOUR + b.first as i64);
            end = end.max(h * HOUR + b.last as i64 + 1);
            slots.insert(hour_of_week(h));
        }
        let slot_text: Vec<String> = slots.iter().map(|s| slot_name(*s)).collect();
        let mut v = BTreeMap::new();
        v.insert("slot", slot_text.join(", "));
        v.insert("calls", human_count(calls as f64));
        v.insert("writes", human_count(writes as f64));
        v.insert("learning_until", rfc3339(learn_end));
        let evidence = serde_json::json!({
            "hours_of_week": slot_text,
            "observed": calls,
            "expected": 0,
            "writes": writes,
            "baseline": {
                "kind": "hours of the week the key was active in",
                "learning_until": rfc3339(learn_end),
            },
        });
        let severity = if writes > 0 {
            rule.severity_param("severity_write").max(rule.severity)
        } else {
            rule.severity
        };
        out.push(signal(
            rule,
            &ks.key,
            severity,
            start,
            end,
            first * HOUR,
            v,
            evidence,
            SampleFilter::Any,
        ));
    }
    out
}

/// `anomaly.dormant-key-active`.
pub fn dormant(
    ks: &KeySeries,
    active_days: &BTreeSet<i64>,
    rule: &AnomalyRule,
    watermark: i64,
) -> Vec<Signal> {
    let silent = rule.int("days") * DAY;
    let share = rule.float("coverage_share");
    let hours: Vec<i64> = ks.hours.keys().copied().collect();
    let mut out = Vec::new();
    for (i, w) in hours.windows(2).enumerate() {
        let (before, after) = (w[0], w[1]);
        if (after - before) * HOUR < silent || after * HOUR > watermark {
            continue;
        }
        let d0 = (before * HOUR).div_euclid(DAY) + 1;
        let d1 = (after * HOUR).div_euclid(DAY) - 1;
        let total = d1 - d0 + 1;
        let covered = active_days.range(d0..=d1.max(d0)).count() as i64;
        if total <= 0 || (covered as f64) < share * total as f64 {
            continue;
        }
        // activity after the silence, while it goes on (pauses up to two hours, one day)
        let mut calls = 0u64;
        let mut writes = 0u64;
        let mut prev = after;
        let b0 = &ks.hours[&after];
        let start = after * HOUR + b0.first as i64;
        let mut end = start + 1;
        for &h in &hours[i + 1..] {
            if h - prev > 2 || h - after >= 24 || h * HOUR > watermark {
                break;
            }
            let b = &ks.hours[&h];
            calls += b.calls as u64;
            writes += b.writes as u64;
            end = h * HOUR + b.last as i64 + 1;
            prev = h;
        }
        let last_seen = before * HOUR + ks.hours[&before].last as i64;
        let days = (start - last_seen) / DAY;
        let mut v = BTreeMap::new();
        v.insert("days", days.to_string());
        v.insert("last_seen", rfc3339(last_seen));
        v.insert("calls", human_count(calls as f64));
        v.insert("writes", human_count(writes as f64));
        let evidence = serde_json::json!({
            "silent_days": days,
            "last_seen_before": rfc3339(last_seen),
            "observed": calls,
            "expected": 0,
            "writes": writes,
            "covered_days": covered,
            "gap_days": total,
            "baseline": {"kind": "silence", "days": rule.int("days")},
        });
        let severity = if writes > 0 {
            rule.severity_param("severity_write").max(rule.severity)
        } else {
            rule.severity
        };
        out.push(signal(
            rule,
            &ks.key,
            severity,
            start,
            end,
            after * HOUR,
            v,
            evidence,
            SampleFilter::Any,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_of_week_start_on_monday() {
        // 2026-11-23 is a Monday
        let monday = chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        assert_eq!(hour_of_week(monday / HOUR), 9);
        assert_eq!(hour_of_week(monday / HOUR + 24 * 6 + 1), 6 * 24 + 10);
        assert_eq!(slot_name(9), "Mon 09:00-09:59 UTC");
    }
}
