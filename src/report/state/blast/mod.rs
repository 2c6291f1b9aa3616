//! The blast radius of a leaked key: one timeline joining what awxguard knows, from the moment
//! the key became exposed (the commit that introduced it: date, author, file, how long it has
//! been there) to now: whether it is still live, the calls made with it since (by network and
//! user agent, new networks flagged), its anomalies, the money movement the watch saw
//! (beneficiaries, transfers, webhook changes) and whether a proxied key made each change. It
//! ends with what to do, in order: revoke, check these transfers, rotate the integration, clean
//! the history.

mod steps;

use super::usage::{KeyNames, UsageSource};
use super::{is_anomaly, is_leak, KeySection, KeyVerification, StateError};
use crate::config::Config;
use crate::finding::{Commit, Finding, Status};
use crate::store::{Store, StoredFinding};
use crate::watch::model::{Beneficiary, Transfer, Webhook};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use steps::steps;

/// One leaked key's blast radius.
#[derive(Debug, Clone, Serialize)]
pub struct BlastRadius {
    pub key: String,
    pub exposure: Exposure,
    /// The latest verification of the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<KeyVerification>,
    /// Oldest first; the exposure is the first entry.
    pub timeline: Vec<TimelineEntry>,
    /// What to do, in order.
    pub steps: Vec<BlastStep>,
}

/// When and where the key became exposed.
#[derive(Debug, Clone, Serialize)]
pub struct Exposure {
    /// When (the commit's date; else when awxguard first saw the leak), RFC 3339.
    pub at: String,
    /// How long it has been exposed, in days.
    pub days: i64,
    /// The leak finding.
    pub finding: String,
    /// Where (repository or scanned tree, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
    /// Every place the key was found (leak findings).
    pub places: usize,
}

/// One event of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// RFC 3339, UTC.
    pub at: String,
    /// `exposed`, `leak`, `calls`, `anomaly`, `beneficiary`, `transfer`, `webhook`, `finding`,
    /// `verified`.
    pub kind: String,
    pub title: String,
    pub detail: String,
    /// Ids to look up: finding, commit, object ids.
    pub ids: Vec<String>,
    /// Who made the change, for money movement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub made_by: Option<String>,
    /// Worth a look first: a new network, a write, a change from outside the proxy.
    pub attention: bool,
}

/// One step of what to do.
#[derive(Debug, Clone, Serialize)]
pub struct BlastStep {
    /// `revoke`, `check-transfers`, `rotate`, `clean-history`.
    pub action: String,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.to_utc())
        .or_else(|| {
            DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z")
                .ok()
                .map(|t| t.to_utc())
        })
}

fn ts(t: DateTime<Utc>) -> String {
    crate::store::ts(t)
}

/// A commit id as people quote it.
pub fn short_commit(id: &str) -> &str {
    if id.len() > 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}

/// Where a leak is: `repository` from its scan scope.
fn repository(scope: &str) -> Option<String> {
    scope
        .strip_prefix("scan:git:")
        .or_else(|| scope.strip_prefix("scan:tree:"))
        .map(|r| match r.rfind(':') {
            Some(i) if r[i + 1..].contains("..") => r[..i].to_string(),
            _ => r.to_string(),
        })
}

/// The watchers (keys the watch reads with) whose objects the store holds.
fn watchers(store: &dyn Store, config: &Config) -> Result<Vec<String>, StateError> {
    let mut w: BTreeSet<String> = store
        .runs(None)?
        .into_iter()
        .filter_map(|r| r.scope.strip_prefix("watch:").map(str::to_string))
        .collect();
    if let Some(k) = &config.watch.key {
        w.insert(k.clone());
    }
    Ok(w.into_iter().collect())
}

/// Who made an object: the proxied call that recorded its id, or nobody the proxy saw.
struct Maker {
    /// The proxied key, when a proxied call made it.
    key: Option<String>,
    label: String,
}

fn maker(store: &dyn Store, id: &str, created: bool) -> Result<Maker, StateError> {
    let calls = store.object_sightings(id)?;
    let creates = |c: &crate::store::proxy::ObjectSighting| {
        crate::watch::ProxiedCall {
            key: c.key.clone(),
            at: None,
            method: c.method.to_ascii_uppercase(),
            path: c.path.clone(),
        }
        .creates()
    };
    let pick = calls
        .iter()
        .find(|c| creates(c) == created)
        .or(calls.first());
    Ok(match pick {
        Some(c) => Maker {
            key: Some(c.key.clone()),
            label: format!(
                "{} through the proxy ({} {})",
                c.key,
                c.method.to_ascii_uppercase(),
                c.path
            ),
        },
        None => Maker {
            key: None,
            label: "no proxied key: made from outside the proxy (this leaked key, another key, \
                    or someone in the web app)"
                .into(),
        },
    })
}

/// The blast radius of `key`, which has an open leak finding.
#[allow(clippy::too_many_arguments)]
pub fn build(
    key: &KeySection,
    stored: &[StoredFinding],
    key_of: &dyn Fn(&Finding) -> Option<String>,
    usage: &dyn UsageSource,
    store: &dyn Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<BlastRadius, StateError> {
    let name = key.name.as_str();
    let mine: Vec<&StoredFinding> = stored
        .iter()
        .filter(|s| key_of(&s.finding).as_deref() == Some(name))
        .collect();
    // Where and when: the earliest leak, by commit date, else by first sight.
    let when = |s: &StoredFinding| -> DateTime<Utc> {
        s.finding
            .commit
            .as_ref()
            .and_then(|c| parse(&c.date))
            .or_else(|| parse(&s.first_seen))
            .unwrap_or(now)
    };
    let mut leaks: Vec<&StoredFinding> = mine
        .iter()
        .copied()
        .filter(|s| s.finding.rule.starts_with("leak."))
        .filter(|s| s.finding.status != Some(Status::Resolved))
        .collect();
    if leaks.is_empty() {
        leaks = mine
            .iter()
            .copied()
            .filter(|s| is_leak(&s.finding.rule) && s.finding.status != Some(Status::Resolved))
            .collect();
    }
    leaks.sort_by_key(|s| (when(s), s.finding.id.clone()));
    let first = leaks.first().copied();
    let exposed_at = first.map(when).unwrap_or(now);
    let exposure = match first {
        Some(s) => {
            let f = &s.finding;
            // An audit's key-leaked finding names the place in its evidence.
            let (path, line, commit_id) = match &f.path {
                Some(p) => (p.clone(), f.line, None),
                None => {
                    let l = f
                        .evidence
                        .as_ref()
                        .and_then(|e| e.pointer("/observed/leaks/0"))
                        .cloned()
                        .unwrap_or_default();
                    (
                        l["path"].as_str().unwrap_or("").to_string(),
                        l["line"].as_u64(),
                        l["commit"].as_str().map(str::to_string),
                    )
                }
            };
            Exposure {
                at: ts(exposed_at),
                days: (now - exposed_at).num_days(),
                finding: f.id.clone(),
                repository: repository(&s.scope),
                path,
                line,
                commit: f.commit.clone().or(commit_id.map(|id| Commit {
                    id,
                    author: String::new(),
                    date: String::new(),
                    also: Vec::new(),
                })),
                places: leaks.len(),
            }
        }
        None => Exposure {
            at: ts(now),
            days: 0,
            finding: String::new(),
            repository: None,
            path: String::new(),
            line: None,
            commit: None,
            places: 0,
        },
    };

    let mut timeline = Vec::new();
    // The exposure, and the other places.
    for (i, s) in leaks.iter().enumerate() {
        let f = &s.finding;
        let t = when(s);
        let mut ids = vec![f.id.clone()];
        let place = format!(
            "{}{}",
            f.path.as_deref().unwrap_or(&exposure.path),
            f.line.map(|l| format!(":{l}")).unwrap_or_default()
        );
        let mut detail = match repository(&s.scope) {
            Some(r) => format!("{place} in {r}"),
            None => place.clone(),
        };
        if let Some(c) = &f.commit {
            ids.insert(0, short_commit(&c.id).to_string());
            detail.push_str(&format!("; commit {}", short_commit(&c.id)));
            if !c.author.is_empty() {
                detail.push_str(&format!(" by {}", c.author));
            }
            if !c.also.is_empty() {
                detail.push_str(&format!(
                    "; still in {} later commit{}",
                    c.also.len(),
                    if c.also.len() == 1 { "" } else { "s" }
                ));
            }
        }
        detail.push_str(&format!("; exposed for {} days", (now - t).num_days()));
        timeline.push(TimelineEntry {
            at: ts(t),
            kind: if i == 0 { "exposed" } else { "leak" }.into(),
            title: if i == 0 {
                format!("{name} exposed: committed in {place}")
            } else {
                format!("{name} also found in {place}")
            },
            detail,
            ids,
            made_by: None,
            attention: i == 0,
        });
    }

    // Calls since, by network and user agent.
    let names = KeyNames {
        name,
        fingerprint: key.fingerprint.as_deref(),
    };
    let known_networks = usage.networks_before(names, exposed_at);
    // Objects the key created or changed from a network it had not used before the exposure.
    let mut from_new_network: BTreeSet<String> = BTreeSet::new();
    for g in usage.callers(names, exposed_at) {
        let new_network = !known_networks.contains(&g.network);
        if new_network {
            from_new_network.extend(g.object_ids.iter().cloned());
        }
        let mut detail = format!(
            "{} call{} ({} writing, {} refused) until {}; address as {} saw it",
            g.calls,
            if g.calls == 1 { "" } else { "s" },
            g.writes,
            g.errors,
            ts(g.last),
            if g.seen_by == "proxy" {
                "the proxy"
            } else {
                "Airwallex"
            }
        );
        if new_network {
            detail.push_str("; a network this key was not used from before the exposure");
        }
        timeline.push(TimelineEntry {
            at: ts(g.first),
            kind: "calls".into(),
            title: format!(
                "Calls from {}{} with user agent {}",
                g.network,
                if new_network { " (new network)" } else { "" },
                g.user_agent
            ),
            detail,
            ids: g.object_ids.clone(),
            made_by: None,
            attention: new_network || (g.writes > 0 && g.seen_by != "proxy"),
        });
    }

    // Anomalies and other findings on the key since the exposure.
    let exposed_s = ts(exposed_at);
    for s in &mine {
        let f = &s.finding;
        if is_leak(&f.rule) && f.rule.starts_with("leak.") {
            continue;
        }
        let at = f
            .start
            .as_deref()
            .and_then(parse)
            .or_else(|| parse(&s.first_seen))
            .unwrap_or(now);
        if at < exposed_at || f.rule.starts_with("watch.") {
            continue;
        }
        if !is_anomaly(&f.rule) {
            continue;
        }
        timeline.push(TimelineEntry {
            at: ts(at),
            kind: "anomaly".into(),
            title: format!("{} ({})", f.rule, f.severity),
            detail: f.message.clone(),
            ids: vec![f.id.clone()],
            made_by: None,
            attention: true,
        });
    }

    // Money movement the watch saw since the exposure.
    let mut suspect_transfers = Vec::new();
    let mut suspect_payees = Vec::new();
    let mut suspect_webhooks = Vec::new();
    let mut by_others = 0usize;
    let my_names: Vec<&str> = [Some(name), key.fingerprint.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let watchers = watchers(store, config)?;
    for w in &watchers {
        for kind in ["beneficiary", "transfer", "webhook"] {
            for o in store.watch_objects(w, kind, exposed_at)? {
                let created = o.previous.is_none();
                let m = maker(store, &o.object.id, created)?;
                if m.key.as_deref().is_some_and(|k| !my_names.contains(&k)) {
                    by_others += 1;
                    continue;
                }
                // This key through the proxy from its usual network: the integration itself.
                let integration = m.key.is_some() && !from_new_network.contains(&o.object.id);
                let data = o.object.data.clone();
                let (title, detail) = match kind {
                    "beneficiary" => {
                        let b: Option<Beneficiary> = serde_json::from_value(data).ok();
                        let what = b
                            .as_ref()
                            .map(|b| {
                                [
                                    b.name.clone(),
                                    b.country.clone(),
                                    b.currency.clone(),
                                    b.account.clone(),
                                ]
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()
                                .join(", ")
                            })
                            .unwrap_or_default();
                        if !integration {
                            suspect_payees.push(o.object.id.clone());
                        }
                        (
                            format!(
                                "Beneficiary {} {}",
                                o.object.id,
                                if created { "created" } else { "changed" }
                            ),
                            what,
                        )
                    }
                    "transfer" => {
                        let t: Option<Transfer> = serde_json::from_value(data).ok();
                        if !integration {
                            suspect_transfers.push(o.object.id.clone());
                        }
                        (
                            format!(
                                "Transfer {}{}",
                                o.object.id,
                                t.as_ref()
                                    .map(|t| format!(
                                        ": {} {}",
                                        crate::watch::detect::fmt_amount(t.amount),
                                        t.currency
                                    ))
                                    .unwrap_or_default()
                            ),
                            t.map(|t| {
                                let mut s = format!(
                                    "to beneficiary {}",
                                    t.beneficiary_id.as_deref().unwrap_or("-")
                                );
                                if let Some(st) = t.status {
                                    s.push_str(&format!(", status {st}"));
                                }
                                s
                            })
                            .unwrap_or_default(),
                        )
                    }
                    _ => {
                        let h: Option<Webhook> = serde_json::from_value(data).ok();
                        if !integration {
                            suspect_webhooks.push(o.object.id.clone());
                        }
                        (
                            format!(
                                "Webhook {} {}",
                                o.object.id,
                                if created { "created" } else { "changed" }
                            ),
                            h.map(|h| format!("sends {} to {}", h.events.join(", "), h.url))
                                .unwrap_or_default(),
                        )
                    }
                };
                let at = if created {
                    o.object.at
                } else {
                    o.object.changed_at.unwrap_or(o.object.at)
                };
                timeline.push(TimelineEntry {
                    at: ts(at),
                    kind: kind.into(),
                    title,
                    detail,
                    ids: vec![o.object.id.clone()],
                    attention: !integration,
                    made_by: Some(if integration {
                        format!("{} from its usual network (the integration)", m.label)
                    } else if m.key.is_some() {
                        format!("{} from a new network", m.label)
                    } else {
                        m.label
                    }),
                });
            }
        }
    }
    if by_others > 0 {
        timeline.push(TimelineEntry {
            at: ts(now),
            kind: "finding".into(),
            title: format!(
                "{by_others} other change{} since the exposure made through the proxy by other keys",
                if by_others == 1 { "" } else { "s" }
            ),
            detail: "not this key: left out of the timeline".into(),
            ids: Vec::new(),
            made_by: None,
            attention: false,
        });
    }
    // The watch's judgements on those changes (made outside the proxy, or by this key).
    for s in stored {
        let f = &s.finding;
        if !f.rule.starts_with("watch.") || f.status == Some(Status::Resolved) {
            continue;
        }
        let k = key_of(f);
        if k.as_deref().is_some_and(|k| k != name) {
            continue;
        }
        let at = f
            .end
            .as_deref()
            .and_then(parse)
            .or_else(|| parse(&s.first_seen))
            .unwrap_or(now);
        if at < exposed_at {
            continue;
        }
        timeline.push(TimelineEntry {
            at: ts(at),
            kind: "finding".into(),
            title: format!("{} ({})", f.rule, f.severity),
            detail: f.message.clone(),
            ids: vec![f.id.clone()],
            made_by: None,
            attention: true,
        });
    }
    // The latest verification.
    if let Some(v) = &key.verification {
        if v.observed_at >= exposed_s {
            timeline.push(TimelineEntry {
                at: v.observed_at.clone(),
                kind: "verified".into(),
                title: format!("{name} verified {} (by the {})", v.status, v.by),
                detail: v.detail.clone().unwrap_or_default(),
                ids: Vec::new(),
                made_by: None,
                attention: v.status == "live",
            });
        }
    }
    // Oldest first; at the same second, in the order of the story.
    let order = |k: &str| match k {
        "exposed" => 0,
        "leak" => 1,
        "calls" => 2,
        "beneficiary" => 3,
        "webhook" => 4,
        "transfer" => 5,
        "anomaly" => 6,
        "finding" => 7,
        _ => 8,
    };
    timeline.sort_by(|a, b| (&a.at, order(&a.kind)).cmp(&(&b.at, order(&b.kind))));

    let steps = steps(
        key,
        &exposure,
        &leaks,
        &suspect_transfers,
        &suspect_payees,
        &suspect_webhooks,
        !watchers.is_empty(),
    );
    Ok(BlastRadius {
        key: name.to_string(),
        exposure,
        live: key.verification.clone(),
        timeline,
        steps,
    })
}
