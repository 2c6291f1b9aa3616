//! What happens to a scan's findings after the scan: `--baseline` drops judged findings and
//! reports stale entries, `--verify` logs in with each key found, `--write-baseline` records the
//! findings. One step over the report, so every kind of scan (tree, stdin, history) shares it.

use super::super::Context;
use crate::report::{Report, RuleInfo};
use crate::rules::leak::Validator;
use crate::scan::baseline::{self, Baseline};
use crate::scan::verify::{self, Secrets};
use crate::scan::{Matcher, ScanOptions};
use crate::store::Recorded;
use anyhow::Context as _;
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, Args, Default, Clone)]
pub struct CheckArgs {
    /// Log in with each client-ID-plus-key pair found to tell live keys from revoked ones. Sends
    /// the key to the configured Airwallex base URL, else to Airwallex production and then the
    /// sandbox hosts; never elsewhere. A live key becomes critical.
    #[arg(long)]
    pub verify: bool,
    /// Drop findings recorded in this baseline file (matched on rule, fingerprint and path);
    /// entries that match nothing are reported as stale.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Record every finding of this scan in this baseline file (keeping the reasons of entries
    /// carried over from --baseline), print the report, and exit 0.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
}

/// The rules in force as the report describes them (SARIF rule metadata).
pub fn rule_infos(matcher: &Matcher) -> Vec<RuleInfo> {
    matcher
        .rules()
        .rules
        .iter()
        .map(|r| RuleInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            severity: r.severity,
        })
        .collect()
}

/// The last step of every scan (files, stdin, and history once it lands): describe the rules,
/// apply the baseline, verify, write the baseline, render. Returns the exit code.
pub fn finish(
    ctx: &Context,
    args: &CheckArgs,
    matcher: &Matcher,
    opts: &ScanOptions,
    mut report: Report,
    record_scope: Option<&str>,
) -> anyhow::Result<u8> {
    report.rules = rule_infos(matcher);
    let key_rules: BTreeSet<String> = matcher
        .rules()
        .rules
        .iter()
        .filter(|r| r.validate == Some(Validator::AirwallexApiKey))
        .map(|r| r.id.clone())
        .collect();
    let secrets = opts.keep_secrets.clone().unwrap_or_default();
    let decided = apply(ctx, args, &mut report, &secrets, &key_rules)?;
    if let Some(scope) = record_scope {
        record(ctx, scope, &mut report)?;
    }
    let code = ctx.emit(&report)?;
    Ok(decided.unwrap_or(code))
}

/// Records the scan's findings in the database (`scan --record`):
/// each finding gets its lifecycle status (`new`, `open`, `acknowledged`), and what an earlier
/// scan of the same target found and this one does not is reported as resolved. Acknowledged
/// and resolved findings no longer fail the run. The audit links recorded API-key leaks to
/// inventory keys by fingerprint.
fn record(ctx: &Context, scope: &str, report: &mut Report) -> anyhow::Result<()> {
    let now = crate::clock::from_env().now();
    let store = ctx.open_store()?;
    let Recorded { summary, resolved } = store
        .record(scope, &mut report.findings, now)
        .context("cannot record the scan's findings")?;
    for f in &resolved {
        report.summary.notes.push(format!(
            "resolved since the last scan: {} {} ({})",
            f.rule,
            f.path.as_deref().unwrap_or("-"),
            f.id
        ));
    }
    report.summary.extra.insert(
        "store".into(),
        serde_json::json!({ "scope": scope, "record": summary }),
    );
    if !resolved.is_empty() {
        report
            .summary
            .extra
            .insert("resolved".into(), serde_json::to_value(&resolved)?);
    }
    Ok(())
}

/// Applies the baseline, verification and baseline writing to `report`. Returns the exit code
/// when this step decides it (`--write-baseline`: 0 once written).
pub fn apply(
    ctx: &Context,
    args: &CheckArgs,
    report: &mut Report,
    secrets: &Secrets,
    key_rules: &BTreeSet<String>,
) -> anyhow::Result<Option<u8>> {
    let all = std::mem::take(&mut report.findings);
    let previous = match &args.baseline {
        Some(path) => Some(Baseline::load(path)?),
        None => None,
    };
    let mut findings = match (&args.baseline, &previous) {
        (Some(path), Some(b)) => {
            let (kept, applied) = b.apply(all.clone());
            report.summary.extra.insert(
                "baseline".into(),
                baseline::summary_section(path, b, &applied),
            );
            report.summary.notes.extend(baseline::notes(path, &applied));
            kept
        }
        _ => all.clone(),
    };
    if args.verify {
        let (section, notes) =
            verify::verify_findings(&mut findings, secrets, key_rules, &ctx.config.airwallex)
                .context("cannot verify keys")?;
        report.summary.extra.insert("verification".into(), section);
        report.summary.notes.extend(notes);
    }
    let mut code = None;
    if let Some(path) = &args.write_baseline {
        let now = crate::clock::from_env()
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let b = Baseline::from_findings(&all, previous.as_ref(), &now);
        b.write(path)?;
        report.summary.notes.push(format!(
            "wrote baseline {} with {} entries; later scans with --baseline {} leave these \
             findings out",
            path.display(),
            b.entries.len(),
            path.display()
        ));
        code = Some(0);
    }
    report.set_findings(findings);
    Ok(code)
}
