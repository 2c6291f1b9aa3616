//! Running watch rule examples (`awxguard rules check`): each example is a small account (objects
//! known from earlier polls, objects new in this poll, the proxy's record, open findings) that
//! the rule must fire on, naming the expected key and severity when the example says, or must
//! stay silent on, with every watch rule in force.

use super::attribution::{CallIndex, Concern, Concerns, ProxiedCall};
use super::detect::{detect, Context, Obs, WatchData};
use super::model::{BalancePoint, Beneficiary, Transfer, Webhook};
use super::rules::{Repeat, WatchExample, WatchRules};
use crate::finding::Finding;
use chrono::{DateTime, Duration, Utc};

/// An example that did not behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    pub rule: String,
    /// 1-based index among the rule's examples (or negative examples).
    pub index: usize,
    pub expected_finding: bool,
    pub detail: String,
}

fn copies(repeat: Option<Repeat>) -> Vec<(String, Duration)> {
    match repeat {
        None => vec![(String::new(), Duration::zero())],
        Some(r) => (0..r.times.max(1))
            .map(|i| {
                (
                    format!("-{i}"),
                    Duration::minutes(r.every_minutes * i as i64),
                )
            })
            .collect(),
    }
}

/// The example as the detectors see it.
pub fn example_data(ex: &WatchExample) -> WatchData {
    let mut data = WatchData {
        watcher: "example".into(),
        webhook_baseline: ex.first_run_since,
        gone_beneficiaries: ex.deleted_beneficiaries.iter().cloned().collect(),
        ..WatchData::default()
    };
    for b in &ex.beneficiaries {
        data.beneficiaries.insert(
            b.id.clone(),
            Obs {
                item: Beneficiary {
                    id: b.id.clone(),
                    created_at: b.created_at,
                    bank_changed_at: b.bank_changed_at,
                    name: b.name.clone(),
                    country: b.country.clone(),
                    currency: b.currency.clone(),
                    account: None,
                    bank: String::new(),
                },
                fresh: b.new,
                previous: None,
            },
        );
    }
    for t in &ex.transfers {
        for (suffix, offset) in copies(t.repeat) {
            data.transfers.push(Obs {
                item: Transfer {
                    id: format!("{}{suffix}", t.id),
                    beneficiary_id: t.beneficiary_id.clone(),
                    amount: t.amount,
                    currency: t.currency.clone(),
                    created_at: t.created_at + offset,
                    status: None,
                    country: t.country.clone(),
                },
                fresh: t.new,
                previous: None,
            });
        }
    }
    data.transfers
        .sort_by(|a, b| (a.item.created_at, &a.item.id).cmp(&(b.item.created_at, &b.item.id)));
    for w in &ex.webhooks {
        let item = Webhook {
            id: w.id.clone(),
            url: w.url.clone(),
            events: Vec::new(),
            created_at: w.created_at,
        };
        data.webhooks.push(Obs {
            previous: w.previous_url.as_ref().map(|u| Webhook {
                url: u.clone(),
                ..item.clone()
            }),
            item,
            fresh: w.new,
        });
    }
    for (n, b) in ex.balances.iter().enumerate() {
        for (i, (suffix, offset)) in copies(b.repeat).into_iter().enumerate() {
            let balance = b.balance + b.step * i as f64;
            data.balances.push(Obs {
                item: BalancePoint {
                    id: format!("{}{suffix}", b.id.clone().unwrap_or(format!("bh{n}"))),
                    currency: b.currency.clone(),
                    balance,
                    amount: 0.0,
                    posted_at: b.posted_at + offset,
                    source: None,
                },
                fresh: b.new,
                previous: None,
            });
        }
    }
    data.balances
        .sort_by(|a, b| (a.item.posted_at, &a.item.id).cmp(&(b.item.posted_at, &b.item.id)));
    // Each entry's amount: the change from the currency's previous balance.
    let mut last: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for p in &mut data.balances {
        let prev = last.insert(p.item.currency.clone(), p.item.balance);
        p.item.amount = prev.map_or(0.0, |b| p.item.balance - b);
    }
    let latest = data
        .transfers
        .iter()
        .map(|t| t.item.created_at)
        .chain(data.webhooks.iter().map(|w| w.item.created_at))
        .chain(data.balances.iter().map(|b| b.item.posted_at))
        .chain(data.beneficiaries.values().map(|b| b.item.created_at))
        .max()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    data.now = ex.now.unwrap_or(latest);
    data
}

/// Runs the example with every rule in force; the findings of all rules.
pub fn run_example(rules: &WatchRules, ex: &WatchExample) -> Vec<Finding> {
    let data = example_data(ex);
    let mut calls = CallIndex::default();
    for c in &ex.proxied {
        calls.add(
            &c.object,
            ProxiedCall {
                key: c.key.clone(),
                at: None,
                method: c.method.to_ascii_uppercase(),
                path: c.path.clone(),
            },
        );
    }
    let concerns = Concerns {
        list: ex
            .open_findings
            .iter()
            .filter(|o| o.open)
            .map(|o| Concern {
                key: o.key.clone(),
                fingerprint: None,
                rule: o.rule.clone(),
                finding: "example".into(),
                leak: super::attribution::is_leak_rule(&o.rule),
            })
            .collect(),
    };
    detect(
        rules,
        &data,
        &Context {
            calls: &calls,
            concerns: &concerns,
        },
    )
    .findings
}

impl WatchRules {
    /// Runs every example and negative example; returns the failures and how many ran.
    pub fn check_examples(&self) -> (Vec<ExampleFailure>, usize) {
        let mut failures = Vec::new();
        let mut ran = 0;
        for rule in &self.rules {
            for (expected, set) in [(true, &rule.examples), (false, &rule.negative_examples)] {
                for (i, ex) in set.iter().enumerate() {
                    ran += 1;
                    let found = run_example(self, ex);
                    let hits: Vec<&Finding> = found.iter().filter(|f| f.rule == rule.id).collect();
                    let fail = |detail: String| ExampleFailure {
                        rule: rule.id.clone(),
                        index: i + 1,
                        expected_finding: expected,
                        detail,
                    };
                    match (expected, hits.first()) {
                        (true, None) => failures.push(fail("example not reported".into())),
                        (true, Some(f)) => {
                            if let Some(k) = &ex.expect_key {
                                let got = f.key.clone().unwrap_or_default();
                                if &got != k {
                                    failures.push(fail(format!(
                                        "reported with key {got:?}, expected {k:?}: {}",
                                        f.message
                                    )));
                                }
                            }
                            if let Some(s) = ex.expect_severity {
                                if f.severity != s {
                                    failures.push(fail(format!(
                                        "reported as {}, expected {s}: {}",
                                        f.severity, f.message
                                    )));
                                }
                            }
                        }
                        (false, Some(f)) => {
                            failures.push(fail(format!("negative example reported: {}", f.message)))
                        }
                        (false, None) => {}
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
    fn every_builtin_example_behaves() {
        let (failures, ran) = WatchRules::builtin().check_examples();
        assert!(ran >= 12, "{ran} examples");
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
