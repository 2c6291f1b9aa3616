//! The built-in evaluators: one per `Check` of the privilege rules, in files by theme (`access`,
//! `hygiene`, `evidence`, as the rule files are). Each looks at one key's facts (and its usage
//! evidence, merged across its name and fingerprint) and fires, stays quiet, or says it could not
//! judge (and why); the rule's data supplies severity, message and steps. This file is the
//! engine: what a check answers (`Verdict`) and the run over every key; what every check gets
//! is `ctx` (`KeyCtx`), folding is `fold`.

mod access;
mod ctx;
mod evidence;
mod fold;
mod hygiene;

use super::check::Check;
use super::recommend::{self, list, render, Replacement};
use super::rules::{PrivilegeRule, PrivilegeRules};
use super::{Access, Catalog};
use crate::airwallex::claims::ADMIN_PERMISSIONS;
use crate::airwallex::KeyKind;
use crate::airwallex::{host_environment, tier_scopes};
use crate::finding::{Action, Finding, Recommendation, Severity, Status, Verification};
use crate::inventory::{KeyFacts, SecretSource};
use crate::usage::{Evidence, KeyUsage, Screened};
use chrono::{DateTime, Duration, Utc};
use ctx::*;
use fold::{fold, Made};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// What an evaluator concluded (short-lived: one per rule and key, never stored).
#[allow(clippy::large_enum_variant)]
enum Verdict {
    Quiet,
    Fire(Hit),
    /// One finding per subject (a network, a scope).
    FireEach(Vec<Hit>),
    NotJudged(String),
}

/// A firing: the check's own template values, its evidence, and the subject that makes the
/// finding id stable.
#[derive(Default)]
struct Hit {
    vars: Vec<(&'static str, String)>,
    evidence: Value,
    subject: Option<String>,
    replacement: Option<Replacement>,
    /// A severity the check chose from the rule's `severity_*` parameters, over the rule's own.
    severity: Option<Severity>,
    /// The window of the evidence the finding rests on (`start`, `end`), over the usage window.
    window: Option<(String, String)>,
    /// Acknowledged where it is made (a literal key the config accepts: `evidence.accepted`).
    acknowledged: bool,
}

impl Hit {
    fn new(evidence: Value) -> Hit {
        Hit {
            evidence,
            ..Hit::default()
        }
    }

    fn var(mut self, name: &'static str, value: impl Into<String>) -> Hit {
        self.vars.push((name, value.into()));
        self
    }
}

/// Judges one key for one rule: the rule's check decides how.
fn check(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    match rule.check {
        Check::AdminKey => access::admin_key(ctx, rule),
        Check::DisguisedAdmin => access::disguised_admin(ctx, rule),
        Check::DeclaredMismatch => access::declared_mismatch(ctx, rule),
        Check::PermissionsUnknown => access::permissions_unknown(ctx, rule),
        Check::WriteNeverUsed => access::write_never_used(ctx, rule),
        Check::UnusedScope => access::unused_scope(ctx, rule),
        Check::UnusedKey => access::unused_key(ctx, rule),
        Check::SharedKey => access::shared_key(ctx, rule),
        Check::PayeeAndPay => access::payee_and_pay(ctx, rule),
        Check::WebhookWriteUnneeded => access::webhook_write_unneeded(ctx, rule),
        Check::WrongEnvironment => access::wrong_environment(ctx, rule),
        Check::RotationOverdue => hygiene::rotation_overdue(ctx, rule),
        Check::NoIpWhitelist => hygiene::no_ip_whitelist(ctx, rule),
        Check::SecretLiteral => hygiene::secret_literal(ctx, rule),
        Check::SecretFileReadable => hygiene::secret_file_readable(ctx, rule),
        Check::SecretInPlaintextFile => hygiene::secret_in_plaintext_file(ctx, rule),
        Check::SecretInGitWorkTree => hygiene::secret_in_git_work_tree(ctx, rule),
        Check::MissingOwner => hygiene::missing_owner(ctx, rule),
        Check::KeyRevoked => hygiene::login_refused(ctx, rule),
        Check::KeyRefused => hygiene::login_refused(ctx, rule),
        Check::KeyLeaked => hygiene::key_leaked(ctx, rule),
        Check::ShadowKey => hygiene::shadow_key(ctx, rule),
        Check::KeyMisconfigured => hygiene::key_misconfigured(ctx, rule),
        Check::SecretUnresolved => hygiene::secret_unresolved(ctx, rule),
        Check::UnknownRoute => evidence::unknown_route(ctx, rule),
        Check::OutsideWhitelist => evidence::outside_whitelist(ctx, rule),
        Check::UndeclaredScope => evidence::undeclared_scope(ctx, rule),
        // judged once over the evidence and once per key's other verdicts, in `evaluate`
        Check::UnknownKey | Check::NotJudged => Verdict::Quiet,
    }
}

/// The inputs a finding of `rule` on this key is observed by (resolution by observation): the
/// config that declares the key, its login when the verdict reads the token, the usage sources
/// for evidence checks, the places the key was found (and its secret reference, which is how
/// it was recognised there).
fn observed_by(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Vec<String> {
    let f = ctx.f;
    let mut out: BTreeSet<String> = BTreeSet::new();
    out.extend(f.config_input());
    let login = match rule.check {
        // a declared admin is admin by its declaration; any other key by its token
        Check::AdminKey | Check::PayeeAndPay | Check::WebhookWriteUnneeded => {
            f.kind != KeyKind::Admin && ctx.permissions().is_some()
        }
        Check::DisguisedAdmin
        | Check::DeclaredMismatch
        | Check::PermissionsUnknown
        | Check::KeyRevoked
        | Check::KeyRefused => true,
        Check::WrongEnvironment => f.login.is_some(),
        _ => false,
    };
    if login {
        out.insert(f.login_input());
    }
    let usage = rule.check.needs().evidence
        || matches!(
            rule.check,
            Check::SharedKey
                | Check::WrongEnvironment
                | Check::UnknownRoute
                | Check::OutsideWhitelist
                | Check::UndeclaredScope
        );
    if usage {
        if let Some(ev) = ctx.evidence {
            out.extend(ev.inputs.iter().cloned());
        }
    }
    let found = match rule.check {
        Check::KeyLeaked => {
            out.extend(f.leaks.iter().map(|l| l.source.clone()));
            true
        }
        Check::SecretInPlaintextFile => {
            out.extend(f.found_by.iter().cloned());
            true
        }
        Check::ShadowKey => {
            out.extend(f.leaks.iter().map(|l| l.source.clone()));
            out.extend(f.found_by.iter().cloned());
            true
        }
        // a shadow key's file facts are facts of where it was found
        Check::SecretFileReadable | Check::SecretInGitWorkTree if !f.declared => {
            out.extend(f.leaks.iter().map(|l| l.source.clone()));
            out.extend(f.found_by.iter().cloned());
            true
        }
        _ => false,
    };
    if found {
        out.extend(f.secret_input());
    }
    out.into_iter().collect()
}

fn finding(
    ctx_vars: &BTreeMap<&'static str, String>,
    rule: &PrivilegeRule,
    f: Option<&KeyFacts>,
    key: &str,
    hit: Hit,
    usage: Option<&KeyUsage>,
) -> Made {
    let mut vars = ctx_vars.clone();
    for (k, v) in hit.vars {
        vars.insert(k, v);
    }
    let mut subject = vec![key];
    if let Some(s) = &hit.subject {
        subject.push(s);
    }
    let mut out = Finding::new(
        &rule.id,
        hit.severity
            .unwrap_or_else(|| rule.severity_for(f.map(|f| f.environment))),
        render(&rule.message, &vars),
        &subject,
    );
    out.key = Some(key.to_string());
    out.verification = f.and_then(|f| f.login.as_ref()).map(|l| l.verification);
    if let Some(u) = usage.filter(|_| rule.check.needs().window) {
        out.start = Some(u.coverage_start.to_rfc3339());
        out.end = Some(u.last_seen.to_rfc3339());
    }
    if let Some((start, end)) = hit.window {
        out.start = Some(start);
        out.end = Some(end);
    }
    out.evidence = Some(hit.evidence);
    if hit.acknowledged {
        out.status = Some(Status::Acknowledged);
    }
    out.recommendation = Some(Recommendation {
        action: rule.action,
        steps: rule.steps.iter().map(|s| render(s, &vars)).collect(),
        replacement: hit
            .replacement
            .filter(|_| {
                matches!(
                    rule.action,
                    Action::Narrow | Action::Investigate | Action::Whitelist
                )
            })
            .map(|r| serde_json::to_value(r).expect("serializable")),
    });
    Made {
        finding: out,
        check: rule.check,
        folds: rule.folds.clone(),
        folded_steps: rule.folded_steps.iter().map(|s| render(s, &vars)).collect(),
        folded_replacement_steps: rule
            .folded_replacement_steps
            .iter()
            .map(|s| render(s, &vars))
            .collect(),
    }
}

/// Judges every key (see `super::evaluate`).
pub fn evaluate(
    facts: &[KeyFacts],
    evidence: Option<&Evidence>,
    catalog: &Catalog,
    rules: &PrivilegeRules,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut known: HashSet<&str> = HashSet::new();
    for f in facts {
        known.insert(f.name.as_str());
        if let Some(fp) = &f.fingerprint {
            known.insert(fp.as_str());
        }
        let ctx = KeyCtx::new(f, evidence, catalog, now);
        let vars = ctx.vars();
        let mut not_judged: Vec<(String, String)> = Vec::new();
        let mut unused_key_fired = false;
        let mut made = Vec::new();
        for rule in &rules.rules {
            if !f.declared && !rule.check.needs().shadow_keys {
                continue;
            }
            match check(&ctx, rule) {
                Verdict::Quiet => {}
                Verdict::NotJudged(reason) => {
                    if rule.check.needs().evidence {
                        not_judged.push((rule.id.clone(), reason));
                    }
                }
                Verdict::Fire(hit) => {
                    if rule.check == Check::UnusedKey {
                        unused_key_fired = true;
                    }
                    let mut m = finding(&vars, rule, Some(f), &f.name, hit, ctx.usage.as_ref());
                    m.finding.observed_by = observed_by(&ctx, rule);
                    made.push(m);
                }
                Verdict::FireEach(hits) => {
                    for hit in hits {
                        let mut m = finding(&vars, rule, Some(f), &f.name, hit, ctx.usage.as_ref());
                        m.finding.observed_by = observed_by(&ctx, rule);
                        made.push(m);
                    }
                }
            }
        }
        if unused_key_fired && ctx.usage.is_none() {
            not_judged.clear();
        }
        if !not_judged.is_empty() {
            for rule in rules.with_check(Check::NotJudged) {
                // one finding per key: the first reason is the main one
                let mut reasons: Vec<&str> = not_judged.iter().map(|(_, r)| r.as_str()).collect();
                reasons.dedup();
                let ids: Vec<String> = not_judged.iter().map(|(id, _)| id.clone()).collect();
                let hit = Hit::new(json!({
                    "rules": not_judged.iter().map(|(id, r)| json!({"rule": id, "reason": r})).collect::<Vec<_>>(),
                }))
                .var("reason", reasons.join("; "))
                .var("not_judged_rules", ids.join(", "));
                let mut m = finding(&vars, rule, Some(f), &f.name, hit, ctx.usage.as_ref());
                m.finding.observed_by = observed_by(&ctx, rule);
                made.push(m);
            }
        }
        out.extend(fold(made));
    }
    if let Some(ev) = evidence {
        for rule in rules.with_check(Check::UnknownKey) {
            for (k, u) in &ev.keys {
                if known.contains(k.as_str()) {
                    continue;
                }
                let ips: Vec<String> = u.source_ips.keys().cloned().collect();
                let agents: Vec<String> = u.user_agents.keys().cloned().collect();
                let mut vars = BTreeMap::new();
                vars.insert("evidence_key", k.clone());
                vars.insert("key", k.clone());
                vars.insert("events", u.events.to_string());
                vars.insert(
                    "source_ips",
                    if ips.is_empty() {
                        "unknown addresses".to_string()
                    } else {
                        short_list(&ips, 5)
                    },
                );
                vars.insert(
                    "user_agents",
                    if agents.is_empty() {
                        "none recorded".to_string()
                    } else {
                        short_list(&agents, 5)
                    },
                );
                vars.insert("first_seen", day(u.first_seen));
                vars.insert("last_seen", day(u.last_seen));
                let hit = Hit::new(json!({
                    "observed": {"events": u.events, "routes": u.routes.keys().take(10).collect::<Vec<_>>(), "source_ips": u.source_ips, "hosts": u.hosts},
                    "expected": "every key in use declared in the inventory (by name or fingerprint)",
                }));
                let mut m = finding(&vars, rule, None, k, hit, Some(u));
                m.finding.observed_by = ev.inputs.clone();
                out.push(m.finding);
            }
        }
    }
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out
}
