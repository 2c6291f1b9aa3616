//! `[usage]`: usage monitoring (issue 9): how long the evidence store keeps raw events and
//! rollups (counted back from the newest stored event, not the clock), how far in the future an
//! event may be stamped, how late events may arrive, when a quiet anomaly ages out, how close
//! signals fold into one incident, the sources `usage ingest` reads by default, and the anomaly
//! rules (extra files, disabled ids, parameter overrides).

use super::{parse_duration, ConfigProblem, Source};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// The `[usage]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsage {
    /// How long raw events are kept (`35d`), back from the newest stored event.
    pub raw_retention: Option<Spanned<String>>,
    /// How long per-key hourly rollups and first appearances are kept (`400d`).
    pub rollup_retention: Option<Spanned<String>>,
    /// Events stamped further than this in the future (`10m`) are rejected as clock skew; they
    /// never move the retention point.
    pub max_future: Option<Spanned<String>>,
    /// How late events may arrive (`5m`): hours starting later than the newest event minus this
    /// are judged on the next ingest.
    pub lateness: Option<Spanned<String>>,
    /// An anomaly quiet for this long (`7d`, after the end of its window, by the newest stored
    /// event) is resolved as `aged-out`.
    pub quiet: Option<Spanned<String>>,
    /// Signals of one key closer than this (`1h`) fold into one finding.
    pub fold_gap: Option<Spanned<String>>,
    /// Sample events kept in a finding's evidence (0 to 50, default 5).
    pub samples: Option<Spanned<i64>>,
    /// Files or directories `awxguard usage ingest` reads when given none, relative to the
    /// config file.
    #[serde(default)]
    pub sources: Vec<Spanned<String>>,
    /// Extra anomaly rule files or directories, relative to the config file.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Anomaly rule ids to disable.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
    /// Parameter overrides by rule id: `[usage.params."anomaly.rate-spike"] min_excess = 50`.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Table>,
}

/// The validated `[usage]` section.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    pub raw_retention: Duration,
    pub rollup_retention: Duration,
    pub max_future: Duration,
    pub lateness: Duration,
    pub quiet: Duration,
    pub fold_gap: Duration,
    pub samples: usize,
    pub sources: Vec<PathBuf>,
    pub rule_dirs: Vec<PathBuf>,
    pub disable: Vec<String>,
    pub params: BTreeMap<String, toml::Table>,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            raw_retention: Duration::from_secs(35 * 86_400),
            rollup_retention: Duration::from_secs(400 * 86_400),
            max_future: Duration::from_secs(600),
            lateness: Duration::from_secs(300),
            quiet: Duration::from_secs(7 * 86_400),
            fold_gap: Duration::from_secs(3600),
            samples: 5,
            sources: Vec::new(),
            rule_dirs: Vec::new(),
            disable: Vec::new(),
            params: BTreeMap::new(),
        }
    }
}

/// Validates `[usage]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawUsage,
    problems: &mut Vec<ConfigProblem>,
) -> UsageConfig {
    let mut c = UsageConfig::default();
    let mut duration = |v: &Option<Spanned<String>>, field: &str, into: &mut Duration| {
        if let Some(s) = v {
            match parse_duration(s.get_ref()) {
                Ok(d) => *into = d,
                Err(m) => problems.push(src.problem(s.span(), field, m)),
            }
        }
    };
    duration(
        &raw.raw_retention,
        "usage.raw_retention",
        &mut c.raw_retention,
    );
    duration(
        &raw.rollup_retention,
        "usage.rollup_retention",
        &mut c.rollup_retention,
    );
    duration(&raw.max_future, "usage.max_future", &mut c.max_future);
    duration(&raw.lateness, "usage.lateness", &mut c.lateness);
    duration(&raw.quiet, "usage.quiet", &mut c.quiet);
    duration(&raw.fold_gap, "usage.fold_gap", &mut c.fold_gap);
    let day = Duration::from_secs(86_400);
    if let Some(r) = &raw.raw_retention {
        if c.raw_retention < day {
            problems.push(src.problem(
                r.span(),
                "usage.raw_retention",
                "at least 1d: sample events and the 5-minute detail come from raw events".into(),
            ));
        }
    }
    if let Some(r) = &raw.rollup_retention {
        if c.rollup_retention < c.raw_retention {
            problems.push(src.problem(
                r.span(),
                "usage.rollup_retention",
                format!(
                    "shorter than usage.raw_retention ({}d): rollups must outlive raw events",
                    c.raw_retention.as_secs() / 86_400
                ),
            ));
        } else if c.rollup_retention < Duration::from_secs(14 * 86_400) {
            problems.push(src.problem(
                r.span(),
                "usage.rollup_retention",
                "at least 14d: seasonal baselines need weeks of history".into(),
            ));
        }
    }
    if let Some(g) = &raw.fold_gap {
        if c.fold_gap > day {
            problems.push(src.problem(
                g.span(),
                "usage.fold_gap",
                "at most 1d: signals further apart are separate incidents".into(),
            ));
        }
    }
    if let Some(n) = &raw.samples {
        match usize::try_from(*n.get_ref()) {
            Ok(v) if v <= 50 => c.samples = v,
            _ => problems.push(src.problem(
                n.span(),
                "usage.samples",
                format!("{} is out of range: 0 to 50", n.get_ref()),
            )),
        }
    }
    c.sources = raw
        .sources
        .iter()
        .map(|p| {
            src.existing_path(
                p,
                "usage.sources",
                "a usage-event file or directory",
                problems,
            )
        })
        .collect();
    c.rule_dirs = raw
        .rules
        .iter()
        .map(|p| {
            src.existing_path(
                p,
                "usage.rules",
                "an anomaly rule file or directory",
                problems,
            )
        })
        .collect();
    c.disable = raw.disable.iter().map(|d| d.get_ref().clone()).collect();
    c.params = raw.params.clone();
    c
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn defaults_and_every_problem_at_once() {
        let c = Config::parse(Path::new("c.toml"), "[usage]\n").unwrap();
        assert_eq!(c.usage.raw_retention.as_secs(), 35 * 86_400);
        assert_eq!(c.usage.rollup_retention.as_secs(), 400 * 86_400);
        let c = Config::parse(
            Path::new("c.toml"),
            "[usage]\nraw_retention = \"10d\"\nquiet = \"3d\"\n[usage.params.\"anomaly.rate-spike\"]\nmin_excess = 50\n",
        )
        .unwrap();
        assert_eq!(c.usage.raw_retention.as_secs(), 10 * 86_400);
        assert_eq!(
            c.usage.params["anomaly.rate-spike"]["min_excess"].as_integer(),
            Some(50)
        );
        let msg = Config::parse(
            Path::new("c.toml"),
            "[usage]\nraw_retention = \"10 days\"\nrollup_retention = \"5d\"\nsamples = 99\n",
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("c.toml:2: usage.raw_retention:"), "{msg}");
        assert!(msg.contains("c.toml:3: usage.rollup_retention:"), "{msg}");
        assert!(
            msg.contains("c.toml:4: usage.samples: 99 is out of range"),
            "{msg}"
        );
    }
}
