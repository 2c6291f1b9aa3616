//! Checks of the usage evidence itself: routes the catalog does not know
//! (`rules/privilege/evidence.toml`; `unknown-key` and `not-judged` are judged in `evaluate`).

use super::*;

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
