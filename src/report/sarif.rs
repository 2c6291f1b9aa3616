//! SARIF 2.1.0 for GitHub code scanning: one run, the rules in force with their descriptions and
//! `security-severity`, results at relative URIs under `%SRCROOT%`, `partialFingerprints` from
//! the finding's secret fingerprint so alerts follow a key across line shifts. Like every other
//! format it carries only a secret's preview and fingerprint.

use super::{Report, RuleInfo};
use crate::finding::{Finding, Severity};
use serde_json::{json, Map, Value};
use std::io::Write;

/// Where the SARIF 2.1.0 schema lives.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The base id relative URIs are resolved against: the scanned root (or repository).
pub const SRCROOT: &str = "%SRCROOT%";

/// GitHub's `security-severity` (a CVSS-like score: 9.0+ critical, 7.0+ high, 4.0+ medium, 0.1+
/// low).
pub fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// SARIF's `level`.
pub fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// Percent-encodes a relative path for a URI reference (keeps `/` and RFC 3986 unreserved
/// characters; Windows separators become `/`).
pub fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.replace('\\', "/").bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The rules to describe: those the report carries, then built-in leak rules and a generic
/// description for any other rule a finding names.
fn rules_for(report: &Report) -> Vec<RuleInfo> {
    let mut rules = report.rules.clone();
    let missing: Vec<&str> = {
        let mut ids: Vec<&str> = report
            .findings
            .iter()
            .map(|f| f.rule.as_str())
            .filter(|id| !rules.iter().any(|r| r.id == *id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    if missing.is_empty() {
        return rules;
    }
    let builtin = crate::rules::LeakRules::load(&[], &[])
        .map(|r| r.rules)
        .unwrap_or_default();
    for id in missing {
        let info = match builtin.iter().find(|r| r.id == id) {
            Some(r) => RuleInfo {
                id: r.id.clone(),
                name: r.name.clone(),
                description: r.description.clone(),
                severity: r.severity,
            },
            None => {
                let severity = report
                    .findings
                    .iter()
                    .filter(|f| f.rule == id)
                    .map(|f| f.severity)
                    .max()
                    .unwrap_or(Severity::Medium);
                RuleInfo {
                    id: id.to_string(),
                    name: id.to_string(),
                    description: format!("awxguard rule {id}."),
                    severity,
                }
            }
        };
        rules.push(info);
    }
    rules
}

/// `leak.airwallex.api-key` -> `LeakAirwallexApiKey` (SARIF's `name` is an identifier).
fn rule_name(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn rule_json(r: &RuleInfo) -> Value {
    let help = format!(
        "{}\n\nawxguard never prints the secret: the result shows its preview and fingerprint. \
         Revoke or rotate the key, then record the judged finding in a baseline \
         (`awxguard scan --write-baseline`).",
        r.description
    );
    let mut tags = vec!["security"];
    if r.id.starts_with("leak.") {
        tags.push("secret");
    }
    json!({
        "id": r.id,
        "name": rule_name(&r.id),
        "shortDescription": { "text": r.name },
        "fullDescription": { "text": r.description },
        "help": { "text": help, "markdown": help },
        "defaultConfiguration": { "level": level(r.severity) },
        "properties": {
            "security-severity": security_severity(r.severity),
            "problem.severity": match level(r.severity) { "error" => "error", "warning" => "warning", _ => "recommendation" },
            "precision": "high",
            "tags": tags,
        },
    })
}

fn result_json(f: &Finding, rule_index: usize) -> Value {
    let mut message = f.message.clone();
    if let Some(s) = &f.secret {
        message.push_str(&format!(" (secret {}, {})", s.preview, s.fingerprint));
    }
    if let Some(c) = &f.commit {
        message.push_str(&format!("; introduced in commit {}", c.id));
    }
    let mut result = Map::new();
    result.insert("ruleId".into(), json!(f.rule));
    result.insert("ruleIndex".into(), json!(rule_index));
    result.insert("level".into(), json!(level(f.severity)));
    result.insert("message".into(), json!({ "text": message }));
    if let Some(path) = &f.path {
        let mut physical = json!({
            "artifactLocation": { "uri": uri_path(path), "uriBaseId": SRCROOT },
        });
        if let Some(line) = f.line.filter(|l| *l > 0) {
            let mut region = json!({ "startLine": line });
            if let Some(col) = f.column.filter(|c| *c > 0) {
                region["startColumn"] = json!(col);
            }
            physical["region"] = region;
        }
        result.insert(
            "locations".into(),
            json!([{ "physicalLocation": physical }]),
        );
    }
    let fingerprint = f
        .secret
        .as_ref()
        .map(|s| s.fingerprint.clone())
        .unwrap_or_else(|| f.id.clone());
    result.insert(
        "partialFingerprints".into(),
        json!({
            "awxguard/secret/v1": format!("{fingerprint}:{}", f.path.as_deref().unwrap_or("")),
            "awxguard/finding/v1": f.id,
        }),
    );
    let mut props = Map::new();
    props.insert("id".into(), json!(f.id));
    props.insert("severity".into(), json!(f.severity));
    props.insert(
        "security-severity".into(),
        json!(security_severity(f.severity)),
    );
    if let Some(s) = &f.secret {
        props.insert(
            "secret".into(),
            serde_json::to_value(s).expect("serializes"),
        );
    }
    if let Some(v) = f.verification {
        props.insert("verification".into(), json!(v));
    }
    if let Some(c) = &f.commit {
        props.insert(
            "commit".into(),
            serde_json::to_value(c).expect("serializes"),
        );
    }
    if let Some(k) = &f.key {
        props.insert("key".into(), json!(k));
    }
    if let Some(st) = f.status {
        props.insert("status".into(), json!(st));
    }
    result.insert("properties".into(), Value::Object(props));
    Value::Object(result)
}

/// `%SRCROOT%`: the directory results' relative URIs start from (a scan's `summary.scan.root`,
/// the top of the git work tree scanned), as an absolute `file:` URI when the report knows it.
fn src_root(report: &Report) -> Value {
    let mut base = json!({ "description": { "text": "The scanned repository or directory" } });
    if let Some(root) = report.summary.scan.as_ref().and_then(|s| s.root.as_deref()) {
        let path = uri_path(root);
        let sep = if path.starts_with('/') { "" } else { "/" };
        let slash = if path.ends_with('/') { "" } else { "/" };
        base["uri"] = json!(format!("file://{sep}{path}{slash}"));
    }
    base
}

/// The SARIF log for `report`.
pub fn to_sarif(report: &Report) -> Value {
    let rules = rules_for(report);
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let index = rules.iter().position(|r| r.id == f.rule).unwrap_or(0);
            result_json(f, index)
        })
        .collect();
    let notifications: Vec<Value> = report
        .summary
        .problems
        .iter()
        .map(|p| {
            json!({
                "level": "warning",
                "message": { "text": format!("{}: {}", p.path, p.error) },
            })
        })
        .chain(
            report
                .summary
                .notes
                .iter()
                .map(|n| json!({ "level": "note", "message": { "text": n } })),
        )
        .collect();
    let mut driver = json!({
        "name": "awxguard",
        "version": env!("CARGO_PKG_VERSION"),
        "semanticVersion": env!("CARGO_PKG_VERSION"),
        "rules": rules.iter().map(rule_json).collect::<Vec<_>>(),
    });
    // The project's home, once Cargo.toml names one (`repository`).
    let home = env!("CARGO_PKG_REPOSITORY");
    if !home.is_empty() {
        driver["informationUri"] = json!(home);
    }
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": driver },
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "originalUriBaseIds": { SRCROOT: src_root(report) },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

pub fn render(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_sarif(report))?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_percent_encoded_relative_paths() {
        assert_eq!(uri_path("src/a b.rs"), "src/a%20b.rs");
        assert_eq!(uri_path("dir\\x.env"), "dir/x.env");
        assert_eq!(uri_path("<stdin>"), "%3Cstdin%3E");
    }

    #[test]
    fn rule_names_are_identifiers() {
        assert_eq!(rule_name("leak.airwallex.api-key"), "LeakAirwallexApiKey");
    }
}
