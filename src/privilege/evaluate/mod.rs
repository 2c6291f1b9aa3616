//! The built-in evaluators: one per `Check` of the privilege rules, in files by theme (`access`,
//! `hygiene`, `evidence`, as the rule files are). Each looks at one key's facts (and its usage
//! evidence, merged across its name and fingerprint) and fires, stays quiet, or says it could not
//! judge (and why); the rule's data supplies severity, message and steps. This file is the
//! engine: what every check gets (`KeyCtx`), what it answers (`Verdict`), and the run over every
//! key.

mod access;
mod evidence;
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

/// One key with what every evaluator needs.
struct KeyCtx<'a> {
    f: &'a KeyFacts,
    /// The key's calls that are evidence of need (allowed and expected).
    usage: Option<KeyUsage>,
    /// The key's calls that are not (`usage::screen`): reported, never learnt from.
    screened: Option<Screened>,
    evidence: Option<&'a Evidence>,
    catalog: &'a Catalog,
    now: DateTime<Utc>,
    scopes: Vec<String>,
    replacement: Replacement,
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// A list for a sentence, cut after `max` items.
fn short_list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        list(items)
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

/// What a login said, for a sentence (`; it logs in live: ...`), empty when not verified.
fn login_state(verification: Option<Verification>) -> &'static str {
    match verification {
        Some(Verification::Live) => {
            "; it logs in live: whoever finds it can move money with it now"
        }
        Some(Verification::Revoked) => "; its login answered 401 (revoked or regenerated)",
        Some(Verification::Forbidden) => {
            "; its login answered 403 (it exists, but an IP whitelist or permission refused the call)"
        }
        Some(Verification::Unknown) => "; whether it still logs in is unknown",
        None => "",
    }
}

/// A window for people, as the anomaly findings write it (`2026-11-20 10:15-10:40 UTC`).
fn human_window(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    crate::usage::detect::human_window(start.timestamp(), end.timestamp())
}

fn is_admin_perms(p: &[String]) -> bool {
    ADMIN_PERMISSIONS.iter().all(|a| p.iter().any(|q| q == a))
}

impl<'a> KeyCtx<'a> {
    fn new(
        f: &'a KeyFacts,
        evidence: Option<&'a Evidence>,
        catalog: &'a Catalog,
        now: DateTime<Utc>,
    ) -> KeyCtx<'a> {
        let usage = evidence.and_then(|e| e.usage_of(&f.name, f.fingerprint.as_deref()));
        let screened = evidence
            .and_then(|e| e.screened_of(&f.name, f.fingerprint.as_deref()))
            .filter(|s| s.calls > 0);
        let scopes = if f.declared_scopes.is_empty() {
            tier_scopes(f.kind, &[], catalog)
        } else {
            f.declared_scopes.clone()
        };
        let mut replacement = recommend::replacement(f, usage.as_ref(), catalog);
        if let Some(s) = &screened {
            replacement.basis.push_str(&format!(
                "; {} call(s) screened out (outside the IP whitelist, needing undeclared \
                 scopes or inside open anomalies): reported, not evidence of need",
                s.calls
            ));
        }
        KeyCtx {
            f,
            usage,
            screened,
            evidence,
            catalog,
            now,
            scopes,
            replacement,
        }
    }

    fn permissions(&self) -> Option<&[String]> {
        self.f.login.as_ref()?.permissions.as_deref()
    }

    /// Declared admin, or a token with the admin strings on a key not declared read_write
    /// (a read_write key has read and write on everything; how its token looks is not
    /// documented, so the same strings prove nothing there: privilege.declared-mismatch says so).
    fn is_admin(&self) -> bool {
        self.f.kind == KeyKind::Admin
            || (self.f.kind != KeyKind::ReadWrite && self.permissions().is_some_and(is_admin_perms))
    }

    fn access(&self, scope: &str) -> Option<Access> {
        self.catalog.scope(scope).map(|s| s.access)
    }

    fn write_scopes(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|s| self.access(s) == Some(Access::Write))
            .cloned()
            .collect()
    }

    fn has_scope(&self, s: &str) -> bool {
        self.is_admin() || self.scopes.iter().any(|x| x == s)
    }

    /// The common template values.
    fn vars(&self) -> BTreeMap<&'static str, String> {
        let f = self.f;
        let mut v = BTreeMap::new();
        v.insert("key", f.name.clone());
        v.insert("environment", f.environment.as_str().to_string());
        v.insert("kind", f.kind.as_str().to_string());
        v.insert(
            "owner",
            f.owner
                .clone()
                .unwrap_or_else(|| "the key's owner".to_string()),
        );
        v.insert(
            "integration",
            f.integration
                .clone()
                .unwrap_or_else(|| "the integration".to_string()),
        );
        v.insert("integration_place", recommend::integration_place(f));
        let scopes = if f.kind == KeyKind::Custom {
            short_list(&self.scopes, 12)
        } else {
            format!("all {} scopes of the {} tier", self.scopes.len(), v["kind"])
        };
        v.insert("scopes", scopes);
        v.insert("replacement_name", self.replacement.name.clone());
        v.insert(
            "replacement_scopes",
            if self.usage.is_some() {
                if self.replacement.scopes.is_empty() {
                    "no scope (the evidence shows only calls that need none)".to_string()
                } else {
                    self.replacement.scopes.join(", ")
                }
            } else {
                "not known: no usage evidence for this key; collect its calls and run `awxguard audit --usage FILE` first".to_string()
            },
        );
        v.insert(
            "replacement_ips",
            if self.replacement.ip_whitelist.is_empty() {
                "the addresses the integration calls from (none observed or declared)".to_string()
            } else {
                self.replacement.ip_whitelist.join(", ")
            },
        );
        v.insert(
            "permissions",
            self.permissions()
                .map(list)
                .unwrap_or_else(|| "not known".to_string()),
        );
        v.insert(
            "declared_at",
            f.declaration().unwrap_or("the config").to_string(),
        );
        if let Some(u) = &self.usage {
            v.insert("coverage_start", day(u.coverage_start));
            v.insert("first_seen", day(u.first_seen));
            v.insert("last_seen", day(u.last_seen));
            v.insert("events", u.events.to_string());
        } else if let Some(s) = &self.screened {
            v.insert(
                "last_seen",
                format!(
                    "never, besides {} call(s) that are not evidence of need, reported separately",
                    s.calls
                ),
            );
        } else {
            v.insert("last_seen", "never".to_string());
        }
        v.insert(
            "login_state",
            login_state(f.login.as_ref().map(|l| l.verification)).to_string(),
        );
        v
    }

    /// The start of a `days` window, when the key existed for all of it and the evidence covers
    /// it; else why it cannot be judged.
    fn window(&self, days: i64) -> Result<DateTime<Utc>, String> {
        let start = self.now - Duration::days(days);
        if let Some(c) = self.f.created {
            if c > start.date_naive() {
                return Err(format!(
                    "the key was created {c}, less than {days} days ago"
                ));
            }
        }
        match (&self.usage, self.evidence) {
            (_, None) => Err("no usage evidence for this key".to_string()),
            (Some(u), _) if u.coverage_start <= start => Ok(start),
            (Some(u), _) => Err(format!(
                "usage evidence for this key starts {}, less than {days} days ago",
                day(u.coverage_start)
            )),
            (None, Some(_)) => Err("no usage evidence for this key".to_string()),
        }
    }

    fn narrow_evidence(&self) -> Value {
        let u = self.usage.as_ref();
        json!({
            "declared_scopes": self.scopes.len(),
            "used_scopes": u.map(|u| u.scopes_used.keys().cloned().collect::<Vec<_>>()),
            "events": u.map(|u| u.events),
            "sample_routes": u.map(|u| u.routes.keys().take(10).cloned().collect::<Vec<_>>()),
            "window": u.map(|u| json!({"coverage_start": u.coverage_start, "last_seen": u.last_seen})),
        })
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

/// A finding as made, with what folding needs.
struct Made {
    finding: Finding,
    check: Check,
    /// The checks it carries when they fire on the same key.
    folds: Vec<Check>,
    /// What it adds to the finding that carries it.
    folded_steps: Vec<String>,
    /// What it adds to a carrier without a replacement key of its own.
    folded_replacement_steps: Vec<String>,
}

/// One incident, one finding (findings contract, "Folding"): a finding that a stronger one on
/// the same key implies is carried in the stronger one's `also` (with its message and evidence
/// in `evidence.folded`, its inputs in `observed_by`, its `folded_steps` appended to the steps)
/// instead of being reported on its own. The carrier keeps its severity: a revoked key carrying
/// an admin key's findings is not "critical: can call every API". Which rule carries which is
/// data (`folds` in the rule files); a finding carried by one that is itself carried goes to
/// the top of the chain.
fn fold(made: Vec<Made>) -> Vec<Finding> {
    let n = made.len();
    // An acknowledged finding (a literal the config accepts) carries nothing: what it would
    // carry is not what was accepted.
    let folds = |j: usize| -> &[Check] {
        if made[j].finding.status == Some(Status::Acknowledged) {
            &[]
        } else {
            &made[j].folds
        }
    };
    // carrier[i]: the index of the finding that carries finding i directly
    let carrier: Vec<Option<usize>> = (0..n)
        .map(|i| {
            (0..n).find(|&j| {
                j != i && folds(j).contains(&made[i].check) && !folds(i).contains(&made[j].check)
            })
        })
        .collect();
    let top = |mut i: usize| -> Option<usize> {
        let mut steps = 0;
        while let Some(j) = carrier[i] {
            i = j;
            steps += 1;
            if steps > n {
                return None; // a cycle: leave it on its own
            }
        }
        Some(i)
    };
    let mut carried: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut standalone = vec![true; n];
    for i in 0..n {
        if carrier[i].is_none() {
            continue;
        }
        if let Some(t) = top(i) {
            carried[t].push(i);
            standalone[i] = false;
        }
    }
    let mut out = Vec::new();
    for t in 0..n {
        if !standalone[t] {
            continue;
        }
        let mut f = made[t].finding.clone();
        if carried[t].is_empty() {
            out.push(f);
            continue;
        }
        let mut folded = Vec::new();
        let mut observed: BTreeSet<String> = f.observed_by.iter().cloned().collect();
        let own_replacement = f
            .recommendation
            .as_ref()
            .is_some_and(|r| r.replacement.is_some());
        for &i in &carried[t] {
            let w = &made[i].finding;
            f.also.push(w.rule.clone());
            f.also.extend(w.also.iter().cloned());
            folded.push(json!({
                "rule": w.rule,
                "severity": w.severity,
                "message": w.message,
                "evidence": w.evidence,
            }));
            observed.extend(w.observed_by.iter().cloned());
            if let Some(r) = f.recommendation.as_mut() {
                // a carrier that names its replacement key already says what the key should be
                let replacement_steps = if own_replacement {
                    &[][..]
                } else {
                    &made[i].folded_replacement_steps[..]
                };
                for step in made[i].folded_steps.iter().chain(replacement_steps) {
                    if !r.steps.contains(step) {
                        r.steps.push(step.clone());
                    }
                }
                if r.replacement.is_none() {
                    r.replacement = w
                        .recommendation
                        .as_ref()
                        .and_then(|x| x.replacement.clone());
                }
            }
        }
        f.also.sort();
        f.also.dedup();
        f.observed_by = observed.into_iter().collect();
        match f.evidence.as_mut().and_then(|e| e.as_object_mut()) {
            Some(o) => {
                o.insert("folded".into(), Value::Array(folded));
            }
            None => f.evidence = Some(json!({ "folded": folded })),
        }
        out.push(f);
    }
    out
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
