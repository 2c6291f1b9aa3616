//! Checks of what a key can do against what it needs: tiers, token permissions, scopes used and
//! unused, money-movement combinations, sharing, environments (`rules/privilege/access.toml`).

use super::*;

/// `admin-key`.
pub(super) fn admin_key(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
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
        None => "which scopes it needs is not judged: no usage evidence for this key".to_string(),
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

/// `disguised-admin`.
pub(super) fn disguised_admin(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    match ctx.permissions() {
        Some(p) if is_admin_perms(p) && matches!(f.kind, KeyKind::ReadOnly | KeyKind::Custom) => {
            let mut hit = Hit::new(json!({
                "observed": p,
                "expected": format!("the permissions of a {:?} key", f.kind),
            }));
            hit.replacement = Some(ctx.replacement.clone());
            Verdict::Fire(hit)
        }
        _ => Verdict::Quiet,
    }
}

/// `declared-mismatch`.
pub(super) fn declared_mismatch(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    match ctx.permissions() {
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
    }
}

/// `permissions-unknown`.
pub(super) fn permissions_unknown(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    match ctx.permissions() {
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
    }
}

/// `write-never-used`.
pub(super) fn write_never_used(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
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
    if u.coverage_start > ctx.now - crate::clock::days(days) {
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

/// `unused-scope`.
pub(super) fn unused_scope(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
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

/// `unused-key`.
pub(super) fn unused_key(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
    let days = rule.int("days");
    let start = ctx.now - crate::clock::days(days);
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

/// `shared-key`.
pub(super) fn shared_key(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
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

/// `payee-and-pay`.
pub(super) fn payee_and_pay(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
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
    // "for paying" only for a key whose replacement pays
    let role = if rep.scopes.iter().any(|s| s == "transfer:write") {
        " for paying,"
    } else {
        ""
    };
    hit = hit
        .var("replacement_scopes", list(&rep.scopes))
        .var("replacement_role", role);
    hit.replacement = Some(rep);
    Verdict::Fire(hit)
}

/// `webhook-write-unneeded`.
pub(super) fn webhook_write_unneeded(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
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
    if u.coverage_start > ctx.now - crate::clock::days(days) {
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

/// `wrong-environment`.
pub(super) fn wrong_environment(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let usage = ctx.usage.as_ref();
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
