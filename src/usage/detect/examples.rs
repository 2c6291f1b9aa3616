//! Running anomaly rule examples: each example is a small stream (background traffic, bursts,
//! literal usage lines) that the rule must fire on, or must stay silent on, with every rule in
//! force.

use super::rules::{AnomalyExample, AnomalyRules, Background, Burst, ExampleKey};
use super::series::{classify, Event, Series, DAY, HOUR};
use super::usage_checks::allowed_routes;
use super::{detect, DetectOptions, KeyDecl};
use crate::airwallex::Catalog;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// An example that did not behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    pub rule: String,
    /// 1-based index among the rule's examples (or negative examples).
    pub index: usize,
    pub expected_finding: bool,
    pub detail: String,
}

/// Parses `"08-18"` (08:00 to 17:59) or `"9"` into an hour range.
fn hours(spec: Option<&str>) -> Result<std::ops::Range<i64>, String> {
    let Some(s) = spec else { return Ok(0..24) };
    let bad = || format!("hours {s:?}: expected \"HH-HH\" (e.g. \"08-18\") or \"HH\"");
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), ""),
    };
    let a: i64 = a.parse().map_err(|_| bad())?;
    let b: i64 = if b.is_empty() {
        a + 1
    } else {
        b.parse().map_err(|_| bad())?
    };
    if !(0..24).contains(&a) || !(1..=24).contains(&b) || a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

/// Parses `"mon-fri"`, `"sat,sun"`, `"mon"` into weekdays (Monday = 0).
fn days(spec: Option<&str>) -> Result<BTreeSet<i64>, String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let Some(s) = spec else {
        return Ok((0..7).collect());
    };
    let idx = |d: &str| {
        NAMES
            .iter()
            .position(|n| *n == d.trim().to_ascii_lowercase())
            .map(|i| i as i64)
            .ok_or_else(|| format!("days {s:?}: {d:?} is not mon, tue, ... sun"))
    };
    let mut out = BTreeSet::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (idx(a)?, idx(b)?);
                let mut d = a;
                loop {
                    out.insert(d);
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => {
                out.insert(idx(part)?);
            }
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn event(
    catalog: &Catalog,
    key: &str,
    ts: i64,
    method: &str,
    path: &str,
    status: u16,
    ip: &Option<String>,
    ua: &Option<String>,
    via: &Option<String>,
) -> Result<Event, String> {
    let method = method.to_ascii_uppercase();
    let (route, scope, access) = classify(catalog, &method, path);
    let source_ip = match ip {
        Some(s) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| format!("source_ip {s:?} is not an IP address"))?,
        ),
        None => None,
    };
    Ok(Event {
        ts,
        key: key.to_string(),
        route,
        scope,
        access,
        status,
        source_ip,
        user_agent: ua.clone(),
        via_proxy: via.as_deref() == Some("proxy"),
        host: None,
        account: None,
    })
}

fn background(b: &Background, catalog: &Catalog, s: &mut Series) -> Result<(), String> {
    let hrs = hours(b.hours.as_deref())?;
    let dys = days(b.days.as_deref())?;
    let e0 = event(
        catalog,
        &b.key,
        0,
        &b.method,
        &b.path,
        b.status,
        &b.source_ip,
        &b.user_agent,
        &b.via,
    )?;
    let mut hour = b.from.timestamp().div_euclid(HOUR);
    let last = b.to.timestamp().div_euclid(HOUR);
    while hour < last {
        let t = hour * HOUR;
        let dow = (t.div_euclid(DAY) + 3).rem_euclid(7);
        if hrs.contains(&hour.rem_euclid(24)) && dys.contains(&dow) {
            for k in 0..12u32 {
                let n = b.per_hour / 12 + u32::from(k < b.per_hour % 12);
                if n > 0 {
                    let e = Event {
                        ts: t + k as i64 * 300 + 17,
                        ..e0.clone()
                    };
                    s.add(&e.as_ref(), n);
                }
            }
        }
        hour += 1;
    }
    Ok(())
}

fn burst(b: &Burst, catalog: &Catalog, s: &mut Series) -> Result<(), String> {
    let e0 = event(
        catalog,
        &b.key,
        0,
        &b.method,
        &b.path,
        b.status,
        &b.source_ip,
        &b.user_agent,
        &b.via,
    )?;
    let minutes = b.minutes.max(1);
    for m in 0..minutes {
        let n = b.count / minutes + u32::from(m < b.count % minutes);
        let e = Event {
            ts: b.at.timestamp() + m as i64 * 60,
            ..e0.clone()
        };
        s.add(&e.as_ref(), n);
    }
    Ok(())
}

impl AnomalyExample {
    /// The example's events as a series.
    pub fn series(&self, catalog: &Catalog) -> Result<Series, String> {
        let mut s = Series::default();
        for b in &self.background {
            background(b, catalog, &mut s)?;
        }
        for b in &self.bursts {
            burst(b, catalog, &mut s)?;
        }
        for (i, line) in self.usage.iter().enumerate() {
            let u = crate::usage::ingest::parse_line(line.as_bytes())
                .map_err(|m| format!("usage line {}: {m}", i + 1))?;
            let e = event(
                catalog,
                &u.key,
                u.ts.timestamp(),
                &u.method,
                &u.path,
                u.status,
                &u.source_ip,
                &u.user_agent,
                &u.via,
            )?;
            s.add(&e.as_ref(), 1);
        }
        Ok(s)
    }

    /// The example's declared keys.
    pub fn declared(&self, catalog: &Catalog) -> Result<Vec<KeyDecl>, String> {
        self.keys.iter().map(|k| decl(k, catalog)).collect()
    }
}

fn decl(k: &ExampleKey, catalog: &Catalog) -> Result<KeyDecl, String> {
    let mut wl = Vec::new();
    for w in &k.ip_whitelist {
        let net = w
            .parse::<ipnet::IpNet>()
            .or_else(|_| w.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| format!("ip_whitelist entry {w:?} is not an address or CIDR"))?;
        wl.push(net);
    }
    let scopes: Option<BTreeSet<String>> = k.scopes.as_ref().map(|v| v.iter().cloned().collect());
    let allowed = scopes
        .as_ref()
        .map(|s| allowed_routes(catalog, s))
        .unwrap_or_default();
    Ok(KeyDecl {
        name: k.name.clone(),
        fingerprint: k.fingerprint.clone(),
        ip_whitelist: wl,
        scopes,
        allowed_routes: allowed,
    })
}

impl AnomalyRules {
    /// Runs every rule's examples (the rule must fire) and negative examples (it must not) with
    /// every rule in force; returns the failures and the number of examples run.
    pub fn check_examples(&self, catalog: &Catalog) -> (Vec<ExampleFailure>, usize) {
        let mut failures = Vec::new();
        let mut ran = 0;
        for rule in &self.rules {
            for (expected, set) in [(true, &rule.examples), (false, &rule.negative_examples)] {
                for (i, ex) in set.iter().enumerate() {
                    ran += 1;
                    let fail = |detail: String| ExampleFailure {
                        rule: rule.id.clone(),
                        index: i + 1,
                        expected_finding: expected,
                        detail,
                    };
                    let (series, declared) = match (ex.series(catalog), ex.declared(catalog)) {
                        (Ok(s), Ok(d)) => (s, d),
                        (Err(e), _) | (_, Err(e)) => {
                            failures.push(fail(e));
                            continue;
                        }
                    };
                    let opts = DetectOptions {
                        declared,
                        ..DetectOptions::default()
                    };
                    let found = detect(&series, self, &opts);
                    let judge_from = ex.judge_from.map(|t| t.timestamp()).unwrap_or(i64::MIN);
                    let hit = found
                        .signals
                        .iter()
                        .find(|s| s.rule == rule.id && s.start >= judge_from);
                    match (expected, hit) {
                        (true, None) => failures.push(fail("example not reported".into())),
                        (false, Some(s)) => {
                            failures.push(fail(format!("negative example reported: {}", s.message)))
                        }
                        _ => {}
                    }
                }
            }
        }
        (failures, ran)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_and_day_specs() {
        assert_eq!(hours(Some("08-18")).unwrap(), 8..18);
        assert_eq!(hours(Some("9")).unwrap(), 9..10);
        assert!(hours(Some("18-08")).is_err());
        assert_eq!(days(Some("mon-fri")).unwrap(), (0..5).collect());
        assert_eq!(days(Some("sat,sun")).unwrap(), [5, 6].into_iter().collect());
        assert_eq!(
            days(Some("fri-mon")).unwrap(),
            [4, 5, 6, 0].into_iter().collect()
        );
        assert!(days(Some("someday")).is_err());
    }
}
