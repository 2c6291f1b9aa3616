//! `[watch]`: the money-movement watch (issue 11): which declared key it reads with (a key that
//! can only read: a key that can write is refused unless `allow_write_key`), how far back a first
//! run reads, how late an item may appear in a list, how long objects are kept for the norms, page
//! sizes, which lists, and the watch rules (extra files, disabled ids, parameter overrides).

use super::{parse_duration, ConfigProblem, Source};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// The lists the watch can poll, in the order it polls them (beneficiaries before the transfers
/// that pay them).
pub const WATCH_LISTS: &[&str] = &[
    "beneficiaries",
    "transfers",
    "financial_transactions",
    "balance_history",
    "webhooks",
];

/// The `[watch]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    /// The declared key (`[[key]] name`) the watch logs in with.
    pub key: Option<Spanned<String>>,
    /// How far back the first run reads (`7d`).
    pub lookback: Option<Spanned<String>>,
    /// How late an item may appear in a list after its own time (`10m`); each poll re-reads
    /// that much before its last high-water mark.
    pub lateness: Option<Spanned<String>>,
    /// How long objects are kept for the norms (`180d`).
    pub history: Option<Spanned<String>>,
    /// How long a watch finding stays open after its evidence (`7d`), unless acknowledged.
    pub keep_open: Option<Spanned<String>>,
    /// Items a page (1 to 200; beneficiaries at least 10).
    pub page_size: Option<Spanned<i64>>,
    /// Which lists to poll (default: all).
    pub lists: Option<Vec<Spanned<String>>>,
    /// Accept a key that can write (a warning in every report instead of a refusal).
    pub allow_write_key: Option<bool>,
    /// Extra watch rule files or directories, relative to the config file.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Watch rule ids to disable.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
    /// Parameter overrides by rule id: `[watch.params."watch.new-payee-paid"] minutes = 120`.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Table>,
}

/// The validated `[watch]` section.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub key: Option<String>,
    pub lookback: Duration,
    pub lateness: Duration,
    pub history: Duration,
    pub keep_open: Duration,
    pub page_size: u32,
    pub lists: Vec<String>,
    pub allow_write_key: bool,
    pub rule_dirs: Vec<PathBuf>,
    pub disable: Vec<String>,
    pub params: BTreeMap<String, toml::Table>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            key: None,
            lookback: Duration::from_secs(7 * 86_400),
            lateness: Duration::from_secs(600),
            history: Duration::from_secs(180 * 86_400),
            keep_open: Duration::from_secs(7 * 86_400),
            page_size: 100,
            lists: WATCH_LISTS.iter().map(|s| s.to_string()).collect(),
            allow_write_key: false,
            rule_dirs: Vec::new(),
            disable: Vec::new(),
            params: BTreeMap::new(),
        }
    }
}

/// Validates `[watch]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawWatch,
    problems: &mut Vec<ConfigProblem>,
) -> WatchConfig {
    let mut c = WatchConfig::default();
    let mut duration = |v: &Option<Spanned<String>>, field: &str, into: &mut Duration| {
        if let Some(s) = v {
            match parse_duration(s.get_ref()) {
                Ok(d) => *into = d,
                Err(m) => problems.push(src.problem(s.span(), field, m)),
            }
        }
    };
    duration(&raw.lookback, "watch.lookback", &mut c.lookback);
    duration(&raw.lateness, "watch.lateness", &mut c.lateness);
    duration(&raw.history, "watch.history", &mut c.history);
    duration(&raw.keep_open, "watch.keep_open", &mut c.keep_open);
    if let Some(l) = &raw.lateness {
        // Balance history is read at most 7 days a query: each query must move past the overlap.
        if c.lateness > Duration::from_secs(86_400) {
            problems.push(src.problem(
                l.span(),
                "watch.lateness",
                "at most 1d: each poll re-reads this much, and balance history is read 7 days a \
                 query"
                    .into(),
            ));
        }
    }
    if let Some(l) = &raw.lookback {
        if c.lookback > c.history {
            problems.push(src.problem(
                l.span(),
                "watch.lookback",
                format!(
                    "the first run's look-back ({}) is longer than the history kept ({}); raise \
                     watch.history or shorten the look-back",
                    l.get_ref(),
                    raw.history
                        .as_ref()
                        .map_or("180d".to_string(), |h| h.get_ref().clone())
                ),
            ));
        }
    }
    if let Some(k) = &raw.key {
        c.key = Some(k.get_ref().clone());
    }
    if let Some(p) = &raw.page_size {
        let n = *p.get_ref();
        if (10..=200).contains(&n) {
            c.page_size = n as u32;
        } else {
            problems.push(src.problem(
                p.span(),
                "watch.page_size",
                format!("{n} is out of range: 10 to 200 (beneficiaries take at least 10 a page)"),
            ));
        }
    }
    if let Some(lists) = &raw.lists {
        c.lists.clear();
        for l in lists {
            if WATCH_LISTS.contains(&l.get_ref().as_str()) {
                if !c.lists.contains(l.get_ref()) {
                    c.lists.push(l.get_ref().clone());
                }
            } else {
                problems.push(src.problem(
                    l.span(),
                    "watch.lists",
                    format!(
                        "{:?} is not a list the watch polls; expected some of {}",
                        l.get_ref(),
                        WATCH_LISTS.join(", ")
                    ),
                ));
            }
        }
        // Poll in the canonical order whatever the order written.
        c.lists
            .sort_by_key(|l| WATCH_LISTS.iter().position(|w| w == l));
    }
    c.allow_write_key = raw.allow_write_key.unwrap_or(false);
    c.rule_dirs = raw
        .rules
        .iter()
        .map(|p| src.existing_path(p, "watch.rules", "a watch rule file or directory", problems))
        .collect();
    c.disable = raw.disable.iter().map(|d| d.get_ref().clone()).collect();
    c.params = raw.params.clone();
    c
}

/// Checks that `[watch] key` names a declared key.
pub(super) fn check_key(
    src: &Source<'_>,
    raw: &RawWatch,
    declared: &[super::KeyDecl],
    problems: &mut Vec<ConfigProblem>,
) {
    let Some(k) = &raw.key else { return };
    if !declared.iter().any(|d| &d.name == k.get_ref()) {
        let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
        problems.push(src.problem(
            k.span(),
            "watch.key",
            format!(
                "{:?} is not a declared key; declare it in a [[key]] table{}",
                k.get_ref(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" (declared: {})", names.join(", "))
                }
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/cfg/awxguard.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_fields() {
        let c = parse("[watch]\n").unwrap();
        assert_eq!(c.watch.lookback, Duration::from_secs(7 * 86_400));
        assert_eq!(c.watch.lists.len(), 5);
        let c = parse(
            "[watch]\nlookback = \"2d\"\nlateness = \"5m\"\npage_size = 20\n\
             lists = [\"webhooks\", \"transfers\"]\ndisable = [\"watch.balance-drop\"]\n\
             [watch.params.\"watch.new-payee-paid\"]\nminutes = 30\n",
        )
        .unwrap();
        assert_eq!(c.watch.lookback, Duration::from_secs(2 * 86_400));
        assert_eq!(c.watch.lateness, Duration::from_secs(300));
        assert_eq!(c.watch.page_size, 20);
        assert_eq!(c.watch.lists, ["transfers", "webhooks"]);
        assert_eq!(c.watch.disable, ["watch.balance-drop"]);
        assert_eq!(
            c.watch.params["watch.new-payee-paid"]["minutes"].as_integer(),
            Some(30)
        );
    }

    #[test]
    fn every_problem_at_once_with_its_line() {
        let msg = parse(
            "[watch]\nkey = \"ghost\"\nlookback = \"forever\"\npage_size = 5\n\
             lists = [\"payments\"]\nlateness = \"3d\"\n",
        )
        .unwrap_err();
        for want in [
            "awxguard.toml:2: watch.key: \"ghost\" is not a declared key",
            "awxguard.toml:3: watch.lookback:",
            "awxguard.toml:4: watch.page_size: 5 is out of range",
            "awxguard.toml:5: watch.lists: \"payments\" is not a list",
            "awxguard.toml:6: watch.lateness: at most 1d",
        ] {
            assert!(msg.contains(want), "{want} missing from:\n{msg}");
        }
    }
}
