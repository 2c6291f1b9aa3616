//! Checks of how a key is kept: rotation, whitelist, where and how its secret is stored, owner,
//! login state, leaks, shadow keys, config values (`rules/privilege/hygiene.toml`).

use super::*;

/// `rotation-overdue`.
pub(super) fn rotation_overdue(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
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

/// `no-ip-whitelist`.
pub(super) fn no_ip_whitelist(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    if f.environment != crate::airwallex::Environment::Production || !f.ip_whitelist.is_empty() {
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

/// `secret-literal`: a finding whatever the config says; `allow_literal = true` makes it
/// acknowledged (by the config), never silent.
pub(super) fn secret_literal(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let SecretSource::Literal { accepted } = f.storage.source else {
        return Verdict::Quiet;
    };
    let mut ev = json!({
        "observed": "literal in the config",
        "expected": "env:VAR or file:PATH",
    });
    if accepted {
        ev["accepted"] = json!(format!(
            "allow_literal = true in the [[key]] at {}",
            f.declaration().unwrap_or("the config")
        ));
    }
    let mut hit = Hit::new(ev);
    hit.acknowledged = accepted;
    Verdict::Fire(hit)
}

/// `secret-file-readable`.
pub(super) fn secret_file_readable(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    if !(f.storage.world_readable || f.storage.group_readable) {
        return Verdict::Quiet;
    }
    let path = match &f.storage.source {
        SecretSource::File { path } => path.display().to_string(),
        _ => f
            .declaration()
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

/// `secret-in-plaintext-file`.
pub(super) fn secret_in_plaintext_file(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    // a shadow key's plain-text places are privilege.shadow-key's to report
    if !f.declared || f.storage.plaintext_locations.is_empty() {
        return Verdict::Quiet;
    }
    let places = &f.storage.plaintext_locations;
    let mut hit = Hit::new(json!({
                "observed": {"plaintext_locations": places},
                "expected": format!("the key only where {} says it lives", f.declaration().unwrap_or("the config")),
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

/// `secret-in-git-work-tree`.
pub(super) fn secret_in_git_work_tree(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    match &f.storage.in_git_work_tree {
        Some(t) => Verdict::Fire(
            Hit::new(
                json!({"observed": {"work_tree": t}, "expected": "outside any git work tree"}),
            )
            .var("work_tree", t.display().to_string()),
        ),
        None => Verdict::Quiet,
    }
}

/// `missing-owner`.
pub(super) fn missing_owner(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
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

/// `key-revoked` (401) and `key-refused` (403): what the login said.
pub(super) fn login_refused(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    let want = if rule.check == Check::KeyRevoked {
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

/// `key-leaked`.
pub(super) fn key_leaked(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
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
    // a key whose login answers 401 can no longer be used: still a leak to clean up
    if f.login.as_ref().map(|l| l.verification) == Some(Verification::Revoked) {
        hit.severity = rule.severity_param("severity_revoked");
    }
    Verdict::Fire(hit)
}

/// `shadow-key`.
pub(super) fn shadow_key(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
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
    let mut hit = Hit::new(json!({
        "observed": {"declared": false, "found": at, "verification": verification},
        "expected": "declared as a [[key]]",
    }))
    .var("found_at", found);
    if verification == Some(Verification::Live) {
        hit.severity = rule.severity_param("severity_live");
    }
    Verdict::Fire(hit)
}

/// `key-misconfigured`.
pub(super) fn key_misconfigured(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
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

/// `secret-unresolved`.
pub(super) fn secret_unresolved(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let f = ctx.f;
    match &f.secret_problem {
        Some(p) => Verdict::Fire(Hit::new(json!({"observed": p})).var("secret_problem", p.clone())),
        None => Verdict::Quiet,
    }
}
