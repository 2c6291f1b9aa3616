//! Checks of the usage evidence itself: routes the catalog does not know
//! (`rules/privilege/evidence.toml`; `unknown-key` and `not-judged` are judged in `evaluate`).

use super::*;
use crate::usage::screen::Suspect;

/// `unknown-route`.
pub(super) fn unknown_route(ctx: &KeyCtx<'_>, _rule: &PrivilegeRule) -> Verdict {
    let usage = ctx.usage.as_ref();
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

/// The window of screened calls, as findings carry it: first call to one second after the last.
fn suspect_window(s: &Suspect) -> (String, String) {
    let end = s.last + Duration::seconds(1);
    (
        s.first.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// The counts every screened-call finding carries.
fn suspect_hit(s: &Suspect, evidence: Value, rule: &PrivilegeRule) -> Hit {
    let mut hit = Hit::new(evidence)
        .var("calls", s.calls.to_string())
        .var("ok", s.ok.to_string())
        .var("writes", s.writes.to_string())
        .var(
            "window",
            human_window(s.first, s.last + Duration::seconds(1)),
        );
    hit.window = Some(suspect_window(s));
    if s.writes > 0 {
        hit.severity = rule.severity_param("severity_write");
    }
    hit
}

/// `usage.outside-whitelist`: calls from addresses outside the key's declared IP whitelist (the
/// evidence's screen kept them out of what the replacement key is computed from), one finding
/// per /24 network.
pub(super) fn outside_whitelist(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let Some(s) = &ctx.screened else {
        return Verdict::Quiet;
    };
    if s.outside_whitelist.is_empty() {
        return Verdict::Quiet;
    }
    let whitelist = ctx.f.ip_whitelist.join(", ");
    let hits = s
        .outside_whitelist
        .iter()
        .map(|(net, sus)| {
            let addresses: Vec<String> = sus.addresses.keys().cloned().collect();
            let mut hit = suspect_hit(
                sus,
                json!({
                    "network": net,
                    "addresses": addresses,
                    "whitelist": ctx.f.ip_whitelist,
                    "observed": sus.calls,
                    "expected": 0,
                    "writes": sus.writes,
                    "ok": sus.ok,
                    "routes": sus.routes,
                    "baseline": {"kind": "declared ip_whitelist"},
                    "not_evidence_of_need": true,
                }),
                rule,
            )
            .var("network", net.clone())
            .var("address", addresses.join(", "))
            .var("whitelist", whitelist.clone());
            hit.subject = Some(net.clone());
            hit
        })
        .collect();
    Verdict::FireEach(hits)
}

/// `usage.undeclared-scope`: calls needing a scope the key does not declare, one finding per
/// scope; never a reason to grant the scope.
pub(super) fn undeclared_scope(ctx: &KeyCtx<'_>, rule: &PrivilegeRule) -> Verdict {
    let Some(s) = &ctx.screened else {
        return Verdict::Quiet;
    };
    if s.undeclared_scope.is_empty() {
        return Verdict::Quiet;
    }
    let declared = short_list(&ctx.scopes, 12);
    let hits = s
        .undeclared_scope
        .iter()
        .map(|(scope, sus)| {
            let routes: Vec<String> = sus.routes.keys().cloned().collect();
            let mut hit = suspect_hit(
                sus,
                json!({
                    "scope": scope,
                    "routes": routes,
                    "declared_scopes": ctx.scopes,
                    "addresses": sus.addresses,
                    "observed": sus.calls,
                    "expected": 0,
                    "writes": sus.writes,
                    "ok": sus.ok,
                    "baseline": {"kind": "declared scopes"},
                    "not_evidence_of_need": true,
                }),
                rule,
            )
            .var("scope", scope.clone())
            .var("route", routes.join(", "))
            .var("declared_scopes", declared.clone());
            hit.subject = Some(scope.clone());
            hit
        })
        .collect();
    Verdict::FireEach(hits)
}
