//! `[proxy]`: the recording and enforcing proxy (`awxguard proxy`). Command-line flags override
//! each field.

use super::{ConfigProblem, Source};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// The `[proxy]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    /// Address to listen on (`127.0.0.1:8788`).
    pub listen: Option<Spanned<String>>,
    /// The Airwallex API to forward to (default: `[airwallex] base_url`, else production).
    pub upstream: Option<Spanned<String>>,
    /// `true` (every key), `false`, or a list of key names.
    pub enforce: Option<Spanned<toml::Value>>,
    /// Client addresses or CIDRs allowed to use the proxy; empty: any.
    #[serde(default)]
    pub allowed_clients: Vec<Spanned<String>>,
    /// PEM files of CAs to trust for the upstream, relative to the config file.
    #[serde(default)]
    pub upstream_ca: Vec<Spanned<String>>,
    /// Hold transfers to beneficiaries created or changed less than this many minutes ago.
    pub money_guard_minutes: Option<u64>,
    /// Where events go while the database refuses them, relative to the config file.
    pub spill_dir: Option<Spanned<String>>,
    /// Most events waiting for the writer before requests spill their own.
    pub queue_capacity: Option<Spanned<u64>>,
}

/// What `enforce` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnforceSetting {
    #[default]
    Off,
    All,
    Keys(Vec<String>),
}

/// The validated `[proxy]` section.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enforce: EnforceSetting,
    pub allowed_clients: Vec<String>,
    pub upstream_ca: Vec<PathBuf>,
    pub money_guard_minutes: Option<u64>,
    pub spill_dir: Option<PathBuf>,
    pub queue_capacity: Option<usize>,
}

/// Validates `[proxy]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawProxy,
    problems: &mut Vec<ConfigProblem>,
) -> ProxyConfig {
    let mut out = ProxyConfig {
        listen: raw.listen.as_ref().map(|l| l.get_ref().clone()),
        upstream: raw.upstream.as_ref().map(|u| u.get_ref().clone()),
        // A year at most: a hold longer than that is a typo (and must stay addable to a time).
        money_guard_minutes: raw
            .money_guard_minutes
            .filter(|m| *m > 0)
            .map(|m| m.min(525_600)),
        ..ProxyConfig::default()
    };
    if let Some(l) = &raw.listen {
        if l.get_ref().parse::<std::net::SocketAddr>().is_err() {
            problems.push(src.problem(
                l.span(),
                "proxy.listen",
                format!(
                    "{:?} is not an address and port; e.g. \"127.0.0.1:8788\"",
                    l.get_ref()
                ),
            ));
        }
    }
    if let Some(e) = &raw.enforce {
        out.enforce = match e.get_ref() {
            toml::Value::Boolean(true) => EnforceSetting::All,
            toml::Value::Boolean(false) => EnforceSetting::Off,
            toml::Value::Array(a) if a.iter().all(|v| v.is_str()) => EnforceSetting::Keys(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => {
                problems.push(src.problem(
                    e.span(),
                    "proxy.enforce",
                    "must be true (every key), false, or a list of key names, e.g. [\"payvy-ap\"]"
                        .into(),
                ));
                EnforceSetting::Off
            }
        };
    }
    for c in &raw.allowed_clients {
        let s = c.get_ref();
        if s.parse::<ipnet::IpNet>().is_err() && s.parse::<std::net::IpAddr>().is_err() {
            problems.push(src.problem(
                c.span(),
                "proxy.allowed_clients",
                format!("{s:?} is not an IP address or CIDR; e.g. \"10.0.0.0/8\""),
            ));
        }
        out.allowed_clients.push(s.clone());
    }
    for p in &raw.upstream_ca {
        let path = src.base().join(p.get_ref());
        if !path.is_file() {
            problems.push(src.problem(
                p.span(),
                "proxy.upstream_ca",
                format!(
                    "{} is not a file; give a PEM certificate file",
                    path.display()
                ),
            ));
        }
        out.upstream_ca.push(path);
    }
    out.spill_dir = raw.spill_dir.as_ref().map(|d| src.base().join(d.get_ref()));
    if let Some(q) = &raw.queue_capacity {
        if *q.get_ref() < 64 || *q.get_ref() > 16 << 20 {
            problems.push(src.problem(
                q.span(),
                "proxy.queue_capacity",
                "must be from 64 to 16777216 events; the default is 65536".into(),
            ));
        }
        out.queue_capacity = Some(*q.get_ref() as usize);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, EnforceSetting};
    use std::path::Path;

    #[test]
    fn proxy_section_fields_and_problems() {
        let c = Config::parse(
            Path::new("awxguard.toml"),
            "[proxy]\nlisten = \"127.0.0.1:9000\"\nenforce = [\"payvy-ap\"]\nallowed_clients = [\"10.0.0.0/8\", \"127.0.0.1\"]\nmoney_guard_minutes = 30\n",
        )
        .unwrap();
        assert_eq!(c.proxy.listen.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(
            c.proxy.enforce,
            EnforceSetting::Keys(vec!["payvy-ap".into()])
        );
        assert_eq!(c.proxy.allowed_clients.len(), 2);
        assert_eq!(c.proxy.money_guard_minutes, Some(30));
        let e = Config::parse(
            Path::new("awxguard.toml"),
            "[proxy]\nlisten = \"localhost\"\nenforce = 3\nallowed_clients = [\"office\"]\nqueue_capacity = 1\n",
        )
        .unwrap_err();
        let ConfigError::Invalid(problems) = e else {
            panic!("{e}")
        };
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 4, "{text:#?}");
        assert!(
            text[0].starts_with("awxguard.toml:2: proxy.listen:"),
            "{text:#?}"
        );
        assert!(
            text[1].starts_with("awxguard.toml:3: proxy.enforce:"),
            "{text:#?}"
        );
        assert!(
            text[2].contains("proxy.allowed_clients: \"office\""),
            "{text:#?}"
        );
        assert!(text[3].contains("proxy.queue_capacity"), "{text:#?}");
    }
}
