//! Every rule set in force, in one place: the leak rules (`scan`), the privilege rules
//! (`privilege`), the proxy's rules (`proxy`), the watch's detectors (`watch`) and the anomaly
//! detectors (`usage::detect`). Two jobs: [`check`] runs every rule's examples (`awxguard rules
//! check`), [`list`] describes the rules (`awxguard rules list`). Both return typed outcomes
//! whose `lines()` are what the command prints.

use crate::airwallex::Catalog;
use crate::config::Config;
use crate::privilege::PrivilegeRules;
use crate::proxy::ProxyRules;
use crate::rules::RuleError;
use crate::scan::examples::check_leak_rules;
use crate::scan::job::matcher;
use crate::usage::detect::AnomalyRules;
use crate::watch::WatchRules;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Rule directories (or files) added to the built-in and configured rules.
#[derive(Debug, Clone, Default)]
pub struct RulesRequest {
    pub leak: Vec<PathBuf>,
    pub privilege: Vec<PathBuf>,
    pub watch: Vec<PathBuf>,
    pub anomaly: Vec<PathBuf>,
}

/// One example that did not do what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub rule: String,
    pub example: Example,
    pub expected_finding: bool,
    pub detail: String,
}

/// Which example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Example {
    /// A leak rule's example file.
    Path(String),
    /// 1-based index among the rule's examples (or negative examples).
    Index(usize),
}

/// One rule set's examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetResult {
    /// `leak`, `privilege`, `proxy`, `watch`, `anomaly`.
    pub kind: &'static str,
    pub rules: usize,
    pub examples: usize,
    pub failed: usize,
}

/// What `rules check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckOutcome {
    /// Failures in the order they are reported (proxy, watch, privilege, anomaly, leak).
    pub failures: Vec<Failure>,
    /// Proxy rules report their failures as text.
    pub proxy_failures: Vec<String>,
    pub sets: Vec<SetResult>,
}

impl CheckOutcome {
    /// Every example did what it says.
    pub fn passed(&self) -> bool {
        self.sets.iter().all(|s| s.failed == 0)
    }

    /// The report: one `FAIL` line per failure, then one line per rule set.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .proxy_failures
            .iter()
            .map(|f| format!("FAIL {f}"))
            .collect();
        for f in &self.failures {
            let (what, must) = if f.expected_finding {
                ("example", "must fire")
            } else {
                ("negative example", "must not fire")
            };
            out.push(match &f.example {
                Example::Index(i) => format!("FAIL {} {what} {i} ({must}): {}", f.rule, f.detail),
                Example::Path(p) => format!("FAIL {} {p} ({what}): {}", f.rule, f.detail),
            });
        }
        for s in &self.sets {
            let verdict = if s.failed == 0 {
                "all pass".to_string()
            } else {
                format!("{} failed", s.failed)
            };
            out.push(format!(
                "rules check: {} {} rules, {} examples: {verdict}",
                s.rules, s.kind, s.examples
            ));
        }
        out
    }
}

fn indexed(rule: &str, expected: bool, index: usize, detail: &str) -> Failure {
    Failure {
        rule: rule.to_string(),
        example: Example::Index(index),
        expected_finding: expected,
        detail: detail.to_string(),
    }
}

/// Runs every rule's examples (must be found) and negative examples (must not be).
pub fn check(
    req: &RulesRequest,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<CheckOutcome, RuleError> {
    let none = BTreeMap::new();
    let catalog = Catalog::builtin();
    let leak = matcher(&config.scan, &req.leak, &[], now)?;
    let (l_failures, l_ran) = check_leak_rules(&leak);
    let privilege = PrivilegeRules::load(&req.privilege, &[], &none)?;
    let (p_failures, p_ran) = privilege.check_examples(&catalog);
    let proxy = ProxyRules::builtin();
    let (x_failures, x_ran) = proxy.check_examples(&catalog);
    let watch = WatchRules::load(&req.watch, &[], &none)?;
    let (w_failures, w_ran) = watch.check_examples();
    let anomaly = AnomalyRules::load(&req.anomaly, &[], &none)?;
    let (a_failures, a_ran) = anomaly.check_examples(&catalog);

    let mut failures: Vec<Failure> = w_failures
        .iter()
        .map(|f| indexed(&f.rule, f.expected_finding, f.index, &f.detail))
        .collect();
    failures.extend(
        p_failures
            .iter()
            .map(|f| indexed(&f.rule, f.expected_finding, f.index, &f.detail)),
    );
    failures.extend(
        a_failures
            .iter()
            .map(|f| indexed(&f.rule, f.expected_finding, f.index, &f.detail)),
    );
    failures.extend(l_failures.iter().map(|f| Failure {
        rule: f.rule.clone(),
        example: Example::Path(f.path.clone()),
        expected_finding: f.expected_finding,
        detail: f.detail.clone(),
    }));
    let set = |kind, rules, examples, failed| SetResult {
        kind,
        rules,
        examples,
        failed,
    };
    let sets = vec![
        set("leak", leak.rules().rules.len(), l_ran, l_failures.len()),
        set("privilege", privilege.rules.len(), p_ran, p_failures.len()),
        set("proxy", proxy.rules.len(), x_ran, x_failures.len()),
        set("watch", watch.rules.len(), w_ran, w_failures.len()),
        set("anomaly", anomaly.rules.len(), a_ran, a_failures.len()),
    ];
    Ok(CheckOutcome {
        failures,
        proxy_failures: x_failures,
        sets,
    })
}

/// One rule as `rules list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEntry {
    pub id: String,
    /// The severity, with its variants (`high (critical in production)`).
    pub severity: String,
    pub name: String,
    /// Indented lines under the rule (`pattern NAME`, `params a = 1, b = 2`).
    pub details: Vec<String>,
}

/// The rules in force.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub rules: Vec<RuleEntry>,
}

impl Listing {
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rules {
            out.push(format!("{:<32} {:<8} {}", r.id, r.severity, r.name));
            out.extend(r.details.iter().map(|d| format!("    {d}")));
        }
        out
    }
}

fn params_line<'a, V: std::fmt::Display + 'a>(
    params: impl IntoIterator<Item = (&'a String, &'a V)>,
) -> Option<String> {
    let kv: Vec<String> = params
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    if kv.is_empty() {
        return None;
    }
    Some(format!("params {}", kv.join(", ")))
}

/// Describes every rule in force: leak, privilege, proxy, watch, anomaly.
pub fn list(req: &RulesRequest, config: &Config, now: DateTime<Utc>) -> Result<Listing, RuleError> {
    let none = BTreeMap::new();
    let mut rules = Vec::new();
    let leak = matcher(&config.scan, &req.leak, &[], now)?;
    for r in &leak.rules().rules {
        rules.push(RuleEntry {
            id: r.id.clone(),
            severity: r.severity.as_str().to_string(),
            name: r.name.clone(),
            details: r
                .patterns
                .iter()
                .map(|p| format!("pattern {}", p.name))
                .collect(),
        });
    }
    for r in &PrivilegeRules::load(&req.privilege, &[], &none)?.rules {
        let severity = match r.severity_production {
            Some(p) if p != r.severity => format!("{} ({} in production)", r.severity, p),
            _ => r.severity.to_string(),
        };
        rules.push(RuleEntry {
            id: r.id.clone(),
            severity,
            name: r.name.clone(),
            details: params_line(&r.params).into_iter().collect(),
        });
    }
    for r in &ProxyRules::builtin().rules {
        rules.push(RuleEntry {
            id: r.id.clone(),
            severity: format!("{} ({} when the call writes)", r.severity, r.severity_write),
            name: r.name.clone(),
            details: Vec::new(),
        });
    }
    for r in &WatchRules::load(&req.watch, &[], &none)?.rules {
        rules.push(RuleEntry {
            id: r.id.clone(),
            severity: r.severity.to_string(),
            name: r.name.clone(),
            details: params_line(&r.params).into_iter().collect(),
        });
    }
    for r in &AnomalyRules::load(&req.anomaly, &[], &none)?.rules {
        rules.push(RuleEntry {
            id: r.id.clone(),
            severity: r.severity.to_string(),
            name: r.name.clone(),
            details: params_line(&r.params).into_iter().collect(),
        });
    }
    Ok(Listing { rules })
}

/// The leak detectors' regexes, one per pattern, with named groups made plain: a pattern file
/// for `rg -f` (ripgrep joins its lines into one regex, where two `(?P<secret>...)` would clash).
pub fn regexes(
    req: &RulesRequest,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<String>, RuleError> {
    let leak = matcher(&config.scan, &req.leak, &[], now)?;
    let named = regex::Regex::new(r"\(\?P?<[A-Za-z_][A-Za-z0-9_]*>").expect("static regex");
    Ok(leak
        .rules()
        .rules
        .iter()
        .flat_map(|r| r.patterns.iter())
        .map(|p| named.replace_all(p.regex.as_str(), "(").into_owned())
        .collect())
}
