//! Configuration: `awxguard.toml` read into a raw form that rejects unknown sections and fields,
//! then validated into `Config`. Every problem names the file, line and field, and all problems
//! are reported at once. One file per section: `[airwallex]`, `[scan]`, `[audit]`, `[store]`,
//! `[usage]`, `[proxy]`, `[watch]`, `[alerts]`, `[daemon]`, and the `[[key]]` tables.

mod airwallex;
mod alerts;
mod audit;
mod daemon;
mod keys;
mod proxy;
mod reference;
mod scan;
mod store;
mod usage;
mod watch;

pub use airwallex::{AirwallexConfig, RawAirwallex};
pub use alerts::{
    check_webhook_url, is_loopback_host, parse_duration, AlertsConfig, CredentialRef, EmailSink,
    FileSink, RawAlerts, Route, SmtpSecurity, UrlSpec, WebhookSink,
};
pub use audit::{AuditConfig, RawAudit};
pub use daemon::{
    parse_listen, DaemonConfig, RawDaemon, Schedule, ScheduledAudit, ScheduledRepo, ScheduledWatch,
    DEFAULT_LISTEN,
};
pub use keys::{is_api_key_shape, KeyDecl, KeyDescription, RawKey, SecretSpec};
pub use proxy::{EnforceSetting, ProxyConfig, RawProxy};
pub use scan::{RawScan, ScanConfig};
pub use store::{RawStore, StoreConfig, StoreUrl};
pub use usage::{RawUsage, UsageConfig};
pub use watch::{RawWatch, WatchConfig, WATCH_LISTS};

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The default config file, looked for in the working directory.
pub const DEFAULT_PATH: &str = "awxguard.toml";

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: PathBuf,
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.path.display(),
            self.line,
            self.field,
            self.message
        )
    }
}

/// Every problem found in a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a regular file, too large, not UTF-8, or unreadable (the message names the file).
    #[error("cannot read config: {0}")]
    File(String),
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

/// The whole file as written: the known sections, nothing else.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub airwallex: RawAirwallex,
    #[serde(default)]
    pub scan: RawScan,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub usage: RawUsage,
    #[serde(default)]
    pub proxy: RawProxy,
    #[serde(default)]
    pub watch: RawWatch,
    /// Absent (or empty) means no alerts are queued.
    pub alerts: Option<Spanned<RawAlerts>>,
    #[serde(default)]
    pub daemon: RawDaemon,
    /// `[[key]]` tables: the declared Airwallex keys.
    #[serde(default, rename = "key")]
    pub keys: Vec<Spanned<RawKey>>,
}

/// Which sections a command reads. A scan reads `[scan]` (and `[airwallex]` to verify,
/// `[store]` and `[alerts]` to record): a problem in any other section, a mistyped `[[key]]`
/// above all, is for `inventory` and `audit` to report and never stops a scan or the pre-commit
/// hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sections {
    /// Every section, validated together (and unknown sections are errors).
    All,
    /// `[scan]`, plus the sections named here; everything else is neither read nor checked
    /// (only the TOML syntax of the whole file is, as it must be to find `[scan]`).
    Scan { airwallex: bool, store: bool },
}

/// `[scan]` alone, the rest of the file ignored.
#[derive(Debug, Default, Deserialize)]
struct OnlyScan {
    #[serde(default)]
    scan: RawScan,
}

/// `[airwallex]` alone.
#[derive(Debug, Default, Deserialize)]
struct OnlyAirwallex {
    #[serde(default)]
    airwallex: RawAirwallex,
}

/// `[store]` and `[alerts]` alone (recording queues alerts).
#[derive(Debug, Default, Deserialize)]
struct OnlyStore {
    #[serde(default)]
    store: RawStore,
    alerts: Option<Spanned<RawAlerts>>,
}

/// The validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    pub airwallex: AirwallexConfig,
    pub scan: ScanConfig,
    pub audit: AuditConfig,
    pub store: StoreConfig,
    pub usage: UsageConfig,
    pub proxy: ProxyConfig,
    pub watch: WatchConfig,
    /// `[alerts]`, when configured.
    pub alerts: Option<AlertsConfig>,
    pub daemon: DaemonConfig,
    /// The declared keys, in config order.
    pub keys: Vec<KeyDecl>,
}

/// The config text being validated: where problems point and relative paths start.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// A problem at `span` of the text.
    pub fn problem(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        message: String,
    ) -> ConfigProblem {
        ConfigProblem {
            path: self.path.to_path_buf(),
            line: line_at(self.text, span.start),
            field: field.to_string(),
            message,
        }
    }

    /// The directory relative paths are resolved against: the config file's.
    pub fn base(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// A path relative to the config file that must exist; a problem when it does not.
    pub fn existing_path(
        &self,
        p: &Spanned<String>,
        field: &str,
        what: &str,
        problems: &mut Vec<ConfigProblem>,
    ) -> PathBuf {
        let full = self.base().join(p.get_ref());
        if !full.exists() {
            problems.push(self.problem(
                p.span(),
                field,
                format!("{} does not exist; give {what}", full.display()),
            ));
        }
        full
    }
}

/// Finds the 1-based line of a byte offset. While `Config::parse` runs, a line index of its
/// text answers in O(log lines), so validating 100,000 keys stays linear; any other text is
/// counted through.
pub fn line_at(text: &str, offset: usize) -> usize {
    LINE_INDEX.with(|index| match &*index.borrow() {
        Some((ptr, len, starts)) if *ptr == text.as_ptr() as usize && *len == text.len() => {
            starts.partition_point(|&nl| nl < offset.min(text.len())) + 1
        }
        _ => crate::rules::line_of(text, offset),
    })
}

thread_local! {
    /// The text being parsed (address, length) and the offsets of its newlines.
    static LINE_INDEX: std::cell::RefCell<Option<(usize, usize, Vec<usize>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Installs the line index of `text` for as long as it lives (the length of one parse).
struct LineIndex;

impl LineIndex {
    fn install(text: &str) -> LineIndex {
        let starts = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
        LINE_INDEX.with(|i| *i.borrow_mut() = Some((text.as_ptr() as usize, text.len(), starts)));
        LineIndex
    }
}

impl Drop for LineIndex {
    fn drop(&mut self) {
        LINE_INDEX.with(|i| *i.borrow_mut() = None);
    }
}

impl Config {
    /// Loads `path`; when `explicit` is false and the file does not exist, the defaults.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        Config::load_sections(path, explicit, Sections::All)
    }

    /// Loads the `sections` of `path` a command reads; the others keep their defaults.
    pub fn load_sections(
        path: &Path,
        explicit: bool,
        sections: Sections,
    ) -> Result<Config, ConfigError> {
        if !explicit && !path.exists() {
            return Ok(Config::default().with_env());
        }
        // A regular file of a sane size only (a FIFO or a device is refused, not read).
        let text = crate::files::read_text_capped(path, crate::files::cap::CONFIG, "config files")
            .map_err(|e| ConfigError::File(e.to_string()))?;
        match sections {
            Sections::All => Config::parse(path, &text),
            Sections::Scan { airwallex, store } => {
                Config::parse_for_scan(path, &text, airwallex, store)
            }
        }
        .map(Config::with_env)
    }

    /// Parses and validates `[scan]` (and `[airwallex]`, `[store]` with `[alerts]` when asked);
    /// the rest of the file is not looked at beyond its TOML syntax.
    pub fn parse_for_scan(
        path: &Path,
        text: &str,
        with_airwallex: bool,
        with_store: bool,
    ) -> Result<Config, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Invalid(vec![toml_problem(path, text, &e)]);
        let src = Source { path, text };
        let mut problems = Vec::new();
        let raw: OnlyScan = toml::from_str(text).map_err(syntax)?;
        let mut config = Config {
            path: Some(path.to_path_buf()),
            scan: scan::validate(&src, &raw.scan, &mut problems),
            ..Config::default()
        };
        if with_airwallex {
            let raw: OnlyAirwallex = toml::from_str(text).map_err(syntax)?;
            config.airwallex = airwallex::validate(&src, &raw.airwallex, &mut problems);
        }
        if with_store {
            let raw: OnlyStore = toml::from_str(text).map_err(syntax)?;
            config.store = store::validate(&src, &raw.store, &mut problems);
            config.alerts = raw
                .alerts
                .as_ref()
                .and_then(|a| alerts::validate(&src, a, &mut problems));
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line);
            return Err(ConfigError::Invalid(problems));
        }
        Ok(config)
    }

    /// Parses and validates config text; `path` is used in messages and to resolve relative
    /// paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let _lines = LineIndex::install(text);
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Invalid(vec![toml_problem(path, text, &e)]))?;
        let mut problems = Vec::new();
        let src = Source { path, text };
        // Scope ids are checked against the catalog, parsed only when keys are declared (a
        // scan, the pre-commit hook above all, never needs it).
        let keys = if raw.keys.is_empty() {
            Vec::new()
        } else {
            let catalog = crate::airwallex::Catalog::builtin_ref();
            keys::validate_keys(path, text, &raw.keys, catalog, &mut problems)
        };
        watch::check_key(&src, &raw.watch, &keys, &mut problems);
        daemon::check_usage_sources(&src, &raw.daemon, &raw.usage.sources, &mut problems);
        let config = Config {
            path: Some(path.to_path_buf()),
            airwallex: airwallex::validate(&src, &raw.airwallex, &mut problems),
            scan: scan::validate(&src, &raw.scan, &mut problems),
            audit: audit::validate(&src, &raw.audit, &mut problems),
            store: store::validate(&src, &raw.store, &mut problems),
            usage: usage::validate(&src, &raw.usage, &mut problems),
            proxy: proxy::validate(&src, &raw.proxy, &mut problems),
            watch: watch::validate(&src, &raw.watch, &mut problems),
            alerts: raw
                .alerts
                .as_ref()
                .and_then(|a| alerts::validate(&src, a, &mut problems)),
            daemon: daemon::validate(&src, &raw.daemon, &mut problems),
            keys,
        };
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line);
            return Err(ConfigError::Invalid(problems));
        }
        Ok(config)
    }

    /// Applies environment overrides (`AWXGUARD_AIRWALLEX_URL`).
    fn with_env(mut self) -> Config {
        if let Ok(u) = std::env::var("AWXGUARD_AIRWALLEX_URL") {
            if !u.is_empty() {
                self.airwallex.base_url = Some(u.trim_end_matches('/').to_string());
            }
        }
        self
    }
}

/// A TOML syntax or shape error as a config problem naming the field where TOML can tell.
pub fn toml_problem(path: &Path, text: &str, e: &toml::de::Error) -> ConfigProblem {
    let line = e.span().map(|s| line_at(text, s.start)).unwrap_or(1);
    let message = e.message().trim().to_string();
    // "unknown field `foo`, expected ..." names the field; otherwise use the key on that line.
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("unknown field") || message.starts_with("missing field"))
        .map(str::to_string)
        .or_else(|| {
            text.lines()
                .nth(line - 1)
                .and_then(|l| l.split('=').next())
                .map(|k| k.trim().trim_matches(['[', ']']).to_string())
                .filter(|k| !k.is_empty())
        })
        .unwrap_or_else(|| "(document)".into());
    ConfigProblem {
        path: path.to_path_buf(),
        line,
        field,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = "[scan]\nmax_file_size = 10\nfollow = true\n";
        let err = Config::parse(Path::new("awxguard.toml"), text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("awxguard.toml:3: follow: unknown field"),
            "{msg}"
        );
    }

    #[test]
    fn numbers_are_bounded_and_durations_never_overflow() {
        let text = "[airwallex]\ntimeout_ms = 9223372036854775807\nretries = 4294967295\n\
                    retry_base_ms = 0\n[usage]\nmax_future = \"99999999999999999999d\"\n";
        let msg = Config::parse(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("c.toml:2: airwallex.timeout_ms: 9223372036854775807 is out of range"),
            "{msg}"
        );
        assert!(
            msg.contains("c.toml:3: airwallex.retries: 4294967295 is out of range: 0 to 10"),
            "{msg}"
        );
        assert!(msg.contains("c.toml:6: usage.max_future:"), "{msg}");
        for d in [
            "18446744073709551615d",
            "99999999999999999w",
            "9999999999999h",
        ] {
            assert!(parse_duration(d).is_err(), "{d}");
        }
        assert_eq!(
            parse_duration("5m").unwrap(),
            std::time::Duration::from_secs(300)
        );
    }

    #[test]
    fn ten_thousand_keys_load_with_their_lines() {
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&format!(
                "[[key]]\nname = \"k{i}\"\nclient_id = \"c{i}\"\napi_key = \"env:K{i}\"\n\
                 environment = \"sandbox\"\nkind = \"read_only\"\n\n"
            ));
        }
        let c = Config::parse(Path::new("c.toml"), &text).unwrap();
        assert_eq!(c.keys.len(), 10_000);
        assert_eq!(c.keys[9_999].declared_at, "c.toml:69994");
    }

    #[test]
    fn a_scan_reads_only_its_sections() {
        let text = "[scan]\nmax_file_size = 10\n[[key]]\nname = 1\nbogus = true\n\
                    [airwallex]\nbase_url = \"x\"\n[dashboard]\nport = 1\n";
        assert!(Config::parse(Path::new("c.toml"), text).is_err());
        let c = Config::parse_for_scan(Path::new("c.toml"), text, false, false).unwrap();
        assert_eq!(c.scan.max_file_size, Some(10));
        assert!(c.keys.is_empty());
        // Verification reads [airwallex]: its problems count then, with file, line and field.
        let msg = Config::parse_for_scan(Path::new("c.toml"), text, true, false)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("c.toml:7: airwallex.base_url:"), "{msg}");
        // [scan]'s own problems always count.
        let msg = Config::parse_for_scan(Path::new("c.toml"), "[scan]\nfollow = 1\n", false, false)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("c.toml:2: follow: unknown field"), "{msg}");
        let c = Config::parse_for_scan(
            Path::new("/etc/a/c.toml"),
            "[store]\npath = \"x.db\"\n[[key]]\n",
            false,
            true,
        )
        .unwrap();
        assert_eq!(c.store.path.as_deref(), Some(Path::new("/etc/a/x.db")));
    }

    #[test]
    fn bad_url_is_reported() {
        let text = "[airwallex]\nbase_url = \"api.airwallex.com\"\n";
        let msg = Config::parse(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("c.toml:2: airwallex.base_url:"), "{msg}");
    }

    #[test]
    fn every_section_is_accepted_and_unknown_ones_are_errors() {
        let text = "[airwallex]\n[scan]\n[audit]\n[store]\n[usage]\n[proxy]\n[watch]\n\
                    [alerts]\n[daemon]\n";
        Config::parse(Path::new("c.toml"), text).unwrap();
        let msg = Config::parse(Path::new("c.toml"), "[scan]\n[dashboard]\nport = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("c.toml:2: dashboard: unknown field"),
            "{msg}"
        );
        // A section without fields yet still rejects fields.
        let msg = Config::parse(Path::new("c.toml"), "[usage]\n\nretention = 30\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("c.toml:3: retention: unknown field"),
            "{msg}"
        );
    }

    #[test]
    fn store_path_and_allowed_hosts() {
        let text = "[store]\npath = \"db/awx.db\"\n[airwallex]\nallow_hosts = \
                    [\"Gateway.Example.com:8443\"]\n";
        let c = Config::parse(Path::new("/etc/awxguard/awxguard.toml"), text).unwrap();
        assert_eq!(
            c.store.path.as_deref(),
            Some(Path::new("/etc/awxguard/db/awx.db"))
        );
        assert_eq!(c.airwallex.allow_hosts, ["gateway.example.com:8443"]);
        let msg = Config::parse(
            Path::new("c.toml"),
            "[airwallex]\nallow_hosts = [\"https://gw.example.com/\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.starts_with(
                "c.toml:2: airwallex.allow_hosts: \"https://gw.example.com/\" is not a host"
            ),
            "{msg}"
        );
    }
}
