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
// watch.new-payee-paid

fn new_payee_paid(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let window = crate::clock::minutes(rule.int("minutes"));
    // Airwallex stamps both objects with its own clock; a minute of slack covers rounding.
    let slack = Duration::minutes(1);
    let mut out = Vec::new();
    for t in data.transfers.iter().filter(|t| t.fresh).map(|t| &t.item) {
        let Some(bid) = &t.beneficiary_id else {
            continue;
        };
        let b = data.beneficiaries.get(bid).map(|b| &b.item);
        let within = |since: DateTime<Utc>| {
            let age = t.created_at - since;
            age >= -slack && age <= window
        };
        let (what, since, change) = match b {
            Some(b) if within(b.created_at) => (
                format!("created {} before", fmt_age(t.created_at - b.created_at)),
                Some(b.created_at),
                "created",
            ),
            Some(b) if b.bank_changed_at.is_some_and(within) => {
                let c = b.bank_changed_at.expect("checked");
                (
                    format!(
                        "whose bank details changed {} before",
                        fmt_age(t.created_at - c)
                    ),
                    Some(c),
                    "changed",
                )
            }
            Some(_) => continue,
            None if rule.flag("unknown_payee") && data.gone_beneficiaries.contains(bid) => (
                "a payee the watch never saw and can no longer read (deleted?)".to_string(),
                None,
                "created",
            ),
            None => continue,
        };
        let start = since.unwrap_or(t.created_at).min(t.created_at);
        let mut d = Draft::new(rule, vec![t.id.clone()], start, t.created_at);
        transfer_vars(&mut d, t, b);
        d.vars.insert("what", what.clone());
        d.vars.insert(
            "age",
            since.map_or("an unknown time".into(), |s| fmt_age(t.created_at - s)),
        );
        d.vars.insert("minutes", rule.int("minutes").to_string());
        d.vars
            .insert("changed_at", since.map_or("-".to_string(), fmt_time));
        d.made_by
            .push(who(ctx, problems, "transfer", &t.id, "created"));
        d.made_by
            .push(who(ctx, problems, "beneficiary", bid, change));
        d.evidence = json!({
            "transfer": transfer_json(t),
            "beneficiary": b.map(|b| json!({
                "id": b.id,
                "name": b.name,
                "country": b.country,
                "currency": b.currency,
                "account": b.account,
                "created_at": fmt_time(b.created_at),
                "bank_details_changed_at": b.bank_changed_at.map(fmt_time),
            })).unwrap_or_else(|| json!({"id": bid, "known": false})),
            "trigger": what,
            "paid_after_seconds": since.map(|s| (t.created_at - s).num_seconds()),
            "window_minutes": rule.int("minutes"),
        });
        out.push(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// watch.amount-outlier

fn amount_outlier(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let min_history = rule.int("min_history").max(1) as usize;
    let horizon = crate::clock::days(rule.int("history_days"));
    let z = rule.float("z");
    let min_ratio = rule.float("min_ratio");
    let floor = rule.float("spread_floor");
    let mut out = Vec::new();
    for t in data.transfers.iter().filter(|t| t.fresh).map(|t| &t.item) {
        if t.amount <= 0.0 {
            continue;
        }
        let earlier = |same: &dyn Fn(&Transfer) -> bool| -> Vec<f64> {
            data.transfers
                .iter()
                .map(|o| &o.item)
                .filter(|o| {
                    o.id != t.id
                        && o.created_at <= t.created_at
                        && o.created_at >= t.created_at - horizon
                        && o.currency == t.currency
                        && o.amount > 0.0
                        && same(o)
                })
                .map(|o| o.amount)
                .collect()
        };
        let to_payee = earlier(&|o: &Transfer| {
            t.beneficiary_id.is_some() && o.beneficiary_id == t.beneficiary_id
        });
        let (amounts, baseline) = if to_payee.len() >= min_history {
            let n = to_payee.len();
            (
                to_payee,
                format!(
                    "the last {n} {} transfers to {}",
                    t.currency,
                    t.beneficiary_id.as_deref().unwrap_or("-")
                ),
            )
        } else {
            let all = earlier(&|_| true);
            if all.len() < min_history {
                continue;
            }
            let n = all.len();
            (
                all,
                format!("the last {n} {} transfers of the account", t.currency),
            )
        };
        let logs: Vec<f64> = amounts.iter().map(|a| a.ln()).collect();
        let (m, mad) = median_mad(&logs);
        let spread = mad.max(floor);
        let score = (t.amount.ln() - m) / spread;
        let typical = m.exp();
        let ratio = t.amount / typical;
        if score < z || ratio < min_ratio {
            continue;
        }
        let band_high = (m + z * spread).exp().max(typical * min_ratio);
        let b = t
            .beneficiary_id
            .as_ref()
            .and_then(|id| data.beneficiaries.get(id))
            .map(|b| &b.item);
        let mut d = Draft::new(rule, vec![t.id.clone()], t.created_at, t.created_at);
        transfer_vars(&mut d, t, b);
        d.vars.insert("median", fmt_amount(typical));
        d.vars.insert("ratio", fmt_ratio(ratio));
        d.vars.insert("band_high", fmt_amount(band_high));
        d.vars.insert("baseline", baseline.clone());
        d.vars.insert("history", amounts.len().to_string());
        d.made_by
            .push(who(ctx, problems, "transfer", &t.id, "created"));
        d.evidence = json!({
            "transfer": transfer_json(t),
            "observed": t.amount,
            "expected": {"median": typical, "band_high": band_high},
            "ratio": ratio,
            "robust_z": score,
            "baseline": baseline,
            "history": amounts.len(),
        });
        out.push(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// watch.new-destination

fn new_destination(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let min_history = rule.int("min_history").max(1) as usize;
    let horizon = crate::clock::days(rule.int("history_days"));
    let mut out = Vec::new();
    for (i, t) in data.transfers.iter().enumerate().filter(|(_, t)| t.fresh) {
        let t = &t.item;
        // Transfers before this one (same second: earlier in the list) within the horizon.
        let history: Vec<&Transfer> = data.transfers[..i]
            .iter()
            .map(|o| &o.item)
            .filter(|o| o.created_at >= t.created_at - horizon)
            .collect();
        if history.len() < min_history {
            continue;
        }
        let mut signals = Vec::new();
        let country = country_of(t, data);
        if rule.flag("countries") {
            if let Some(c) = country {
                if !history.iter().any(|h| country_of(h, data) == Some(c)) {
                    signals.push(format!("country {c}"));
                }
            }
        }
        if rule.flag("currencies") && !history.iter().any(|h| h.currency == t.currency) {
            signals.push(format!("currency {}", t.currency));
        }
        if signals.is_empty() {
            continue;
        }
        let b = t
            .beneficiary_id
            .as_ref()
            .and_then(|id| data.beneficiaries.get(id))
            .map(|b| &b.item);
        let mut d = Draft::new(rule, vec![t.id.clone()], t.created_at, t.created_at);
        transfer_vars(&mut d, t, b);
        d.vars.insert("what", signals.join(" and "));
        d.vars.insert("country", country.unwrap_or("-").to_string());
        d.vars.insert("history", history.len().to_string());
        d.made_by
            .push(who(ctx, problems, "transfer", &t.id, "created"));
        let mut seen_countries: Vec<&str> =
            history.iter().filter_map(|h| country_of(h, data)).collect();
        seen_countries.sort_unstable();
        seen_countries.dedup();
        let mut seen_currencies: Vec<&str> = history.iter().map(|h| h.currency.as_str()).collect();
        seen_currencies.sort_unstable();
        seen_currencies.dedup();
        d.evidence = json!({
            "transfer": transfer_json(t),
            "country": country,
            "signals": signals,
            "history": history.len(),
            "countries_paid": seen_countries,
            "currencies_paid": seen_currencies,
            "history_days": rule.int("history_days"),
        });
        out.push(d);
    }
    out
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

// ---------------------------------------------------------------------------------------------
// watch.payout-burst

fn payout_burst(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let w = crate::clock::minutes(rule.int("window_minutes"));
    let min_count = rule.int("min_count").max(1) as usize;
    let ratio = rule.float("ratio");
    let sum_ratio = rule.float("sum_ratio");
    let min_history = rule.int("min_history").max(0) as usize;
    let horizon = crate::clock::days(rule.int("history_days"));
    let Some(first_fresh) = data
        .transfers
        .iter()
        .filter(|t| t.fresh)
        .map(|t| t.item.created_at)
        .min()
    else {
        return Vec::new();
    };
    let ts: Vec<&Transfer> = data
        .transfers
        .iter()
        .map(|t| &t.item)
        .filter(|t| t.created_at >= first_fresh - horizon - w)
        .collect();
    let fresh: std::collections::HashSet<&str> = data
        .transfers
        .iter()
        .filter(|t| t.fresh)
        .map(|t| t.item.id.as_str())
        .collect();
    let times: Vec<DateTime<Utc>> = ts.iter().map(|t| t.created_at).collect();
    let n = ts.len();
    // (alarming index, its window's first index, the signal)
    let mut firing: BTreeMap<usize, (usize, Vec<String>, usize)> = BTreeMap::new();
    // Count over all payouts.
    {
        let mut l = 0;
        let mut peak_before: Vec<usize> = vec![0; n + 1]; // max window count among windows 0..i
        let mut counts = vec![0usize; n];
        for j in 0..n {
            while times[l] < times[j] - w {
                l += 1;
            }
            counts[j] = j - l + 1;
            peak_before[j + 1] = peak_before[j].max(counts[j]);
            let peak = peak_before[l]; // windows ending before this one starts
            let c = counts[j];
            if c >= min_count && (l < min_history || c as f64 >= ratio * peak as f64) {
                let e = firing.entry(j).or_insert((l, Vec::new(), peak));
                e.1.push(if l < min_history {
                    format!(
                        "{c} payouts in {} (no norm yet: {l} payouts before; at most {} \
                         expected)",
                        fmt_age(w),
                        min_count - 1
                    )
                } else {
                    format!(
                        "{c} payouts in {} where the most in any {} before was {peak}",
                        fmt_age(w),
                        fmt_age(w)
                    )
                });
            }
        }
    }
    // Sum per currency.
    let mut by_cur: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in ts.iter().enumerate() {
        by_cur.entry(t.currency.as_str()).or_default().push(i);
    }
    for (cur, idx) in &by_cur {
        let mut l = 0;
        let mut sum = 0.0;
        let mut peak_before: Vec<f64> = vec![0.0; idx.len() + 1];
        for (k, &j) in idx.iter().enumerate() {
            sum += ts[j].amount;
            while times[idx[l]] < times[j] - w {
                sum -= ts[idx[l]].amount;
                l += 1;
            }
            peak_before[k + 1] = peak_before[k].max(sum);
            let peak = peak_before[l];
            let count = k - l + 1;
            if l >= min_history.max(1) && count >= 2 && peak > 0.0 && sum >= sum_ratio * peak {
                let start = idx[l];
                let e = firing.entry(j).or_insert((start, Vec::new(), 0));
                e.0 = e.0.min(start);
                e.1.push(format!(
                    "{} {cur} in {} where the most in any {} before was {} {cur}",
                    fmt_amount(sum),
                    fmt_age(w),
                    fmt_age(w),
                    fmt_amount(peak)
                ));
            }
        }
    }
    let list: Vec<(usize, usize)> = firing.iter().map(|(j, (s, _, _))| (*j, *s)).collect();
    let mut out = Vec::new();
    for c in chains(&times, &list, w) {
        let members: Vec<&Transfer> = ts[c.first..=c.last].to_vec();
        if !members.iter().any(|t| fresh.contains(t.id.as_str())) {
            continue;
        }
        let anchor = members[0];
        // The strongest signal of each kind (the last firing window holds the most).
        let mut signals: Vec<String> = Vec::new();
        let mut peak_count = 0;
        for j in &c.firing {
            let (_, s, p) = &firing[j];
            for x in s {
                let kind = x.split(" where ").next().unwrap_or(x);
                let kind = kind.split_once(' ').map_or(kind, |(_, k)| k);
                signals.retain(|y: &String| {
                    let yk = y.split(" where ").next().unwrap_or(y);
                    yk.split_once(' ').map_or(yk, |(_, k)| k) != kind
                });
                signals.push(x.clone());
            }
            peak_count = peak_count.max(*p);
        }
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        for t in &members {
            *sums.entry(t.currency.as_str()).or_insert(0.0) += t.amount;
        }
        let sums_text: Vec<String> = sums
            .iter()
            .map(|(c, s)| format!("{} {c}", fmt_amount(*s)))
            .collect();
        let start = anchor.created_at;
        let end = members.last().expect("non-empty").created_at;
        let mut d = Draft::new(rule, vec![anchor.id.clone()], start, end);
        d.vars.insert("count", members.len().to_string());
        d.vars.insert("window", fmt_age(w));
        d.vars.insert("start", fmt_time(start));
        d.vars.insert("end", fmt_time(end));
        d.vars.insert("sums", sums_text.join(", "));
        d.vars.insert("what", signals.join("; "));
        d.vars.insert(
            "expected",
            format!("at most {peak_count} in any {} before", fmt_age(w)),
        );
        let ids: Vec<&str> = members.iter().map(|t| t.id.as_str()).collect();
        d.vars.insert(
            "transfers",
            if ids.len() > 5 {
                format!("{} and {} more", ids[..5].join(", "), ids.len() - 5)
            } else {
                ids.join(", ")
            },
        );
        for t in &members {
            d.made_by
                .push(who(ctx, problems, "transfer", &t.id, "created"));
        }
        d.evidence = json!({
            "count": members.len(),
            "window_minutes": rule.int("window_minutes"),
            "sums": sums,
            "signals": signals,
            "expected": {"peak_count_before": peak_count},
            "transfers": members.iter().take(50).map(|t| transfer_json(t)).collect::<Vec<_>>(),
        });
        out.push(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// watch.webhook-changed

/// The host of a URL (lowercase, without port).
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = auth.rsplit('@').next().unwrap_or(auth);
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or(host)
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or(host)
    };
    host.to_ascii_lowercase()
}

fn webhook_changed(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let trusted: Vec<String> = rule
        .strings("trusted_hosts")
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut out = Vec::new();
    for w in data.webhooks.iter().filter(|w| w.fresh) {
        let (what, change) = match &w.previous {
            None => {
                if data.webhook_baseline.is_some_and(|b| w.item.created_at < b) {
                    continue;
                }
                ("created".to_string(), "created")
            }
            Some(p) if p.url != w.item.url => (format!("changed from {}", p.url), "changed"),
            Some(_) => continue,
        };
        let host = url_host(&w.item.url);
        let is_trusted = trusted
            .iter()
            .any(|t| host == *t || host.ends_with(&format!(".{t}")));
        let at = if change == "created" {
            w.item.created_at
        } else {
            data.now
        };
        let mut d = Draft::new(rule, vec![w.item.id.clone(), w.item.url.clone()], at, at);
        if is_trusted {
            d.severity = rule.severity_param("severity_trusted");
        }
        d.vars.insert("webhook", w.item.id.clone());
        d.vars.insert("url", w.item.url.clone());
        d.vars.insert("host", host.clone());
        d.vars.insert("what", what.clone());
        d.vars.insert(
            "previous_url",
            w.previous.as_ref().map_or("-".into(), |p| p.url.clone()),
        );
        d.made_by
            .push(who(ctx, problems, "webhook", &w.item.id, change));
        d.evidence = json!({
            "webhook": {
                "id": w.item.id,
                "url": w.item.url,
                "events": w.item.events,
                "created_at": fmt_time(w.item.created_at),
            },
            "previous_url": w.previous.as_ref().map(|p| p.url.clone()),
            "host": host,
            "trusted_host": is_trusted,
        });
        out.push(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// watch.balance-drop

fn balance_drop(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let w = crate::clock::hours(rule.int("window_hours"));
    let z = rule.float("z");
    let min_share = rule.float("min_share");
    let cold_share = rule.float("cold_share");
    let min_windows = rule.int("min_windows").max(1) as usize;
    let horizon = crate::clock::days(rule.int("history_days"));
    let mut by_cur: BTreeMap<&str, Vec<&Obs<BalancePoint>>> = BTreeMap::new();
    for p in &data.balances {
        by_cur.entry(p.item.currency.as_str()).or_default().push(p);
    }
    let mut out = Vec::new();
    for (cur, pts) in by_cur {
        let Some(first_fresh) = pts
            .iter()
            .filter(|p| p.fresh)
            .map(|p| p.item.posted_at)
            .min()
        else {
            continue;
        };
        let pts: Vec<&Obs<BalancePoint>> = pts
            .into_iter()
            .filter(|p| p.item.posted_at >= first_fresh - horizon - w - w)
            .collect();
        let times: Vec<DateTime<Utc>> = pts.iter().map(|p| p.item.posted_at).collect();
        let n = pts.len();
        // The drop at each point: the highest balance since one window before (the level at
        // the window's start included) minus the balance now.
        let mut drops = vec![(0.0f64, 0.0f64, 0usize); n]; // (drop, peak, window start index)
        for j in 0..n {
            let start = times[j] - w;
            let l = times.partition_point(|t| *t < start);
            let carry = l.checked_sub(1).map(|i| pts[i].item.balance);
            let peak = pts[l..=j]
                .iter()
                .map(|p| p.item.balance)
                .chain(carry)
                .fold(f64::MIN, f64::max);
            drops[j] = ((peak - pts[j].item.balance).max(0.0), peak, l.min(j));
        }
        // Each earlier window's worst drop, windows tiled from the epoch; quiet windows between
        // the first and the last count as no drop.
        let tile = |t: DateTime<Utc>| t.timestamp().div_euclid(w.num_seconds().max(1));
        let mut tiles: BTreeMap<i64, f64> = BTreeMap::new();
        for j in 0..n {
            let e = tiles.entry(tile(times[j])).or_insert(0.0);
            *e = e.max(drops[j].0);
        }
        let mut firing = Vec::new();
        let mut bands: HashMap<usize, (f64, usize, f64)> = HashMap::new();
        for j in 0..n {
            let (drop, peak, l) = drops[j];
            if drop <= 0.0 || peak <= 0.0 {
                continue;
            }
            let share = drop / peak;
            let here = tile(times[j]);
            let first_tile = tile(times[j] - horizon);
            let hist: Vec<f64> = if first_tile >= here - 1 {
                Vec::new()
            } else {
                match tiles.range(first_tile..here - 1).next() {
                    Some((&k0, _)) => (k0..here - 1)
                        .map(|k| tiles.get(&k).copied().unwrap_or(0.0))
                        .collect(),
                    None => Vec::new(),
                }
            };
            let (fire, band) = if hist.len() >= min_windows {
                let (m, mad) = median_mad(&hist);
                let band = m + z * mad.max(0.01 * peak);
                (drop > band && share >= min_share, band)
            } else {
                (share >= cold_share, peak * cold_share)
            };
            if fire {
                firing.push((j, l));
                bands.insert(j, (band, hist.len(), share));
            }
        }
        for c in chains(&times, &firing, w) {
            let members = &pts[c.first..=c.last];
            if !members.iter().any(|p| p.fresh) {
                continue;
            }
            // The worst point of the chain.
            let worst = *c
                .firing
                .iter()
                .max_by(|a, b| drops[**a].0.total_cmp(&drops[**b].0))
                .expect("a chain has a firing point");
            let (drop, peak, _) = drops[worst];
            let (band, windows, share) = bands[&worst];
            let anchor = &pts[c.firing[0]].item;
            let start = times[drops[c.firing[0]].2];
            let end = times[c.last];
            let mut d = Draft::new(rule, vec![cur.to_string(), anchor.id.clone()], start, end);
            d.vars.insert("currency", cur.to_string());
            d.vars.insert("drop", fmt_amount(drop));
            d.vars.insert("peak", fmt_amount(peak));
            d.vars
                .insert("balance", fmt_amount(pts[worst].item.balance));
            d.vars.insert("share", format!("{:.0}%", share * 100.0));
            d.vars.insert("window", fmt_age(w));
            d.vars.insert("start", fmt_time(start));
            d.vars.insert("end", fmt_time(end));
            let baseline = if windows >= min_windows {
                format!(
                    "its worst {} drops over the last {windows} windows",
                    fmt_age(w)
                )
            } else {
                format!(
                    "too little history ({windows} windows): flagged because it lost at least {:.0}%",
                    cold_share * 100.0
                )
            };
            d.vars.insert("baseline", baseline.clone());
            d.vars.insert("expected", fmt_amount(band));
            // The largest outflows in the chain, and who made them when they name a transfer.
            let mut outflows: Vec<&BalancePoint> = members
                .iter()
                .map(|p| &p.item)
                .filter(|p| p.amount < 0.0)
                .collect();
            outflows.sort_by(|a, b| a.amount.total_cmp(&b.amount));
            outflows.truncate(5);
            d.vars.insert(
                "outflows",
                if outflows.is_empty() {
                    "-".into()
                } else {
                    outflows
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {cur}{}",
                                fmt_amount(p.amount),
                                p.source
                                    .as_ref()
                                    .map_or(String::new(), |s| format!(" ({s})"))
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            );
            for p in &outflows {
                if let Some(s) = &p.source {
                    d.made_by.push(who(ctx, problems, "transfer", s, "created"));
                }
            }
            d.evidence = json!({
                "currency": cur,
                "observed": {"drop": drop, "peak": peak, "balance": pts[worst].item.balance, "share": share},
                "expected": {"band_high": band},
                "baseline": baseline,
                "windows": windows,
                "window_hours": rule.int("window_hours"),
                "outflows": outflows.iter().map(|p| json!({
                    "id": p.id, "amount": p.amount, "posted_at": fmt_time(p.posted_at), "source": p.source,
                })).collect::<Vec<_>>(),
            });
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(fmt_amount(1234567.891), "1,234,567.89");
        assert_eq!(fmt_amount(-950.0), "-950.00");
        assert_eq!(fmt_amount(12.0), "12.00");
        assert_eq!(fmt_age(Duration::minutes(4)), "4 minutes");
        assert_eq!(fmt_age(Duration::minutes(61)), "1 hour 1 minute");
        assert_eq!(fmt_age(Duration::days(3)), "3 days");
        let mut v = BTreeMap::new();
        v.insert("a", "x".to_string());
        assert_eq!(render("{a} and {b} {", &v), "x and - {");
        assert_eq!(
            url_host("https://User@Hooks.Example.com:8443/p?q"),
            "hooks.example.com"
        );
    }

    #[test]
    fn median_and_mad() {
        let (m, mad) = median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]);
        assert_eq!(m, 3.0);
        assert!((mad - 1.4826).abs() < 1e-9);
    }
}
