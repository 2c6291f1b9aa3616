//! `awxguard inventory`: the declared Airwallex keys (and, with `discover`, the undeclared ones),
//! what each is declared to do, what one login says it can do, and when it was last used.

use super::Context;
use crate::finding::Finding;
use crate::inventory::{self, DiscoverOutcome, Entry, Inventory, VerifyOptions, VerifyStats};
use crate::privilege::{Catalog, Environment, KeyKind, PrivilegeRules};
use crate::report::Report;
use crate::scan::ScanOptions;
use crate::usage::Evidence;
use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(subcommand)]
    pub command: Option<InventoryCommand>,
    /// Usage events (JSON Lines file or directory; repeatable) for the "last used" column;
    /// adds to `[audit] usage` in the config.
    #[arg(long, global = true, value_name = "FILE|DIR")]
    pub usage: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Log in once per key (within Airwallex's login rate limit) and show what each key can
    /// really do, from its token's permissions.
    Verify,
    /// Search config directories and env files for Airwallex keys and match them to the
    /// inventory by fingerprint; keys nobody declared are listed as shadow keys.
    Discover {
        /// Directories or files to search (ignored files included).
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
}

/// What the inventory steps produced.
pub struct Gathered {
    pub inventory: Inventory,
    pub verify: Option<VerifyStats>,
    pub discover: Option<DiscoverOutcome>,
    /// The leak scan over source trees (`audit --scan`).
    pub leak_scan: Option<DiscoverOutcome>,
    pub evidence: Option<Evidence>,
    pub catalog: Catalog,
    /// Milliseconds per step (`inventory`, `verify`, `discover`, `evidence`).
    pub timings: std::collections::BTreeMap<String, u64>,
}

/// Where to look for keys beyond the config.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Config directories and env files (where keys are stored).
    pub discover: Vec<PathBuf>,
    /// Source trees and repositories (where a key is leaked).
    pub leaks: Vec<PathBuf>,
}

/// Inventory, then (optionally) verification, discovery and usage evidence.
pub fn gather(
    ctx: &Context,
    verify: bool,
    search: &Search,
    usage: &[PathBuf],
) -> anyhow::Result<Gathered> {
    let mut timings = std::collections::BTreeMap::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &str, timings: &mut std::collections::BTreeMap<String, u64>| {
        timings.insert(name.to_string(), clock.elapsed().as_millis() as u64);
        clock = std::time::Instant::now();
    };
    let catalog = Catalog::builtin();
    let mut inv = Inventory::from_config(&ctx.config, &catalog);
    lap("inventory", &mut timings);
    let verify = verify
        .then(|| inventory::verify(&mut inv, &ctx.config.airwallex, &VerifyOptions::default()));
    if verify.is_some() {
        lap("verify", &mut timings);
    }
    let mut discover = None;
    let mut leak_scan = None;
    for (paths, mode) in [
        (&search.discover, inventory::Found::Stored),
        (&search.leaks, inventory::Found::Leaked),
    ] {
        if paths.is_empty() {
            continue;
        }
        for p in paths {
            std::fs::symlink_metadata(p)
                .with_context(|| format!("cannot search {} for keys", p.display()))?;
        }
        let matcher = super::scan::build_matcher(ctx, &[], &[])?;
        let opts = ScanOptions {
            respect_ignore: true,
            follow_symlinks: ctx.config.scan.follow_symlinks.unwrap_or(true),
            max_file_size: ctx
                .config
                .scan
                .max_file_size
                .unwrap_or(crate::scan::DEFAULT_MAX_FILE_SIZE),
            keep_secrets: None,
        };
        let before = inv.entries.len();
        let out = inventory::discover(&mut inv, &matcher, paths, &opts, mode);
        // Shadow keys found with a client ID next to them are verified too.
        if verify.is_some() && inv.entries.len() > before {
            let mut shadow = Inventory {
                entries: inv.entries.split_off(before),
            };
            inventory::verify(
                &mut shadow,
                &ctx.config.airwallex,
                &VerifyOptions::default(),
            );
            inv.entries.extend(shadow.entries);
        }
        match mode {
            inventory::Found::Stored => {
                lap("discover", &mut timings);
                discover = Some(out);
            }
            inventory::Found::Leaked => {
                lap("leak_scan", &mut timings);
                leak_scan = Some(out);
            }
        }
    }
    let evidence = if usage.is_empty() {
        None
    } else {
        let ev =
            crate::usage::read_evidence(usage, &catalog).context("cannot read usage events")?;
        lap("evidence", &mut timings);
        Some(ev)
    };
    Ok(Gathered {
        inventory: inv,
        verify,
        discover,
        leak_scan,
        evidence,
        catalog,
        timings,
    })
}

/// One row of the inventory listing. Never the secret: its fingerprint only.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub declared: bool,
    pub environment: Environment,
    pub kind: KeyKind,
    /// Listed scopes of a custom key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// How many catalog scopes the declaration grants.
    pub scope_count: usize,
    pub owner: Option<String>,
    pub purpose: Option<String>,
    pub integration: Option<String>,
    pub created: Option<NaiveDate>,
    pub age_days: Option<i64>,
    pub rotated: Option<NaiveDate>,
    pub rotated_days_ago: Option<i64>,
    /// Last event in the usage evidence; `None` without evidence for the key.
    pub last_used: Option<DateTime<Utc>>,
    /// `live`, `revoked`, `forbidden`, `unknown` (login), or `unverified`.
    pub status: String,
    /// The token's permissions claim, when a login succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// What those permissions mean, as far as Airwallex documents them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_detail: Option<String>,
    pub fingerprint: Option<String>,
    /// Why the secret could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Invalid values of the declaration (`file:line: field: what is wrong`), left out above.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_problems: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub found_in: Vec<String>,
    /// Where and how the secret is stored (source, file mode, git work tree).
    pub storage: crate::privilege::Storage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_at: Option<String>,
}

pub fn rows(g: &Gathered, now: DateTime<Utc>) -> Vec<Row> {
    let today = now.date_naive();
    g.inventory
        .entries
        .iter()
        .map(|e: &Entry| {
            let f = &e.facts;
            let usage = g
                .evidence
                .as_ref()
                .and_then(|ev| ev.for_key(&f.name, f.fingerprint.as_deref()));
            Row {
                name: f.name.clone(),
                declared: f.declared,
                environment: f.environment,
                kind: f.kind,
                scopes: if f.kind == KeyKind::Custom {
                    f.declared_scopes.clone()
                } else {
                    Vec::new()
                },
                scope_count: f.declared_scopes.len(),
                owner: f.owner.clone(),
                purpose: f.purpose.clone(),
                integration: f.integration.clone(),
                created: f.created,
                age_days: f.created.map(|c| (today - c).num_days()),
                rotated: f.rotated,
                rotated_days_ago: f.rotated.map(|r| (today - r).num_days()),
                last_used: usage.map(|u| u.last_seen),
                status: f
                    .login
                    .as_ref()
                    .map(|l| l.verification.as_str().to_string())
                    .unwrap_or_else(|| "unverified".into()),
                permissions: f.login.as_ref().and_then(|l| l.permissions.clone()),
                effective: f
                    .login
                    .as_ref()
                    .and_then(|l| l.permissions.as_ref())
                    .map(|p| inventory::effective_access(p).describe()),
                login_detail: f.login.as_ref().map(|l| l.detail.clone()),
                fingerprint: f.fingerprint.clone(),
                problem: f.secret_problem.clone(),
                config_problems: f.config_problems.clone(),
                found_in: f.storage.plaintext_locations.clone(),
                storage: f.storage.clone(),
                declared_at: f.declared_at.clone(),
            }
        })
        .collect()
}

/// The human table, then one detail line per remark.
pub fn render_table(rows: &[Row], evidence: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let header = [
        "NAME",
        "ENV",
        "KIND",
        "SCOPES",
        "OWNER",
        "AGE",
        "ROTATED",
        "LAST USED",
        "STATUS",
        "FINGERPRINT",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let scopes = match r.kind {
            KeyKind::Custom => match r.scopes.len() {
                0 => "-".to_string(),
                1 => r.scopes[0].clone(),
                n => format!("{} +{}", r.scopes[0], n - 1),
            },
            KeyKind::Admin | KeyKind::ReadWrite => format!("all ({})", r.scope_count),
            KeyKind::ReadOnly => format!("read ({})", r.scope_count),
        };
        let name = if r.declared {
            r.name.clone()
        } else {
            "(undeclared)".to_string()
        };
        let kind = if r.declared { r.kind.as_str() } else { "?" };
        let last_used = match (&r.last_used, evidence) {
            (Some(t), _) => t.format("%Y-%m-%d").to_string(),
            (None, true) => "no evidence".into(),
            (None, false) => "-".into(),
        };
        table.push(vec![
            name,
            if r.declared {
                r.environment.as_str().into()
            } else {
                "?".into()
            },
            kind.into(),
            scopes,
            r.owner.clone().unwrap_or_else(|| "-".into()),
            r.age_days.map_or("-".into(), |d| format!("{d}d")),
            r.rotated.map_or("never".into(), |d| {
                format!("{d} ({}d)", r.rotated_days_ago.unwrap_or(0))
            }),
            last_used,
            r.status.clone(),
            r.fingerprint.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    let mut details = Vec::new();
    for r in rows {
        for p in &r.config_problems {
            details.push(format!("{}: config problem: {p}", r.name));
        }
        if let Some(p) = &r.problem {
            details.push(format!("{}: secret not resolvable: {p}", r.name));
        }
        if let Some(e) = &r.effective {
            details.push(format!("{}: effective permissions: {e}", r.name));
        } else if let Some(d) = &r.login_detail {
            if r.status != "live" {
                details.push(format!("{}: {} ({d})", r.name, r.status));
            }
        }
        for loc in &r.found_in {
            details.push(format!("{}: found in plain text at {loc}", r.name));
        }
    }
    if !details.is_empty() {
        writeln!(out)?;
        for d in details {
            writeln!(out, "  {d}")?;
        }
    }
    Ok(())
}

/// The checks `inventory discover` reports as findings: what discovery itself establishes.
const DISCOVERY_CHECKS: &[&str] = &["shadow-key", "secret-in-plaintext-file"];

/// The discovery findings (shadow keys, declared keys found in plain text), judged by the
/// privilege rules in force (config rule directories, disabled ids and overrides apply).
fn discovery_findings(ctx: &Context, g: &Gathered) -> anyhow::Result<Vec<Finding>> {
    let mut rules = PrivilegeRules::load(
        &ctx.config.audit.rule_dirs,
        &ctx.config.audit.disable,
        &ctx.config.audit.params,
    )
    .context("cannot load the privilege rules")?;
    rules
        .rules
        .retain(|r| DISCOVERY_CHECKS.contains(&r.check.as_str()));
    let now = crate::clock::from_env().now();
    Ok(crate::privilege::evaluate(
        &g.inventory.facts(),
        None,
        &g.catalog,
        &rules,
        now,
    ))
}

/// The listing as a report: JSON carries the rows in `summary.keys` and `findings` (discovery's
/// findings; none for the plain listing); human output is the table, then the findings.
pub fn emit_listing(
    ctx: &Context,
    g: &Gathered,
    command: &str,
    findings: Vec<Finding>,
) -> anyhow::Result<u8> {
    let now = crate::clock::from_env().now();
    let rows = rows(g, now);
    let mut report = Report::new(command, findings);
    report
        .summary
        .extra
        .insert("keys".into(), serde_json::to_value(&rows)?);
    if let Some(v) = &g.verify {
        report
            .summary
            .extra
            .insert("verification".into(), serde_json::to_value(v)?);
    }
    if let Some(d) = &g.discover {
        report
            .summary
            .extra
            .insert("discovery".into(), serde_json::to_value(d)?);
        report.summary.problems = d.problems.clone();
    }
    if let Some(ev) = &g.evidence {
        report.summary.notes.extend(ev.problems.iter().cloned());
    }
    report.summary.notes.extend(g.inventory.problems());
    if ctx.global.format == crate::report::Format::Human {
        let mut buf = Vec::new();
        render_table(&rows, g.evidence.is_some(), &mut buf)?;
        for p in &report.summary.problems {
            writeln!(buf, "warning: {}: {}", p.path, p.error)?;
        }
        // Per-key problems are in the detail lines already; the evidence's remarks are not.
        if let Some(ev) = &g.evidence {
            for n in &ev.problems {
                writeln!(buf, "note: {n}")?;
            }
        }
        let shadow = rows.iter().filter(|r| !r.declared).count();
        let mut line = format!("{} keys", rows.len());
        if shadow > 0 {
            line.push_str(&format!(" ({shadow} undeclared)"));
        }
        writeln!(buf, "{line}")?;
        if !report.findings.is_empty() {
            writeln!(buf)?;
            crate::report::render(&report, crate::report::Format::Human, ctx.style(), &mut buf)?;
        }
        write_out(ctx, &buf)?;
        return Ok(crate::finding::exit_code(
            &report.findings,
            ctx.global.fail_on,
        ));
    }
    ctx.emit(&report)
}

fn write_out(ctx: &Context, bytes: &[u8]) -> anyhow::Result<()> {
    match &ctx.global.output {
        Some(p) => std::fs::write(p, bytes)
            .with_context(|| format!("cannot write report to {}", p.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(bytes).and_then(|_| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The usage paths from the config and the command line.
pub fn usage_paths(ctx: &Context, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut v = ctx.config.audit.usage.clone();
    v.extend_from_slice(extra);
    v
}

pub fn run(ctx: &Context, args: InventoryArgs) -> anyhow::Result<u8> {
    let usage = usage_paths(ctx, &args.usage);
    if ctx.config.keys.is_empty()
        && !matches!(args.command, Some(InventoryCommand::Discover { .. }))
    {
        anyhow::bail!(
            "no keys declared: add [[key]] tables to {} (see examples/awxguard.toml)",
            ctx.config
                .path
                .as_deref()
                .unwrap_or(std::path::Path::new(crate::config::DEFAULT_PATH))
                .display()
        );
    }
    match args.command {
        None => {
            let g = gather(ctx, false, &Search::default(), &usage)?;
            emit_listing(ctx, &g, "inventory", Vec::new())
        }
        Some(InventoryCommand::Verify) => {
            let g = gather(ctx, true, &Search::default(), &usage)?;
            emit_listing(ctx, &g, "inventory verify", Vec::new())
        }
        Some(InventoryCommand::Discover { paths }) => {
            let search = Search {
                discover: paths,
                leaks: Vec::new(),
            };
            let g = gather(ctx, false, &search, &usage)?;
            let findings = discovery_findings(ctx, &g)?;
            emit_listing(ctx, &g, "inventory discover", findings)
        }
    }
}
