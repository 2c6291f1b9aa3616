//! `awxguard rules`: list the rules in force and run every rule's examples.

use super::Context;
use crate::airwallex::Catalog;
use crate::privilege::PrivilegeRules;
use crate::scan::examples::check_leak_rules;
use crate::scan::job::matcher;
use crate::scan::Matcher;
use crate::usage::detect::AnomalyRules;
use crate::watch::WatchRules;
use clap::Subcommand;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run every rule's examples (must be found) and negative examples (must not be).
    Check {
        /// Add the leak rules in this directory (or file); repeatable.
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Add the privilege rules in this directory (or file); repeatable.
        #[arg(long = "privilege-rules", value_name = "DIR")]
        privilege_rules: Vec<PathBuf>,
        /// Add the watch rules in this directory (or file); repeatable.
        #[arg(long = "watch-rules", value_name = "DIR")]
        watch_rules: Vec<PathBuf>,
        /// Add the anomaly rules in this directory (or file); repeatable.
        #[arg(long = "anomaly-rules", value_name = "DIR")]
        anomaly_rules: Vec<PathBuf>,
    },
    /// List the rules in force.
    List {
        /// Add the leak rules in this directory (or file); repeatable.
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Add the privilege rules in this directory (or file); repeatable.
        #[arg(long = "privilege-rules", value_name = "DIR")]
        privilege_rules: Vec<PathBuf>,
        /// Add the watch rules in this directory (or file); repeatable.
        #[arg(long = "watch-rules", value_name = "DIR")]
        watch_rules: Vec<PathBuf>,
        /// Add the anomaly rules in this directory (or file); repeatable.
        #[arg(long = "anomaly-rules", value_name = "DIR")]
        anomaly_rules: Vec<PathBuf>,
        /// Print only the detector regexes, one per line (a pattern file for `rg -f`, e.g. the
        /// benchmark's ripgrep baseline).
        #[arg(long)]
        regexes: bool,
    },
}

/// The regex with its named groups made plain groups: ripgrep joins the lines of a pattern file
/// into one regex, where two `(?P<secret>...)` would clash.
fn unnamed_groups(re: &str) -> String {
    let named = regex::Regex::new(r"\(\?P?<[A-Za-z_][A-Za-z0-9_]*>").expect("static regex");
    named.replace_all(re, "(").into_owned()
}

pub fn run(ctx: &Context, cmd: RulesCommand) -> anyhow::Result<u8> {
    match cmd {
        RulesCommand::Check {
            rules,
            privilege_rules,
            watch_rules,
            anomaly_rules,
        } => {
            let matcher: Matcher = matcher(&ctx.config.scan, &rules, &[], ctx.clock().now())?;
            let (failures, ran) = check_leak_rules(&matcher);
            let privilege = PrivilegeRules::load(&privilege_rules, &[], &BTreeMap::new())?;
            let catalog = Catalog::builtin();
            let (p_failures, p_ran) = privilege.check_examples(&catalog);
            let proxy_rules = crate::proxy::ProxyRules::builtin();
            let (x_failures, x_ran) = proxy_rules.check_examples(&catalog);
            for f in &x_failures {
                say!("FAIL {f}");
            }
            let watch = WatchRules::load(&watch_rules, &[], &BTreeMap::new())?;
            let (w_failures, w_ran) = watch.check_examples();
            for f in &w_failures {
                say!(
                    "FAIL {} {} {} ({}): {}",
                    f.rule,
                    if f.expected_finding {
                        "example"
                    } else {
                        "negative example"
                    },
                    f.index,
                    if f.expected_finding {
                        "must fire"
                    } else {
                        "must not fire"
                    },
                    f.detail
                );
            }
            let anomaly = AnomalyRules::load(&anomaly_rules, &[], &BTreeMap::new())?;
            let (a_failures, a_ran) = anomaly.check_examples(&catalog);
            let example_failures = p_failures
                .iter()
                .map(|f| (&f.rule, f.expected_finding, f.index, &f.detail));
            let anomaly_failures = a_failures
                .iter()
                .map(|f| (&f.rule, f.expected_finding, f.index, &f.detail));
            for (rule, expected_finding, index, detail) in example_failures.chain(anomaly_failures)
            {
                say!(
                    "FAIL {} {} {} ({}): {}",
                    rule,
                    if expected_finding {
                        "example"
                    } else {
                        "negative example"
                    },
                    index,
                    if expected_finding {
                        "must fire"
                    } else {
                        "must not fire"
                    },
                    detail
                );
            }
            for f in &failures {
                say!(
                    "FAIL {} {} ({}): {}",
                    f.rule,
                    f.path,
                    if f.expected_finding {
                        "example"
                    } else {
                        "negative example"
                    },
                    f.detail
                );
            }
            let n = matcher.rules().rules.len();
            let verdict = |failed: usize| {
                if failed == 0 {
                    "all pass".to_string()
                } else {
                    format!("{failed} failed")
                }
            };
            say!(
                "rules check: {n} leak rules, {ran} examples: {}",
                verdict(failures.len())
            );
            say!(
                "rules check: {} privilege rules, {p_ran} examples: {}",
                privilege.rules.len(),
                verdict(p_failures.len())
            );
            say!(
                "rules check: {} proxy rules, {x_ran} examples: {}",
                proxy_rules.rules.len(),
                verdict(x_failures.len())
            );
            say!(
                "rules check: {} watch rules, {w_ran} examples: {}",
                watch.rules.len(),
                verdict(w_failures.len())
            );
            say!(
                "rules check: {} anomaly rules, {a_ran} examples: {}",
                anomaly.rules.len(),
                verdict(a_failures.len())
            );
            if failures.is_empty()
                && p_failures.is_empty()
                && x_failures.is_empty()
                && w_failures.is_empty()
                && a_failures.is_empty()
            {
                Ok(0)
            } else {
                Ok(1)
            }
        }
        RulesCommand::List {
            rules,
            privilege_rules,
            watch_rules,
            anomaly_rules,
            regexes,
        } => {
            let matcher: Matcher = matcher(&ctx.config.scan, &rules, &[], ctx.clock().now())?;
            if regexes {
                for r in &matcher.rules().rules {
                    for p in &r.patterns {
                        say!("{}", unnamed_groups(p.regex.as_str()));
                    }
                }
                return Ok(0);
            }
            for r in &matcher.rules().rules {
                say!("{:<32} {:<8} {}", r.id, r.severity.as_str(), r.name);
                for p in &r.patterns {
                    say!("    pattern {}", p.name);
                }
            }
            let privilege = PrivilegeRules::load(&privilege_rules, &[], &BTreeMap::new())?;
            for r in &privilege.rules {
                let sev = match r.severity_production {
                    Some(p) if p != r.severity => format!("{} ({} in production)", r.severity, p),
                    _ => r.severity.to_string(),
                };
                say!("{:<32} {:<8} {}", r.id, sev, r.name);
                if !r.params.is_empty() {
                    let params: Vec<String> =
                        r.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    say!("    params {}", params.join(", "));
                }
            }
            for r in &crate::proxy::ProxyRules::builtin().rules {
                let sev = format!("{} ({} when the call writes)", r.severity, r.severity_write);
                say!("{:<32} {:<8} {}", r.id, sev, r.name);
            }
            for r in &WatchRules::load(&watch_rules, &[], &BTreeMap::new())?.rules {
                say!("{:<32} {:<8} {}", r.id, r.severity.to_string(), r.name);
                if !r.params.is_empty() {
                    let params: Vec<String> =
                        r.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    say!("    params {}", params.join(", "));
                }
            }
            for r in &AnomalyRules::load(&anomaly_rules, &[], &BTreeMap::new())?.rules {
                say!("{:<32} {:<8} {}", r.id, r.severity.to_string(), r.name);
                let params: Vec<String> =
                    r.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                if !params.is_empty() {
                    say!("    params {}", params.join(", "));
                }
            }
            Ok(0)
        }
    }
}
