//! Unit tests of `[alerts]`: durations, the shipped example, empty sections, webhook URLs.

use super::*;
use std::path::Path;

#[test]
fn durations() {
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("3y").is_err());
}

#[test]
fn the_commented_example_is_valid_once_uncommented() {
    let example = include_str!("../../../examples/awxguard.toml");
    let start = example
        .find("# [alerts]")
        .expect("the example documents [alerts]");
    let setting = regex::Regex::new(r"^(\[|[a-z_]+ = )").unwrap();
    let text: String = example[start..]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| setting.is_match(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("internal-ca.pem"), "").unwrap();
    let cfg = crate::config::Config::parse(&dir.path().join("awxguard.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let a = cfg.alerts.expect("configured");
    assert_eq!(a.routes.len(), 2);
    assert!(a.email.is_some() && a.webhook.is_some() && a.file.is_some());
    assert_eq!(a.timezone.name(), "Europe/Zurich");
}

#[test]
fn an_empty_section_is_no_alerting_and_a_sinkless_one_is_an_error() {
    let p = Path::new("c.toml");
    assert!(crate::config::Config::parse(p, "[alerts]\n")
        .unwrap()
        .alerts
        .is_none());
    let msg = crate::config::Config::parse(p, "[scan]\n[alerts]\nmin_severity = \"loud\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("c.toml:3: alerts.min_severity: unknown severity"),
        "{msg}"
    );
    assert!(msg.contains("c.toml:2: alerts: no sink"), "{msg}");
}

#[test]
fn webhook_urls() {
    assert!(check_webhook_url("https://hooks.example.com/x").is_ok());
    assert!(check_webhook_url("http://127.0.0.1:8080/x").is_ok());
    assert!(check_webhook_url("http://[::1]:8080/x").is_ok());
    assert!(check_webhook_url("http://hooks.example.com/x").is_err());
    assert!(check_webhook_url("ftp://x").is_err());
}
