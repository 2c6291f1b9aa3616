//! Configuration: `awxguard.toml` read into a raw form that rejects unknown fields, then
//! validated into `Config`. Every problem names the file, line and field, and all problems are
//! reported at once.

mod alerts;
mod keys;

pub use alerts::{
    check_webhook_url, is_loopback_host, parse_duration, AlertsConfig, CredentialRef, EmailSink,
    FileSink, RawAlerts, Route, SmtpSecurity, UrlSpec, WebhookSink,
};
pub use keys::{is_api_key_shape, AuditConfig, KeyDecl, RawAudit, RawKey, SecretSpec};

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
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub scan: RawScan,
    #[serde(default)]
    pub airwallex: RawAirwallex,
    /// `[[key]]` tables: the declared Airwallex keys.
    #[serde(default, rename = "key")]
    pub keys: Vec<Spanned<RawKey>>,
    #[serde(default)]
    pub audit: RawAudit,
    /// `[alerts]`: absent means no alerts are queued.
    pub alerts: Option<Spanned<RawAlerts>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScan {
    /// Extra rule directories (or files), relative to the config file.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Built-in rule ids to disable.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
    /// Skip files larger than this many bytes.
    pub max_file_size: Option<Spanned<u64>>,
    pub follow_symlinks: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAirwallex {
    pub base_url: Option<Spanned<String>>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub retry_base_ms: Option<u64>,
}

/// Settings of the scanner.
#[derive(Debug, Clone, Default)]
pub struct ScanConfig {
    pub rule_dirs: Vec<PathBuf>,
    pub disable: Vec<String>,
    pub max_file_size: Option<u64>,
    pub follow_symlinks: Option<bool>,
}

/// How to reach Airwallex.
#[derive(Debug, Clone)]
pub struct AirwallexConfig {
    /// Set by config or `AWXGUARD_AIRWALLEX_URL`; `None` means the documented hosts.
    pub base_url: Option<String>,
    pub timeout_ms: u64,
    pub retries: u32,
    pub retry_base_ms: u64,
}

impl Default for AirwallexConfig {
    fn default() -> Self {
        AirwallexConfig {
            base_url: None,
            timeout_ms: 10_000,
            retries: 4,
            retry_base_ms: 1_000,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    pub scan: ScanConfig,
    pub airwallex: AirwallexConfig,
    /// The declared keys, in config order.
    pub keys: Vec<KeyDecl>,
    pub audit: AuditConfig,
    /// `[alerts]`, when configured.
    pub alerts: Option<AlertsConfig>,
}

/// Finds the 1-based line of a byte offset.
pub fn line_at(text: &str, offset: usize) -> usize {
    crate::rules::line_of(text, offset)
}

impl Config {
    /// Loads `path`; when `explicit` is false and the file does not exist, the defaults.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        if !explicit && !path.exists() {
            return Ok(Config::default().with_env());
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text).map(Config::with_env)
    }

    /// Parses and validates config text; `path` is used in messages and to resolve relative
    /// paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Invalid(vec![toml_problem(path, text, &e)]))?;
        let mut problems = Vec::new();
        let base = path.parent().unwrap_or(Path::new("."));
        let problem = |span: std::ops::Range<usize>, field: &str, message: String| ConfigProblem {
            path: path.to_path_buf(),
            line: line_at(text, span.start),
            field: field.to_string(),
            message,
        };
        let mut scan = ScanConfig::default();
        for r in &raw.scan.rules {
            let p = base.join(r.get_ref());
            if !p.exists() {
                problems.push(problem(
                    r.span(),
                    "scan.rules",
                    format!(
                        "rule directory {} does not exist; give a directory of .toml rule files",
                        p.display()
                    ),
                ));
            }
            scan.rule_dirs.push(p);
        }
        scan.disable = raw
            .scan
            .disable
            .iter()
            .map(|d| d.get_ref().clone())
            .collect();
        if let Some(m) = &raw.scan.max_file_size {
            if *m.get_ref() == 0 {
                problems.push(problem(
                    m.span(),
                    "scan.max_file_size",
                    "must be a positive number of bytes, e.g. 26214400 for 25 MiB".into(),
                ));
            }
            scan.max_file_size = Some(*m.get_ref());
        }
        scan.follow_symlinks = raw.scan.follow_symlinks;
        let mut airwallex = AirwallexConfig::default();
        if let Some(u) = &raw.airwallex.base_url {
            let s = u.get_ref().trim_end_matches('/').to_string();
            if !(s.starts_with("https://") || s.starts_with("http://")) {
                problems.push(problem(
                    u.span(),
                    "airwallex.base_url",
                    format!("{s:?} is not an http(s) URL; e.g. https://api.airwallex.com"),
                ));
            }
            airwallex.base_url = Some(s);
        }
        if let Some(t) = raw.airwallex.timeout_ms {
            airwallex.timeout_ms = t;
        }
        if let Some(r) = raw.airwallex.retries {
            airwallex.retries = r;
        }
        if let Some(b) = raw.airwallex.retry_base_ms {
            airwallex.retry_base_ms = b;
        }
        // Scope ids are checked against the catalog, parsed only when keys are declared (a
        // scan, the pre-commit hook above all, never needs it).
        let keys = if raw.keys.is_empty() {
            Vec::new()
        } else {
            let catalog = crate::privilege::Catalog::builtin_ref();
            keys::validate_keys(path, text, &raw.keys, catalog, &mut problems)
        };
        let audit = keys::validate_audit(path, text, &raw.audit, &mut problems);
        let alerts = raw
            .alerts
            .as_ref()
            .map(|a| alerts::validate(path, text, a, &mut problems));
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line);
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Config {
            path: Some(path.to_path_buf()),
            scan,
            airwallex,
            keys,
            audit,
            alerts,
        })
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
    fn bad_url_is_reported() {
        let text = "[airwallex]\nbase_url = \"api.airwallex.com\"\n";
        let msg = Config::parse(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("c.toml:2: airwallex.base_url:"), "{msg}");
    }
}
