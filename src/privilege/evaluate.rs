//! The built-in evaluators: one per `check` of the privilege rules. Each looks at one key's facts
//! (and its usage evidence, merged across its name and fingerprint) and fires, stays quiet, or
//! says it could not judge (and why); the rule's data supplies severity, message and steps.

use super::facts::{KeyFacts, KeyKind, SecretSource};
use super::recommend::{self, list, render, Replacement};
use super::rules::{PrivilegeRule, PrivilegeRules};
use super::{Access, Catalog};
use crate::airwallex::claims::ADMIN_PERMISSIONS;
use crate::airwallex::{host_environment, tier_scopes};
use crate::finding::{Action, Finding, Recommendation, Severity, Verification};
use crate::usage::{Evidence, KeyUsage};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The rules whose judgement needs usage evidence.
const EVIDENCE_CHECKS: &[&str] = &[
    "write-never-used",
    "unused-scope",
    "unused-key",
    "webhook-write-unneeded",
    "wrong-environment",
];

/// The checks that apply to a shadow key (found by discovery, declared by nobody): what was
/// observed about it (where it was found, whether it leaked, what its login says). The other
/// checks judge declared facts (environment, kind, scopes, owner, whitelist, rotation, usage)
/// that nobody declared for it, so they stay quiet instead of adding noise. The file it was found
/// in was inspected, so its mode and git work tree are observed facts too.
const SHADOW_CHECKS: &[&str] = &[
    "shadow-key",
    "key-leaked",
    "admin-key",
    "secret-file-readable",
    "secret-in-git-work-tree",
];

/// What an evaluator concluded (short-lived: one per rule and key, never stored).
#[allow(clippy::large_enum_variant)]
enum Verdict {
    Quiet,
    Fire(Hit),
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
    usage: Option<KeyUsage>,
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
        let scopes = if f.declared_scopes.is_empty() {
            tier_scopes(f.kind, &[], catalog)
        } else {
            f.declared_scopes.clone()
        };
        let replacement = recommend::replacement(f, usage.as_ref(), catalog);
        KeyCtx {
            f,
            usage,
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
            f.declared_at
                .clone()
                .unwrap_or_else(|| "the config".to_string()),
        );
        if let Some(u) = &self.usage {
            v.insert("coverage_start", day(u.coverage_start));
            v.insert("first_seen", day(u.first_seen));
            v.insert("last_seen", day(u.last_seen));
            v.insert("events", u.events.to_string());
        } else {
            v.insert("last_seen", "never".to_string());
        }
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

fn check(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
    match rule.check.as_str() {
        "admin-key" => {
            if !ctx.is_admin() {
                return Verdict::Quiet;
            }
            // a shadow key's kind is nobody's declaration: only its token can say it is admin
            if !f.declared && !ctx.permissions().is_some_and(is_admin_perms) {
                return Verdict::Quiet;
            }
            let summary = match usage {
                Some(_) => format!(
                    "its usage evidence shows it needs only {} scope(s): {}",
                    ctx.replacement.scopes.len(),
                    list(&ctx.replacement.scopes)
                ),
                None => "which scopes it needs is not judged: no usage evidence for this key"
                    .to_string(),
            };
            let mut ev = ctx.narrow_evidence();
            ev["observed"] = json!(if f.kind == KeyKind::Admin {
                "declared admin"
            } else {
                "login token grants full access"
            });
            ev["expected"] = json!("a scoped key with the scopes its calls need");
            let mut hit = Hit::new(ev).var("evidence_summary", summary);
            hit.replacement = Some(ctx.replacement.clone());
            Verdict::Fire(hit)
        }
        "disguised-admin" => match ctx.permissions() {
            Some(p)
                if is_admin_perms(p) && matches!(f.kind, KeyKind::ReadOnly | KeyKind::Custom) =>
            {
                let mut hit = Hit::new(json!({
                    "observed": p,
                    "expected": format!("the permissions of a {:?} key", f.kind),
                }));
                hit.replacement = Some(ctx.replacement.clone());
                Verdict::Fire(hit)
            }
            _ => Verdict::Quiet,
        },
        "declared-mismatch" => match ctx.permissions() {
            Some(p) if f.kind == KeyKind::ReadWrite && is_admin_perms(p) => {
                // read and write on everything may well look like this: not a proven admin
                let mut hit = Hit::new(json!({
                    "observed": p,
                    "expected": "the permissions of a read_write key (not documented by Airwallex)",
                    "note": "only r:awx:*:* + w:awx:*:* is documented, as full access; a read_write key has read and write on every resource, so its token may show the same strings",
                }))
                .var(
                    "mismatch",
                    "and its login token shows full access; Airwallex does not document how \
                     read_write tokens look, so whether it is an admin key is not known",
                );
                hit.severity = rule.severity_param("severity_full_access");
                hit.replacement = Some(ctx.replacement.clone());
                Verdict::Fire(hit)
            }
            Some(p)
                if f.kind != KeyKind::Admin
                    && !is_admin_perms(p)
                    && ctx.write_scopes().is_empty()
                    && p.iter().any(|x| x.starts_with("w:")) =>
            {
                let mut hit = Hit::new(json!({
                    "observed": p,
                    "expected": "no write permission",
                    "note": "a permission beginning `w:` is taken to grant write, as the admin ones do (inferred: Airwallex documents only the admin strings)",
                }))
                .var(
                    "mismatch",
                    "without write scopes but its login token grants write access",
                );
                hit.replacement = Some(ctx.replacement.clone());
                Verdict::Fire(hit)
            }
            _ => Verdict::Quiet,
        },
        "permissions-unknown" => match ctx.permissions() {
            Some(p) if p.iter().any(|x| !ADMIN_PERMISSIONS.contains(&x.as_str())) => {
                let unknown: Vec<&String> = p
                    .iter()
                    .filter(|x| !ADMIN_PERMISSIONS.contains(&x.as_str()))
                    .collect();
                // strings shaped like catalog scope ids (as the local simulator issues) that
                // the config does not declare: a hint, not a conclusion
                let beyond: Vec<&String> = unknown
                    .iter()
                    .copied()
                    .filter(|p| ctx.catalog.scope(p).is_some() && !ctx.scopes.contains(p))
                    .collect();
                Verdict::Fire(Hit::new(json!({
                    "unknown_permissions": unknown,
                    "judged_from": "declared scopes",
                    "scope_like_not_declared": beyond,
                })))
            }
            _ => Verdict::Quiet,
        },
        "write-never-used" => {
            if f.kind == KeyKind::Admin {
                return Verdict::Quiet; // privilege.admin-key covers it
            }
            let writes = ctx.write_scopes();
            if writes.is_empty() {
                return Verdict::Quiet;
            }
            let days = rule.int("min_days");
            let Some(u) = usage else {
                return Verdict::NotJudged("no usage evidence for this key".into());
            };
            if u.coverage_start > ctx.now - Duration::days(days) {
                return Verdict::NotJudged(format!(
                    "usage evidence for this key starts {}, less than {days} days ago",
                    day(u.coverage_start)
                ));
            }
            if u.routes
                .values()
                .any(|r| r.scope.is_none() && r.method != "GET" && !r.template.ends_with("/login"))
            {
                return Verdict::NotJudged(
                    "it called routes the scope catalog does not know, which may be writes".into(),
                );
            }
            let used_write = u
                .scopes_used
                .keys()
                .any(|s| ctx.access(s) == Some(Access::Write));
            if used_write {
                return Verdict::Quiet;
            }
            let observed_days = (ctx.now - u.coverage_start).num_days();
            let mut hit = Hit::new(json!({
                "observed": {"write_calls": 0, "read_calls": u.events, "since": u.coverage_start},
                "expected": "write scopes only where writes are made",
                "write_scopes": writes,
                "used_scopes": u.scopes_used.keys().collect::<Vec<_>>(),
            }))
            .var("write_scopes", short_list(&writes, 8))
            .var("days", observed_days.to_string());
            hit.replacement = Some(ctx.replacement.clone());
            Verdict::Fire(hit)
        }
        "unused-scope" => {
            if f.kind == KeyKind::Admin {
                return Verdict::Quiet;
            }
            let days = rule.int("days");
            let start = match ctx.window(days) {
                Ok(s) => s,
                Err(reason) => return Verdict::NotJudged(reason),
            };
            let u = usage.expect("window() needs usage");
            let unused: Vec<String> = ctx
                .scopes
                .iter()
                .filter(|s| u.scopes_used.get(*s).is_none_or(|t| *t < start))
                .cloned()
                .collect();
            if unused.is_empty() {
                return Verdict::Quiet;
            }
            let mut hit = Hit::new(json!({
                "observed": {"used_scopes": u.scopes_used.iter().filter(|(_, t)| **t >= start).map(|(s, _)| s).collect::<Vec<_>>()},
                "expected": "every scope used at least once in the window",
                "unused_scopes": unused,
                "window": {"start": start, "end": ctx.now, "days": days},
                "coverage_start": u.coverage_start,
            }))
            .var("unused_scopes", short_list(&unused, 10))
            .var("unused_count", unused.len().to_string())
            .var("days", days.to_string());
            hit.subject = Some(unused.join(","));
            // the replacement keeps what the window shows in use
            let mut rep = ctx.replacement.clone();
            rep.scopes.retain(|s| !unused.contains(s));
            hit = hit.var("replacement_scopes", list(&rep.scopes));
            hit.replacement = Some(rep);
            Verdict::Fire(hit)
        }
        "unused-key" => {
            let days = rule.int("days");
            let start = ctx.now - Duration::days(days);
            match usage {
                Some(u) => {
                    let start = match ctx.window(days) {
                        Ok(s) => s,
                        Err(reason) => return Verdict::NotJudged(reason),
                    };
                    if u.last_seen >= start {
                        return Verdict::Quiet;
                    }
                    Verdict::Fire(
                        Hit::new(json!({
                            "observed": {"last_call": u.last_seen, "calls_in_window": 0},
                            "expected": format!("at least one call in {days} days"),
                            "coverage_start": u.coverage_start,
                        }))
                        .var("days", days.to_string()),
                    )
                }
                None => {
                    let Some(ev) = ctx.evidence else {
                        return Verdict::NotJudged("no usage evidence for this key".into());
                    };
                    if let Some(c) = f.created {
                        if c > start.date_naive() {
                            return Verdict::NotJudged(format!(
                                "the key was created {c}, less than {days} days ago"
                            ));
                        }
                    }
                    let covered = ev.sources.iter().map(|s| s.first).min();
                    match covered {
                        Some(c) if c <= start => Verdict::Fire(
                            Hit::new(json!({
                                "observed": {"calls": 0},
                                "expected": format!("at least one call in {days} days"),
                                "basis": format!("no event names this key (by name or fingerprint) in {} source(s) covering since {}", ev.sources.len(), day(c)),
                            }))
                            .var("days", days.to_string())
                            .var("coverage_start", day(c)),
                        ),
                        _ => Verdict::NotJudged("no usage evidence for this key".into()),
                    }
                }
            }
        }
        "rotation-overdue" => {
            let days = rule.int("days");
            let Some(base) = f.rotated.or(f.created) else {
                return Verdict::Quiet;
            };
            let age = (ctx.now.date_naive() - base).num_days();
            if age <= days {
                return Verdict::Quiet;
            }
            Verdict::Fire(
                Hit::new(json!({
                    "observed": {"age_days": age, "since": base, "rotated": f.rotated.is_some()},
                    "expected": format!("rotated within {days} days"),
                }))
                .var("age_days", age.to_string())
                .var("days", days.to_string()),
            )
        }
        "no-ip-whitelist" => {
            if f.environment != super::Environment::Production || !f.ip_whitelist.is_empty() {
                return Verdict::Quiet;
            }
            // a whitelist was declared but could not be read: privilege.key-misconfigured says so
            if f.config_problems
                .iter()
                .any(|p| p.contains(": ip_whitelist: "))
            {
                return Verdict::Quiet;
            }
            Verdict::Fire(Hit::new(json!({
                "observed": {"ip_whitelist": []},
                "expected": "IPv4 addresses or /24 to /32 ranges the integration calls from",
                "suggested": ctx.replacement.ip_whitelist,
                "basis": ctx.replacement.basis,
            })))
        }
        "shared-key" => {
            let declared: BTreeSet<String> = f.consumers.iter().cloned().collect();
            let agents: BTreeSet<String> = usage
                .map(|u| {
                    u.user_agents
                        .keys()
                        .map(|a| a.split(['/', ' ']).next().unwrap_or(a).to_ascii_lowercase())
                        .filter(|a| !a.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let by_decl = declared.len() as i64 >= rule.int("min_consumers");
            let by_agents = agents.len() as i64 >= rule.int("min_user_agents");
            if !by_decl && !by_agents {
                return Verdict::Quiet;
            }
            let mut consumers: Vec<String> = declared.iter().cloned().collect();
            if by_agents {
                consumers.extend(agents.iter().map(|a| format!("user agent {a}")));
            }
            let mut hit = Hit::new(json!({
                "observed": {"declared_consumers": declared, "user_agents": agents},
                "expected": "one key per integration",
            }))
            .var("consumers", list(&consumers))
            .var("consumer_count", consumers.len().to_string());
            hit.replacement = None;
            Verdict::Fire(hit)
        }
        "payee-and-pay" => {
            if f.kind == KeyKind::Admin && !rule.flag("include_admin") {
                return Verdict::Quiet;
            }
            if !(ctx.has_scope("beneficiary:write") && ctx.has_scope("transfer:write")) {
                return Verdict::Quiet;
            }
            let used = |s: &str| usage.is_some_and(|u| u.scopes_used.contains_key(s));
            let mut rep = ctx.replacement.clone();
            if usage.is_none() {
                rep.scopes = ctx.scopes.clone();
                rep.basis = "declared scopes (no usage evidence)".into();
            }
            // the paying key never adds payees; adding them is another key's (and person's) job
            rep.scopes.retain(|s| s != "beneficiary:write");
            let mut hit = Hit::new(json!({
                "observed": {"beneficiary:write": true, "transfer:write": true,
                             "beneficiary_write_used": usage.map(|_| used("beneficiary:write")),
                             "transfer_write_used": usage.map(|_| used("transfer:write"))},
                "expected": "creating payees and paying them held by different keys",
            }));
            hit = hit.var("replacement_scopes", list(&rep.scopes));
            hit.replacement = Some(rep);
            Verdict::Fire(hit)
        }
        "webhook-write-unneeded" => {
            if f.kind == KeyKind::Admin && !rule.flag("include_admin") {
                return Verdict::Quiet;
            }
            if !ctx.has_scope("webhook:write") {
                return Verdict::Quiet;
            }
            let days = rule.int("min_days");
            let Some(u) = usage else {
                return Verdict::NotJudged("no usage evidence for this key".into());
            };
            if u.coverage_start > ctx.now - Duration::days(days) {
                return Verdict::NotJudged(format!(
                    "usage evidence for this key starts {}, less than {days} days ago",
                    day(u.coverage_start)
                ));
            }
            if u.scopes_used.contains_key("webhook:write") {
                return Verdict::Quiet;
            }
            let observed_days = (ctx.now - u.coverage_start).num_days();
            let mut hit = Hit::new(json!({
                "observed": {"webhook_writes": 0, "since": u.coverage_start},
                "expected": "webhook:write only on a key that manages webhooks",
            }))
            .var("days", observed_days.to_string());
            hit.replacement = Some(ctx.replacement.clone());
            Verdict::Fire(hit)
        }
        "secret-literal" => {
            if f.storage.source != SecretSource::Literal {
                return Verdict::Quiet;
            }
            Verdict::Fire(Hit::new(json!({
                "observed": "literal in the config",
                "expected": "env:VAR or file:PATH",
            })))
        }
        "secret-file-readable" => {
            if !(f.storage.world_readable || f.storage.group_readable) {
                return Verdict::Quiet;
            }
            let path = match &f.storage.source {
                SecretSource::File { path } => path.display().to_string(),
                _ => f
                    .declared_at
                    .as_deref()
                    .and_then(|d| d.rsplit_once(':').map(|(p, _)| p.to_string()))
                    .unwrap_or_else(|| "the config file".into()),
            };
            let mode = f
                .storage
                .file_mode
                .map(|m| format!("{:o}", m & 0o7777))
                .unwrap_or_else(|| "unknown".into());
            Verdict::Fire(
                Hit::new(json!({
                    "observed": {"mode": mode, "world_readable": f.storage.world_readable, "group_readable": f.storage.group_readable},
                    "expected": "600",
                }))
                .var("secret_path", path)
                .var(
                    "readable_by",
                    if f.storage.world_readable { "world" } else { "group" },
                )
                .var("file_mode", mode),
            )
        }
        "secret-in-plaintext-file" => {
            // a shadow key's plain-text places are privilege.shadow-key's to report
            if !f.declared || f.storage.plaintext_locations.is_empty() {
                return Verdict::Quiet;
            }
            let places = &f.storage.plaintext_locations;
            let mut hit = Hit::new(json!({
                "observed": {"plaintext_locations": places},
                "expected": format!("the key only where {} says it lives", f.declared_at.as_deref().unwrap_or("the config")),
            }))
            .var("plaintext_count", places.len().to_string())
            .var("plaintext_places", short_list(places, 5))
            .var("plaintext_files", {
                let mut files: Vec<String> = places
                    .iter()
                    .map(|p| match p.rsplit_once(':') {
                        Some((file, line)) if line.parse::<u64>().is_ok() => file.to_string(),
                        _ => p.clone(),
                    })
                    .collect();
                let mut seen = HashSet::new();
                files.retain(|f| seen.insert(f.clone()));
                list(&files)
            });
            hit.subject = Some(places.join(","));
            Verdict::Fire(hit)
        }
        "secret-in-git-work-tree" => match &f.storage.in_git_work_tree {
            Some(t) => Verdict::Fire(
                Hit::new(
                    json!({"observed": {"work_tree": t}, "expected": "outside any git work tree"}),
                )
                .var("work_tree", t.display().to_string()),
            ),
            None => Verdict::Quiet,
        },
        "missing-owner" => {
            if !f.declared {
                return Verdict::Quiet; // privilege.shadow-key says more
            }
            let missing = match (f.owner.is_none(), f.purpose.is_none()) {
                (false, false) => return Verdict::Quiet,
                (true, true) => "owner or purpose",
                (true, false) => "owner",
                (false, true) => "purpose",
            };
            Verdict::Fire(
                Hit::new(json!({"observed": {"owner": f.owner, "purpose": f.purpose}, "expected": "owner and purpose"}))
                    .var("missing", missing),
            )
        }
        "wrong-environment" => {
            let own = f.environment.as_str();
            let other = if own == "production" {
                "sandbox"
            } else {
                "production"
            };
            // the login went to the other environment's host (config points the key there)
            if let Some(l) = &f.login {
                if host_environment(&l.base_url).is_some_and(|e| e != own) {
                    let mut hit = Hit::new(json!({
                        "observed": {"login_base_url": l.base_url},
                        "expected": format!("a {own} host"),
                    }))
                    .var("wrong_environment", other)
                    .var("wrong_hosts", l.base_url.clone())
                    .var("wrong_count", "1");
                    hit.subject = Some(other.to_string());
                    return Verdict::Fire(hit);
                }
            }
            let Some(u) = usage else {
                return Verdict::NotJudged("no usage evidence for this key".into());
            };
            let wrong: Vec<(&String, &u64)> = u
                .hosts
                .iter()
                .filter(|(h, _)| host_environment(h).is_some_and(|e| e != own))
                .collect();
            if wrong.is_empty() {
                return Verdict::Quiet;
            }
            let count: u64 = wrong.iter().map(|(_, n)| **n).sum();
            let hosts: Vec<String> = wrong.iter().map(|(h, _)| (*h).clone()).collect();
            let mut hit = Hit::new(json!({
                "observed": {"hosts": u.hosts},
                "expected": format!("{own} hosts only"),
            }))
            .var("wrong_environment", other)
            .var("wrong_hosts", list(&hosts))
            .var("wrong_count", count.to_string());
            hit.subject = Some(other.to_string());
            Verdict::Fire(hit)
        }
        "key-revoked" | "key-refused" => {
            let want = if rule.check == "key-revoked" {
                crate::finding::Verification::Revoked
            } else {
                crate::finding::Verification::Forbidden
            };
            match &f.login {
                Some(l) if l.verification == want => Verdict::Fire(
                    Hit::new(json!({"observed": {"verification": l.verification, "detail": l.detail, "base_url": l.base_url}, "expected": "live"}))
                        .var("login_detail", l.detail.clone()),
                ),
                _ => Verdict::Quiet,
            }
        }
        "key-leaked" => {
            if f.leaks.is_empty() {
                return Verdict::Quiet;
            }
            let places: Vec<String> = f
                .leaks
                .iter()
                .map(|l| {
                    let mut s = l.path.clone();
                    if let Some(n) = l.line {
                        s.push_str(&format!(":{n}"));
                    }
                    if let Some(c) = &l.commit {
                        s.push_str(&format!(" ({c})"));
                    }
                    s
                })
                .collect();
            let mut hit = Hit::new(json!({
                "observed": {"leaks": f.leaks.iter().map(|l| json!({"path": l.path, "line": l.line, "commit": l.commit, "finding": l.finding_id})).collect::<Vec<_>>()},
                "expected": "the key nowhere in clear text",
            }))
            .var("leak_count", places.len().to_string())
            .var("leak_places", short_list(&places, 5));
            hit.subject = f.fingerprint.clone();
            Verdict::Fire(hit)
        }
        "shadow-key" => {
            if f.declared {
                return Verdict::Quiet;
            }
            let mut at: Vec<String> = f.storage.plaintext_locations.clone();
            at.extend(f.leaks.iter().map(|l| l.path.clone()));
            let found = if at.is_empty() {
                "by discovery".to_string()
            } else {
                format!("in {}", short_list(&at, 5))
            };
            let verification = f.login.as_ref().map(|l| l.verification);
            let login_state = match verification {
                Some(Verification::Live) => {
                    "; it logs in live: whoever finds it can move money with it now"
                }
                Some(Verification::Revoked) => "; its login answered 401 (revoked or regenerated)",
                Some(Verification::Forbidden) => {
                    "; its login answered 403 (it exists, but an IP whitelist or permission refused the call)"
                }
                Some(Verification::Unknown) => "; whether it still logs in is unknown",
                None => "",
            };
            let mut hit = Hit::new(json!({
                "observed": {"declared": false, "found": at, "verification": verification},
                "expected": "declared as a [[key]]",
            }))
            .var("found_at", found)
            .var("login_state", login_state);
            if verification == Some(Verification::Live) {
                hit.severity = rule.severity_param("severity_live");
            }
            Verdict::Fire(hit)
        }
        "key-misconfigured" => {
            if f.config_problems.is_empty() {
                return Verdict::Quiet;
            }
            let mut hit = Hit::new(json!({
                "observed": {"config_problems": f.config_problems},
                "expected": "every value of the [[key]] valid",
                "judged": "without the invalid values: unknown scopes are ignored, so the other findings are no proof of least privilege",
            }))
            .var("config_problems", f.config_problems.join("; "));
            hit.subject = Some(f.config_problems.join("\n"));
            Verdict::Fire(hit)
        }
        "secret-unresolved" => match &f.secret_problem {
            Some(p) => {
                Verdict::Fire(Hit::new(json!({"observed": p})).var("secret_problem", p.clone()))
            }
            None => Verdict::Quiet,
        },
        "unknown-route" => {
            let Some(u) = usage else {
                return Verdict::Quiet;
            };
            let unknown: Vec<String> = u
                .routes
                .iter()
                .filter(|(_, r)| r.scope.is_none() && !r.template.ends_with("/login"))
                .map(|(k, _)| k.clone())
                .collect();
            if unknown.is_empty() {
                return Verdict::Quiet;
            }
            Verdict::Fire(
                Hit::new(json!({
                    "unknown_routes": u.routes.iter().filter(|(_, r)| r.scope.is_none() && !r.template.ends_with("/login")).map(|(k, r)| json!({"route": k, "calls": r.count})).collect::<Vec<_>>(),
                }))
                .var("unknown_count", unknown.len().to_string())
                .var("unknown_routes", short_list(&unknown, 5)),
            )
        }
        // handled outside the per-key loop
        "unknown-key" | "not-judged" => Verdict::Quiet,
        _ => Verdict::Quiet,
    }
}

fn finding(
    ctx_vars: &BTreeMap<&'static str, String>,
    rule: &PrivilegeRule,
    f: Option<&KeyFacts>,
    key: &str,
    hit: Hit,
    usage: Option<&KeyUsage>,
) -> Finding {
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
    let judged_on_usage = EVIDENCE_CHECKS.contains(&rule.check.as_str())
        || matches!(
            rule.check.as_str(),
            "admin-key" | "unknown-key" | "unknown-route" | "not-judged"
        );
    if let Some(u) = usage.filter(|_| judged_on_usage) {
        out.start = Some(u.coverage_start.to_rfc3339());
        out.end = Some(u.last_seen.to_rfc3339());
    }
    out.evidence = Some(hit.evidence);
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
        for rule in &rules.rules {
            if !f.declared && !SHADOW_CHECKS.contains(&rule.check.as_str()) {
                continue;
            }
            match check(&ctx, rule) {
                Verdict::Quiet => {}
                Verdict::NotJudged(reason) => {
                    if EVIDENCE_CHECKS.contains(&rule.check.as_str()) {
                        not_judged.push((rule.id.clone(), reason));
                    }
                }
                Verdict::Fire(hit) => {
                    if rule.check == "unused-key" {
                        unused_key_fired = true;
                    }
                    out.push(finding(
                        &vars,
                        rule,
                        Some(f),
                        &f.name,
                        hit,
                        ctx.usage.as_ref(),
                    ));
                }
            }
        }
        if unused_key_fired && ctx.usage.is_none() {
            not_judged.clear();
        }
        if !not_judged.is_empty() {
            for rule in rules.with_check("not-judged") {
                // one finding per key: the first reason is the main one
                let mut reasons: Vec<&str> = not_judged.iter().map(|(_, r)| r.as_str()).collect();
                reasons.dedup();
                let ids: Vec<String> = not_judged.iter().map(|(id, _)| id.clone()).collect();
                let hit = Hit::new(json!({
                    "rules": not_judged.iter().map(|(id, r)| json!({"rule": id, "reason": r})).collect::<Vec<_>>(),
                }))
                .var("reason", reasons.join("; "))
                .var("not_judged_rules", ids.join(", "));
                out.push(finding(
                    &vars,
                    rule,
                    Some(f),
                    &f.name,
                    hit,
                    ctx.usage.as_ref(),
                ));
            }
        }
    }
    if let Some(ev) = evidence {
        for rule in rules.with_check("unknown-key") {
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
                out.push(finding(&vars, rule, None, k, hit, Some(u)));
            }
        }
    }
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out
}
