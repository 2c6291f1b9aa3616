//! `[daemon]`: what `awxguard daemon` runs and how it lives. Cron schedules (five fields, or six
//! with seconds first) evaluated in `timezone` for the audit (`[daemon.audit]`), the repository
//! scans (`[[daemon.repo]]`), the money-movement watch (`[daemon.watch]`) and the usage ingest
//! of `[usage] sources` (`[daemon.usage]`); the loopback address of `/healthz`, `/readyz` and
//! `/metrics`; how long a stop waits for running jobs; how often queued alerts are delivered;
//! whether the recording proxy runs in the same process (`proxy = true`, with `[proxy]`).

use super::{parse_duration, ConfigProblem, Source};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// Where `/healthz`, `/readyz` and `/metrics` listen unless `listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9477";

/// The `[daemon]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// IANA zone the schedules are read in (default UTC).
    pub timezone: Option<Spanned<String>>,
    /// Loopback address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: Option<Spanned<String>>,
    /// How long a stop (SIGTERM, SIGINT) waits for running jobs before interrupting them.
    pub drain_timeout: Option<Spanned<String>>,
    /// How often queued alerts are delivered (also after every job).
    pub alert_interval: Option<Spanned<String>>,
    /// Run the recording proxy (`[proxy]`) in the daemon's process.
    pub proxy: Option<bool>,
    pub audit: Option<Spanned<RawAuditJob>>,
    #[serde(default)]
    pub repo: Vec<Spanned<RawRepoJob>>,
    pub watch: Option<Spanned<RawWatchJob>>,
    pub usage: Option<Spanned<RawUsageJob>>,
}

/// `[daemon.usage]` as written: ingests `[usage] sources` (new lines only).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsageJob {
    pub schedule: Option<Spanned<String>>,
}

/// `[daemon.watch]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatchJob {
    pub schedule: Option<Spanned<String>>,
    /// The declared key to read with (default: `[watch] key`).
    pub key: Option<String>,
}

/// `[daemon.audit]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuditJob {
    pub schedule: Option<Spanned<String>>,
    /// Log each key in (default true); false judges the declared facts only.
    pub verify: Option<bool>,
}

/// `[[daemon.repo]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepoJob {
    /// The repository (a working tree or a bare repository).
    pub path: Option<Spanned<String>>,
    pub schedule: Option<Spanned<String>>,
    /// `git fetch --all --prune` before scanning.
    pub fetch: Option<bool>,
    /// The job's name is `scan:NAME` (default: the directory's name).
    pub name: Option<Spanned<String>>,
}

/// A cron schedule: five fields (minute hour day-of-month month day-of-week) or six with seconds
/// first; `@hourly`, `@daily` and the like too.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// As written.
    pub expr: String,
    cron: croner::Cron,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr.trim())
            .map_err(|e| {
                format!(
                    "{expr:?} is not a cron schedule ({e}); write five fields (minute hour \
                     day-of-month month day-of-week, e.g. \"0 7 * * *\") or six with seconds first"
                )
            })?;
        Ok(Schedule {
            expr: expr.trim().to_string(),
            cron,
        })
    }

    /// The first time after `t` the schedule fires, read in `tz`.
    pub fn next_after(&self, t: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&tz), false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The time between the next two firings after `t`: what "on time" means for readiness.
    pub fn interval_after(&self, t: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<Duration> {
        let a = self.next_after(t, tz)?;
        let b = self.next_after(a, tz)?;
        (b - a).to_std().ok()
    }
}

/// The validated `[daemon]` section.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub timezone: chrono_tz::Tz,
    pub listen: SocketAddr,
    pub drain_timeout: Duration,
    pub alert_interval: Duration,
    pub proxy: bool,
    pub audit: Option<ScheduledAudit>,
    pub repos: Vec<ScheduledRepo>,
    pub watch: Option<ScheduledWatch>,
    /// The usage ingest of `[usage] sources`.
    pub usage: Option<ScheduledUsage>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            timezone: chrono_tz::UTC,
            listen: DEFAULT_LISTEN.parse().expect("default listen address"),
            drain_timeout: Duration::from_secs(30),
            alert_interval: Duration::from_secs(30),
            proxy: false,
            audit: None,
            repos: Vec::new(),
            watch: None,
            usage: None,
        }
    }
}

/// The scheduled usage ingest (of `[usage] sources`, new lines only: file cursors resume).
#[derive(Debug, Clone)]
pub struct ScheduledUsage {
    pub schedule: Schedule,
}

/// The scheduled audit.
#[derive(Debug, Clone)]
pub struct ScheduledAudit {
    pub schedule: Schedule,
    pub verify: bool,
}

/// The scheduled money-movement watch.
#[derive(Debug, Clone)]
pub struct ScheduledWatch {
    pub schedule: Schedule,
    /// `None`: `[watch] key`.
    pub key: Option<String>,
}

/// A scheduled repository scan.
#[derive(Debug, Clone)]
pub struct ScheduledRepo {
    /// Unique among the repositories.
    pub name: String,
    pub path: PathBuf,
    pub schedule: Schedule,
    pub fetch: bool,
}

impl DaemonConfig {
    /// Whether anything is scheduled or served.
    pub fn has_work(&self) -> bool {
        self.audit.is_some()
            || !self.repos.is_empty()
            || self.watch.is_some()
            || self.usage.is_some()
            || self.proxy
    }
}

fn schedule(
    src: &Source<'_>,
    s: &Option<Spanned<String>>,
    table: std::ops::Range<usize>,
    field: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Schedule> {
    match s {
        None => {
            problems.push(src.problem(
                table,
                field,
                "missing; write a cron schedule such as \"0 7 * * *\" (07:00 daily)".into(),
            ));
            None
        }
        Some(s) => Schedule::parse(s.get_ref())
            .map_err(|m| problems.push(src.problem(s.span(), field, m)))
            .ok(),
    }
}

/// The address `/healthz`, `/readyz` and `/metrics` listen on: loopback only.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let addr: SocketAddr = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}").parse(),
        None => s.parse(),
    }
    .map_err(|_| format!("{s:?} is not an address; write 127.0.0.1:PORT or [::1]:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{s:?} is not a loopback address: health and metrics are served on loopback only \
             (127.0.0.1:PORT or [::1]:PORT); put a reverse proxy or the scraper on this host"
        ));
    }
    Ok(addr)
}

/// `[daemon.usage]` ingests `[usage] sources`: refused when there are none.
pub(super) fn check_usage_sources(
    src: &Source<'_>,
    raw: &RawDaemon,
    sources: &[Spanned<String>],
    problems: &mut Vec<ConfigProblem>,
) {
    if let Some(u) = &raw.usage {
        if sources.is_empty() {
            problems.push(src.problem(
                u.span(),
                "daemon.usage",
                "the usage job ingests [usage] sources, and there are none; list the usage-event \
                 files or directories there (e.g. sources = [\"/var/log/erp/airwallex.jsonl\"])"
                    .into(),
            ));
        }
    }
}

/// Validates `[daemon]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawDaemon,
    problems: &mut Vec<ConfigProblem>,
) -> DaemonConfig {
    let mut c = DaemonConfig::default();
    if let Some(tz) = &raw.timezone {
        match tz.get_ref().parse::<chrono_tz::Tz>() {
            Ok(z) => c.timezone = z,
            Err(_) => problems.push(src.problem(
                tz.span(),
                "daemon.timezone",
                format!(
                    "{:?} is not an IANA time zone; write e.g. \"UTC\" or \"Europe/Zurich\"",
                    tz.get_ref()
                ),
            )),
        }
    }
    if let Some(l) = &raw.listen {
        match parse_listen(l.get_ref()) {
            Ok(a) => c.listen = a,
            Err(m) => problems.push(src.problem(l.span(), "daemon.listen", m)),
        }
    }
    for (field, raw_value, target) in [
        (
            "daemon.drain_timeout",
            &raw.drain_timeout,
            &mut c.drain_timeout,
        ),
        (
            "daemon.alert_interval",
            &raw.alert_interval,
            &mut c.alert_interval,
        ),
    ] {
        if let Some(v) = raw_value {
            match parse_duration(v.get_ref()) {
                Ok(d) if !d.is_zero() => *target = d,
                Ok(_) => {
                    problems.push(src.problem(v.span(), field, "must be more than zero".into()))
                }
                Err(m) => problems.push(src.problem(v.span(), field, m)),
            }
        }
    }
    c.proxy = raw.proxy.unwrap_or(false);
    if let Some(a) = &raw.audit {
        if let Some(schedule) = schedule(
            src,
            &a.get_ref().schedule,
            a.span(),
            "daemon.audit.schedule",
            problems,
        ) {
            c.audit = Some(ScheduledAudit {
                schedule,
                verify: a.get_ref().verify.unwrap_or(true),
            });
        }
    }
    if let Some(w) = &raw.watch {
        if let Some(schedule) = schedule(
            src,
            &w.get_ref().schedule,
            w.span(),
            "daemon.watch.schedule",
            problems,
        ) {
            c.watch = Some(ScheduledWatch {
                schedule,
                key: w.get_ref().key.clone(),
            });
        }
    }
    if let Some(u) = &raw.usage {
        if let Some(schedule) = schedule(
            src,
            &u.get_ref().schedule,
            u.span(),
            "daemon.usage.schedule",
            problems,
        ) {
            c.usage = Some(ScheduledUsage { schedule });
        }
    }
    for r in &raw.repo {
        let span = r.span();
        let r = r.get_ref();
        let Some(path) = &r.path else {
            problems.push(src.problem(
                span,
                "daemon.repo.path",
                "missing; give the repository to scan".into(),
            ));
            continue;
        };
        let full = src.existing_path(path, "daemon.repo.path", "a git repository", problems);
        let name = match &r.name {
            Some(n)
                if n.get_ref().trim().is_empty() || n.get_ref().contains(char::is_whitespace) =>
            {
                problems.push(src.problem(
                    n.span(),
                    "daemon.repo.name",
                    format!("{:?}: a name is one word without spaces", n.get_ref()),
                ));
                continue;
            }
            Some(n) => n.get_ref().clone(),
            None => full
                .canonicalize()
                .unwrap_or_else(|_| full.clone())
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".git").to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "repo".into()),
        };
        if c.repos.iter().any(|x| x.name == name) {
            problems.push(src.problem(
                r.name.as_ref().map_or(path.span(), |n| n.span()),
                "daemon.repo.name",
                format!(
                    "two repositories are named {name:?} (job scan:{name}); give each a `name`"
                ),
            ));
            continue;
        }
        let Some(schedule) = schedule(src, &r.schedule, span, "daemon.repo.schedule", problems)
        else {
            continue;
        };
        c.repos.push(ScheduledRepo {
            name,
            path: full,
            schedule,
            fetch: r.fetch.unwrap_or(false),
        });
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn schedules_with_and_without_seconds_in_a_time_zone() {
        let t = DateTime::parse_from_rfc3339("2026-03-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let daily = Schedule::parse("0 7 * * *").unwrap();
        let zurich: chrono_tz::Tz = "Europe/Zurich".parse().unwrap();
        // 07:00 in Zurich is 06:00 UTC before the switch to summer time, 05:00 after.
        assert_eq!(
            daily.next_after(t, zurich).unwrap().to_rfc3339(),
            "2026-03-29T05:00:00+00:00"
        );
        assert_eq!(
            daily.next_after(t, chrono_tz::UTC).unwrap().to_rfc3339(),
            "2026-03-29T07:00:00+00:00"
        );
        let every_2s = Schedule::parse("*/2 * * * * *").unwrap();
        assert_eq!(
            every_2s.next_after(t, chrono_tz::UTC).unwrap().to_rfc3339(),
            "2026-03-28T12:00:02+00:00"
        );
        assert_eq!(
            every_2s.interval_after(t, chrono_tz::UTC),
            Some(Duration::from_secs(2))
        );
        assert!(Schedule::parse("every day").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[daemon]\ntimezone = \"Mars/Olympus\"\nlisten = \"0.0.0.0:9477\"\n\
                    drain_timeout = \"soon\"\n[daemon.audit]\nschedule = \"daily\"\n\
                    [[daemon.repo]]\npath = \"nowhere\"\nschedule = \"* * * * *\"\n\
                    [[daemon.repo]]\npath = \".\"\n";
        let msg = Config::parse(&dir.path().join("c.toml"), text)
            .unwrap_err()
            .to_string();
        for needle in [
            "c.toml:2: daemon.timezone: \"Mars/Olympus\" is not an IANA time zone",
            "c.toml:3: daemon.listen: \"0.0.0.0:9477\" is not a loopback address",
            "c.toml:4: daemon.drain_timeout: ",
            "c.toml:6: daemon.audit.schedule: \"daily\" is not a cron schedule",
            "c.toml:8: daemon.repo.path: ",
            "daemon.repo.schedule: missing",
        ] {
            assert!(msg.contains(needle), "{needle}\n---\n{msg}");
        }
    }

    #[test]
    fn a_full_section_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("payvy")).unwrap();
        let text = "[daemon]\ntimezone = \"Europe/Zurich\"\nlisten = \"localhost:9100\"\n\
                    proxy = true\nalert_interval = \"5s\"\n[daemon.audit]\nschedule = \
                    \"0 7 * * *\"\nverify = false\n[daemon.watch]\nschedule = \"*/5 * * * *\"\n[[daemon.repo]]\npath = \"payvy\"\n\
                    schedule = \"*/15 * * * *\"\nfetch = true\n";
        let c = Config::parse(&dir.path().join("c.toml"), text)
            .unwrap()
            .daemon;
        assert_eq!(c.timezone, chrono_tz::Europe::Zurich);
        assert_eq!(c.listen, "127.0.0.1:9100".parse().unwrap());
        assert!(c.proxy && c.has_work());
        assert_eq!(c.alert_interval, Duration::from_secs(5));
        assert!(!c.audit.unwrap().verify);
        assert_eq!(c.watch.unwrap().schedule.expr, "*/5 * * * *");
        assert_eq!(c.repos[0].name, "payvy");
        assert!(c.repos[0].fetch);
        assert!(c.usage.is_none());
        // the usage job ingests [usage] sources: refused without them, named with its line
        std::fs::write(dir.path().join("events.jsonl"), "").unwrap();
        let msg = Config::parse(
            &dir.path().join("c.toml"),
            "[daemon]\n\n[daemon.usage]\nschedule = \"* * * * *\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("c.toml:3: daemon.usage: the usage job ingests [usage] sources"),
            "{msg}"
        );
        let c = Config::parse(
            &dir.path().join("c.toml"),
            "[usage]\nsources = [\"events.jsonl\"]\n[daemon.usage]\nschedule = \"*/10 * * * * *\"\n",
        )
        .unwrap()
        .daemon;
        assert!(c.has_work());
        assert_eq!(c.usage.unwrap().schedule.expr, "*/10 * * * * *");
        assert!(Config::parse(Path::new("c.toml"), "[daemon]\n")
            .unwrap()
            .daemon
            .listen
            .ip()
            .is_loopback());
    }
}
