//! The watch's detectors: pure functions of what the watch has seen (objects known from earlier
//! polls and objects new or changed in this one), the proxy's record of who made each change, and
//! the open leaks and anomalies in the store. Everything is judged in the objects' own time, so a
//! first run over its look-back finds what a watch running all along would have found, whatever
//! the poll boundaries.

use super::attribution::{made_by, Concern, Concerns, MadeBy, ProxiedCalls};
use super::model::{BalancePoint, Beneficiary, Transfer, Webhook};
use super::rules::{WatchRule, WatchRules};
use crate::finding::{Finding, Recommendation, Severity};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

mod account;
mod payments;
#[cfg(test)]
mod tests;

pub use account::url_host;
use account::{balance_drop, webhook_changed};
use payments::{amount_outlier, new_destination, new_payee_paid, payout_burst};

/// One object as this poll sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Obs<T> {
    pub item: T,
    /// New or changed in this poll (not judged before).
    pub fresh: bool,
    /// The version before, when this poll saw it change.
    pub previous: Option<T>,
}

impl<T> Obs<T> {
    pub fn known(item: T) -> Obs<T> {
        Obs {
            item,
            fresh: false,
            previous: None,
        }
    }
}

/// What the detectors look at.
#[derive(Debug, Clone, Default)]
pub struct WatchData {
    /// The watcher's name: part of every finding id.
    pub watcher: String,
    pub now: DateTime<Utc>,
    /// Transfers, oldest first.
    pub transfers: Vec<Obs<Transfer>>,
    /// The beneficiaries the transfers pay, by id.
    pub beneficiaries: HashMap<String, Obs<Beneficiary>>,
    pub webhooks: Vec<Obs<Webhook>>,
    /// Balance history points, oldest first.
    pub balances: Vec<Obs<BalancePoint>>,
    /// On a first run: webhooks created before this are the account's baseline, not news.
    pub webhook_baseline: Option<DateTime<Utc>>,
    /// Payees of new transfers that Airwallex says no longer exist (404).
    pub gone_beneficiaries: std::collections::HashSet<String>,
}

/// Who made changes, and what else is open on the keys.
pub struct Context<'a> {
    pub calls: &'a dyn ProxiedCalls,
    pub concerns: &'a Concerns,
}

/// The findings, and lookups that failed (the finding then says the attribution is unknown).
#[derive(Debug, Default)]
pub struct Detection {
    pub findings: Vec<Finding>,
    pub problems: Vec<String>,
}

/// Runs every rule in force.
pub fn detect(rules: &WatchRules, data: &WatchData, ctx: &Context<'_>) -> Detection {
    let mut out = Detection::default();
    for rule in &rules.rules {
        let drafts = match rule.detector.as_str() {
            "new-payee-paid" => new_payee_paid(rule, data, ctx, &mut out.problems),
            "amount-outlier" => amount_outlier(rule, data, ctx, &mut out.problems),
            "new-destination" => new_destination(rule, data, ctx, &mut out.problems),
            "payout-burst" => payout_burst(rule, data, ctx, &mut out.problems),
            "webhook-changed" => webhook_changed(rule, data, ctx, &mut out.problems),
            "balance-drop" => balance_drop(rule, data, ctx, &mut out.problems),
            _ => Vec::new(),
        };
        out.findings
            .extend(drafts.into_iter().map(|d| d.finish(rule, data, ctx)));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Formatting

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn fmt_amount(a: f64) -> String {
    let s = format!("{:.2}", a.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}.{frac}", if a < 0.0 { "-" } else { "" })
}

pub fn fmt_age(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let plural = |n: i64, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if s < 60 {
        plural(s, "second")
    } else if s < 3600 {
        plural(s / 60, "minute")
    } else if s < 86_400 {
        let (h, m) = (s / 3600, (s % 3600) / 60);
        if m == 0 {
            plural(h, "hour")
        } else {
            format!("{} {}", plural(h, "hour"), plural(m, "minute"))
        }
    } else {
        plural(s / 86_400, "day")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// Fills `{name}` placeholders.
pub fn render(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) if vars.contains_key(&after[..j]) => {
                out.push_str(&vars[&after[..j]]);
                rest = &after[j + 1..];
            }
            Some(j) => {
                out.push('-');
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

// ---------------------------------------------------------------------------------------------
// Robust statistics

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median and MAD (scaled to a standard deviation under normality).
fn median_mad(values: &[f64]) -> (f64, f64) {
    let mut v = values.to_vec();
    let m = median(&mut v);
    let mut d: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    (m, 1.4826 * median(&mut d))
}

// ---------------------------------------------------------------------------------------------
// Findings

/// A finding in the making.
struct Draft {
    /// What makes it the same finding on every poll (besides the rule and watcher).
    subject: Vec<String>,
    severity: Severity,
    vars: BTreeMap<&'static str, String>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    evidence: Value,
    /// The changes behind it, the most telling first (the payout before its payee).
    made_by: Vec<MadeBy>,
}

impl Draft {
    fn new(
        rule: &WatchRule,
        subject: Vec<String>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Draft {
        Draft {
            subject,
            severity: rule.severity,
            vars: BTreeMap::new(),
            start,
            end,
            evidence: json!({}),
            made_by: Vec::new(),
        }
    }

    fn finish(mut self, rule: &WatchRule, data: &WatchData, ctx: &Context<'_>) -> Finding {
        // The keys behind the changes; an open leak or anomaly on them raises the severity. A
        // change from outside the proxy could have been made by any leaked key of the account.
        let keys: Vec<&str> = {
            let mut k: Vec<&str> = self
                .made_by
                .iter()
                .filter_map(|m| m.key.as_deref())
                .collect();
            k.dedup();
            k
        };
        let outside = self.made_by.iter().any(|m| m.key.is_none());
        let mut concerns: Vec<&Concern> = keys.iter().flat_map(|k| ctx.concerns.on(k)).collect();
        if outside {
            for c in &ctx.concerns.list {
                if !concerns.contains(&c) {
                    concerns.push(c);
                }
            }
        }
        let leak = concerns.iter().any(|c| c.leak);
        let raised = if leak {
            Severity::Critical
        } else if !concerns.is_empty() {
            Severity::High
        } else {
            self.severity
        };
        let severity = self.severity.max(raised);
        let concern_text = if concerns.is_empty() {
            String::new()
        } else {
            let what: Vec<String> = concerns.iter().map(|c| c.describe()).collect();
            if severity > self.severity {
                format!("{severity} because {}", what.join("; "))
            } else {
                what.join("; ")
            }
        };
        self.vars.insert("watcher", data.watcher.clone());
        self.vars.insert("made_by", made_by_summary(&self.made_by));
        self.vars.insert("concern", concern_text.clone());
        let mut message = render(&rule.message, &self.vars);
        if !concern_text.is_empty() {
            message.push_str(&format!(" — {concern_text}"));
        }
        let subject: Vec<&str> = std::iter::once(data.watcher.as_str())
            .chain(self.subject.iter().map(String::as_str))
            .collect();
        let mut f = Finding::new(&rule.id, severity, message, &subject);
        f.key = self.made_by.iter().find_map(|m| m.key.clone()).filter(|k| {
            self.made_by
                .iter()
                .all(|m| m.key.as_deref().is_none_or(|x| x == k))
        });
        f.start = Some(fmt_time(self.start));
        f.end = Some(fmt_time(self.end));
        if let Value::Object(m) = &mut self.evidence {
            m.insert("watcher".into(), json!(data.watcher));
            m.insert(
                "made_by".into(),
                Value::Array(
                    self.made_by
                        .iter()
                        .map(|mb| {
                            let mut v = serde_json::to_value(mb).expect("serializes");
                            v["who"] = json!(mb.label());
                            v
                        })
                        .collect(),
                ),
            );
            if !concerns.is_empty() {
                m.insert(
                    "concerns".into(),
                    serde_json::to_value(&concerns).expect("serializes"),
                );
            }
        }
        f.evidence = Some(self.evidence);
        f.recommendation = Some(Recommendation {
            action: rule.action,
            steps: rule.steps.iter().map(|s| render(s, &self.vars)).collect(),
            replacement: None,
        });
        f
    }
}

/// `payouts (proxied POST ...)`, or counts when many objects: `no proxied key (9), payouts (3)`.
fn made_by_summary(m: &[MadeBy]) -> String {
    if m.is_empty() {
        return "unknown".into();
    }
    let labels: Vec<String> = m.iter().map(|x| x.label()).collect();
    let mut distinct: Vec<(String, usize)> = Vec::new();
    for l in &labels {
        match distinct.iter_mut().find(|(d, _)| d == l) {
            Some((_, n)) => *n += 1,
            None => distinct.push((l.clone(), 1)),
        }
    }
    if distinct.len() == 1 && m.len() <= 2 {
        return distinct.remove(0).0;
    }
    if m.len() <= 2 {
        return m
            .iter()
            .map(|x| format!("{} {}: {}", x.kind, x.change, x.label()))
            .collect::<Vec<_>>()
            .join("; ");
    }
    distinct
        .iter()
        .map(|(l, n)| {
            let short = l.split(" (").next().unwrap_or(l);
            format!("{short} ({n})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn who(
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
    kind: &'static str,
    object: &str,
    change: &'static str,
) -> MadeBy {
    match made_by(ctx.calls, kind, object, change) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("who {change} {kind} {object}: {e}"));
            MadeBy {
                object: object.to_string(),
                kind,
                change,
                key: None,
                call: None,
            }
        }
    }
}

fn payee_label(b: Option<&Beneficiary>, id: &str) -> String {
    match b {
        Some(b) => {
            let mut parts = Vec::new();
            if let Some(n) = &b.name {
                parts.push(n.clone());
            }
            if let Some(c) = &b.country {
                parts.push(c.clone());
            }
            if let Some(a) = &b.account {
                parts.push(format!("account {a}"));
            }
            if parts.is_empty() {
                id.to_string()
            } else {
                format!("{id} ({})", parts.join(", "))
            }
        }
        None => id.to_string(),
    }
}

fn transfer_vars(d: &mut Draft, t: &Transfer, b: Option<&Beneficiary>) {
    d.vars.insert("transfer", t.id.clone());
    d.vars.insert("amount", fmt_amount(t.amount));
    d.vars.insert("currency", t.currency.clone());
    d.vars.insert("transfer_at", fmt_time(t.created_at));
    let bid = t.beneficiary_id.clone().unwrap_or_else(|| "-".into());
    d.vars.insert("payee", payee_label(b, &bid));
    d.vars.insert("beneficiary", bid);
}

fn transfer_json(t: &Transfer) -> Value {
    json!({
        "id": t.id,
        "beneficiary_id": t.beneficiary_id,
        "amount": t.amount,
        "currency": t.currency,
        "created_at": fmt_time(t.created_at),
        "status": t.status,
    })
}

fn country_of<'a>(t: &'a Transfer, data: &'a WatchData) -> Option<&'a str> {
    t.country.as_deref().or_else(|| {
        t.beneficiary_id
            .as_ref()
            .and_then(|b| data.beneficiaries.get(b))
            .and_then(|b| b.item.country.as_deref())
    })
}

// ---------------------------------------------------------------------------------------------
// Chains of windows: consecutive alarming windows that overlap are one incident, anchored at the
// first object of the first alarming window, so a burst seen over several polls keeps its id.

struct Chain {
    /// Index of the first object of the first alarming window.
    first: usize,
    /// Index of the last alarming object.
    last: usize,
    /// Indexes of the alarming objects.
    firing: Vec<usize>,
}

fn chains(times: &[DateTime<Utc>], firing: &[(usize, usize)], window: Duration) -> Vec<Chain> {
    // firing: (index of the alarming object, index of the first object of its window)
    let mut out: Vec<Chain> = Vec::new();
    for &(j, start) in firing {
        match out.last_mut() {
            Some(c) if times[j] - window <= times[c.last] => {
                c.last = j;
                c.firing.push(j);
            }
            _ => out.push(Chain {
                first: start,
                last: j,
                firing: vec![j],
            }),
        }
    }
    out
}
