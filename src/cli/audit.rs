//! `awxguard audit`: inventory, one login per key, discovery, usage evidence, the least-privilege
//! rules, the findings store, the report. A key that cannot be examined (secret unreadable,
//! Airwallex unreachable) is named in the summary and the audit goes on with the others.

use super::inventory::{gather, rows, usage_paths, Search};
use super::Context;
use crate::privilege::{self, PrivilegeRules};
use crate::report::Report;
use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Usage events: a JSON Lines file or a directory of them (repeatable); adds to
    /// `[audit] usage` in the config. Without evidence, usage rules say "not judged".
    #[arg(long, value_name = "FILE|DIR")]
    pub usage: Vec<PathBuf>,
    /// Do not log in: judge the declared facts only (status `unverified`).
    #[arg(long)]
    pub no_verify: bool,
    /// Search this directory or file (config directories, env files) for keys; repeatable;
    /// adds to `[audit] discover`. Undeclared keys found are shadow keys.
    #[arg(long, value_name = "PATH")]
    pub discover: Vec<PathBuf>,
    /// Scan this source tree or repository for leaked keys (repeatable; ignore files apply, as
    /// in `awxguard scan`): a declared key found there is leaked (`privilege.key-leaked`).
    #[arg(long = "scan", value_name = "PATH")]
    pub scan: Vec<PathBuf>,
    /// Add the privilege rules in this directory (repeatable); adds to `[audit] rules`.
    #[arg(long = "privilege-rules", value_name = "DIR")]
    pub privilege_rules: Vec<PathBuf>,
    /// Do not record the findings in the database (no lifecycle).
    #[arg(long)]
    pub no_store: bool,
}

pub fn run(ctx: &Context, args: AuditArgs) -> anyhow::Result<u8> {
    let now = crate::clock::from_env().now();
    let mut discover = ctx.config.audit.discover.clone();
    discover.extend(args.discover.iter().cloned());
    if ctx.config.keys.is_empty() && discover.is_empty() && args.scan.is_empty() {
        anyhow::bail!(
            "no keys to audit: add [[key]] tables to {} (see examples/awxguard.toml) or give \
             --discover PATH",
            ctx.config
                .path
                .as_deref()
                .unwrap_or(std::path::Path::new(crate::config::DEFAULT_PATH))
                .display()
        );
    }
    let rules_started = std::time::Instant::now();
    let mut rule_dirs = ctx.config.audit.rule_dirs.clone();
    rule_dirs.extend(args.privilege_rules.iter().cloned());
    let rules = PrivilegeRules::load(
        &rule_dirs,
        &ctx.config.audit.disable,
        &ctx.config.audit.params,
    )
    .context("cannot load the privilege rules")?;
    let rules_ms = rules_started.elapsed().as_millis() as u64;
    let usage = usage_paths(ctx, &args.usage);
    let search = Search {
        discover,
        leaks: args.scan.clone(),
    };
    let mut g = gather(ctx, !args.no_verify, &search, &usage)?;
    let store = if args.no_store {
        None
    } else {
        Some(ctx.open_store()?)
    };
    if let Some(st) = &store {
        link_leaks(&mut g.inventory, st.as_ref(), now)?;
    }
    let mut timings = g.timings.clone();
    timings.insert("rules".into(), rules_ms);

    let started = std::time::Instant::now();
    let facts = g.inventory.facts();
    let mut findings = privilege::evaluate(&facts, g.evidence.as_ref(), &g.catalog, &rules, now);
    timings.insert("evaluate".into(), started.elapsed().as_millis() as u64);
    let started = std::time::Instant::now();
    let mut resolved = Vec::new();
    let mut store_summary = None;
    if let Some(store) = &store {
        let recorded = store
            .record("audit", &mut findings, now)
            .context("cannot record the findings")?;
        store_summary = Some(recorded.summary);
        resolved = recorded.resolved;
        timings.insert("store".into(), started.elapsed().as_millis() as u64);
    }
    let mut report = Report::new("audit", findings);
    let s = &mut report.summary;
    let declared = facts.iter().filter(|f| f.declared).count();
    s.extra.insert(
        "audit".into(),
        json!({
            "keys": facts.len(),
            "declared": declared,
            "undeclared": facts.len() - declared,
            "verification": g.verify,
            "discovery": g.discover,
            "leak_scan": g.leak_scan,
            "evidence": g.evidence.as_ref().map(|e| json!({
                "sources": e.sources.len(),
                "keys": e.keys.len(),
                "rejected": e.rejected,
            })),
            "store": store_summary,
            "timings_ms": timings,
        }),
    );
    s.extra
        .insert("keys".into(), serde_json::to_value(rows(&g, now))?);
    if !resolved.is_empty() {
        for f in &resolved {
            s.notes.push(format!(
                "resolved since the last audit: {} {} ({})",
                f.rule,
                f.key.as_deref().unwrap_or("-"),
                f.id
            ));
        }
        s.extra
            .insert("resolved".into(), serde_json::to_value(&resolved)?);
    }
    for d in [&g.discover, &g.leak_scan].into_iter().flatten() {
        s.problems.extend(d.problems.iter().cloned());
    }
    if let Some(ev) = &g.evidence {
        if ev.rejected > 0 {
            s.notes.push(format!(
                "{} usage-event lines rejected (see below); every valid line was used",
                ev.rejected
            ));
        }
        s.notes.extend(ev.problems.iter().cloned());
    } else {
        s.notes
            .push("no usage evidence given (--usage FILE|DIR): usage rules are not judged".into());
    }
    s.notes.extend(g.inventory.problems());
    let started = std::time::Instant::now();
    let code = ctx.emit(&report)?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        findings = report.findings.len(),
        "report rendered"
    );
    Ok(code)
}

/// Leaks the scanner recorded (`awxguard scan` with a database, scopes `scan:...`, not resolved) become the `leaks` of
/// the inventory key with the same fingerprint.
fn link_leaks(
    inv: &mut crate::inventory::Inventory,
    store: &dyn crate::store::Store,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let stored = store
        .list(None, now)
        .context("cannot read the scanner's findings")?;
    for s in stored.into_iter().filter(|s| s.scope.starts_with("scan")) {
        let f = &s.finding;
        if f.rule != crate::inventory::API_KEY_RULE
            || f.status == Some(crate::finding::Status::Resolved)
        {
            continue;
        }
        let (Some(secret), Some(path)) = (&f.secret, &f.path) else {
            continue;
        };
        if let Some(e) = inv.by_fingerprint_mut(&secret.fingerprint) {
            if e.facts.leaks.iter().any(|l| l.finding_id == f.id) {
                continue;
            }
            e.facts.leaks.push(privilege::LeakFact {
                rule: f.rule.clone(),
                path: path.clone(),
                line: f.line,
                commit: f.commit.as_ref().map(|c| c.id.clone()),
                finding_id: f.id.clone(),
            });
        }
    }
    Ok(())
}
