//! What on-call reads (contract `alerts.md`): the alert document every sink carries (the JSON of
//! the webhook and file sinks), its subject, and its text and HTML renderings. Built once when
//! an alert leaves the queue and stored with it, so a resend is the same message.

use super::model::{message_id, AlertKind, KeyCard};
use crate::config::AlertsConfig;
use crate::finding::{Finding, Severity, Status};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;

mod html;
#[cfg(test)]
mod tests;
mod text;

pub use html::{esc, html};
pub use text::text;

/// Version of the alert document (the JSON of the webhook and file sinks).
pub const DOC_VERSION: u32 = 1;

/// Rule titles by rule id (the rules' `name`), for subjects and headings.
#[derive(Debug, Clone, Default)]
pub struct Titles(pub HashMap<String, String>);

impl Titles {
    /// The rule's title, or its id made readable (`anomaly.rate-spike` → `Rate spike`).
    pub fn get(&self, rule: &str) -> String {
        if let Some(t) = self.0.get(rule) {
            return t.clone();
        }
        let last = rule.rsplit('.').next().unwrap_or(rule).replace('-', " ");
        let mut c = last.chars();
        match c.next() {
            Some(first) => first.to_uppercase().chain(c).collect(),
            None => rule.to_string(),
        }
    }
}

/// A finding as the store knows it, for an alert.
#[derive(Debug, Clone)]
pub struct Item {
    pub finding: Finding,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One key and its findings, for an alert.
#[derive(Debug, Clone)]
pub struct Group {
    pub key: KeyCard,
    pub items: Vec<Item>,
}

/// The evidence window of a finding, in UTC and the configured zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: String,
    pub end: String,
    /// `2026-11-20 10:15 UTC to 2026-11-23 18:00 UTC (Europe/Zurich: 2026-11-20 11:15 CET to ...)`
    pub text: String,
}

/// One finding in an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocItem {
    pub title: String,
    #[serde(flatten)]
    pub finding: Finding,
    pub first_seen: String,
    pub last_seen: String,
    /// `new`, `open for 3 days`, `resolved`, `acknowledged`.
    pub status_line: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// The exact command that accepts this finding.
    pub ack_command: String,
    /// Weaker findings of the same key this one carries (`also`), when the run reported them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<Finding>,
}

/// One key's part of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocGroup {
    pub key: KeyCard,
    pub findings: Vec<DocItem>,
}

/// The alert as every sink carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDoc {
    pub version: u32,
    pub tool: String,
    pub id: String,
    pub message_id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub created_at: String,
    pub timezone: String,
    pub subject: String,
    pub from: String,
    pub to: Vec<String>,
    pub groups: Vec<DocGroup>,
    /// The plain-text body (also the Slack-compatible `text` of the webhook).
    pub text: String,
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn local(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// `2026-11-24 12:00 UTC (13:00 CET, Europe/Zurich)`; UTC alone when the zone is UTC.
pub fn both_zones(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    if tz == chrono_tz::UTC {
        utc(t)
    } else {
        format!("{} ({}, {})", utc(t), local(t, tz), tz.name())
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn window(f: &Finding, tz: chrono_tz::Tz) -> Option<Window> {
    let start = parse_time(f.start.as_deref()?)?;
    let end = f.end.as_deref().and_then(parse_time).unwrap_or(start);
    let mut text = format!("{} to {}", utc(start), utc(end));
    if tz != chrono_tz::UTC {
        let _ = write!(
            text,
            " ({}: {} to {})",
            tz.name(),
            local(start, tz),
            local(end, tz)
        );
    }
    Some(Window {
        start: start.to_rfc3339(),
        end: end.to_rfc3339(),
        text,
    })
}

fn status_line(f: &Finding, first_seen: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let days = (now - first_seen).num_days().max(0);
    match f.status {
        // `new` is a finding first seen by one run and not looked at again: new for a day.
        Some(Status::New) | None if days == 0 => "new".into(),
        Some(Status::New) | None | Some(Status::Open) => {
            format!("open for {days} day{}", if days == 1 { "" } else { "s" })
        }
        Some(Status::Resolved) => "resolved".into(),
        Some(Status::Acknowledged) => "acknowledged".into(),
    }
}

/// The exact command that acknowledges a finding.
pub fn ack_command(id: &str) -> String {
    format!("awxguard findings ack {id} --reason \"...\" --expires 30d")
}

/// The subject line (contract): `[CRITICAL] awxguard: <rule title> - key <name> (<preview>) -
/// <environment>`, with the alert kind marked for repeats, resolutions, digests and tests.
pub fn subject(
    kind: AlertKind,
    severity: Severity,
    groups: &[DocGroup],
    now: DateTime<Utc>,
) -> String {
    let findings: usize = groups.iter().map(|g| g.findings.len()).sum();
    match (kind, groups) {
        (AlertKind::Test, _) => "[TEST] awxguard: test alert - no action needed".into(),
        (AlertKind::Digest, _) => format!(
            "[DIGEST] awxguard: {findings} finding{} on {} key{} - {}",
            if findings == 1 { "" } else { "s" },
            groups.len(),
            if groups.len() == 1 { "" } else { "s" },
            now.format("%Y-%m-%d")
        ),
        (_, [g]) => {
            let top = g
                .findings
                .iter()
                .max_by_key(|i| i.finding.severity)
                .map(|i| i.title.clone())
                .unwrap_or_default();
            let more = if g.findings.len() > 1 {
                format!(" (+{} more)", g.findings.len() - 1)
            } else {
                String::new()
            };
            let preview = g
                .key
                .preview
                .clone()
                .or_else(|| g.key.fingerprint.clone())
                .unwrap_or_else(|| "no preview".into());
            let env = g
                .key
                .environment
                .clone()
                .unwrap_or_else(|| "environment unknown".into());
            let tag = match kind {
                AlertKind::Resolved => "RESOLVED".to_string(),
                _ => severity.as_str().to_ascii_uppercase(),
            };
            let lead = match kind {
                AlertKind::Repeat => "still open: ",
                _ => "",
            };
            format!(
                "[{tag}] awxguard: {lead}{top}{more} - key {} ({preview}) - {env}",
                g.key.name
            )
        }
        _ => format!(
            "[{}] awxguard: {findings} findings on {} keys",
            severity.as_str().to_ascii_uppercase(),
            groups.len()
        ),
    }
}

/// Builds the document of an alert from its key groups.
pub fn build(
    kind: AlertKind,
    id: &str,
    groups: Vec<Group>,
    to: Vec<String>,
    cfg: &AlertsConfig,
    titles: &Titles,
    now: DateTime<Utc>,
) -> AlertDoc {
    let tz = cfg.timezone;
    let mut doc_groups = Vec::new();
    for g in groups {
        let mut items = g.items;
        items.sort_by(|a, b| a.finding.sort_key().cmp(&b.finding.sort_key()));
        // Folding: a finding another one of this key carries in `also` rides inside it.
        let carried: Vec<(usize, Vec<String>)> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| !i.finding.also.is_empty())
            .map(|(n, i)| (n, i.finding.also.clone()))
            .collect();
        let mut folded_into: HashMap<usize, usize> = HashMap::new();
        for (n, i) in items.iter().enumerate() {
            if let Some((carrier, _)) = carried
                .iter()
                .find(|(c, also)| *c != n && also.contains(&i.finding.rule))
            {
                folded_into.insert(n, *carrier);
            }
        }
        let mut docs: Vec<Option<DocItem>> = items
            .iter()
            .map(|i| {
                Some(DocItem {
                    title: titles.get(&i.finding.rule),
                    finding: i.finding.clone(),
                    first_seen: i.first_seen.to_rfc3339(),
                    last_seen: i.last_seen.to_rfc3339(),
                    status_line: status_line(&i.finding, i.first_seen, now),
                    window: window(&i.finding, tz),
                    ack_command: ack_command(&i.finding.id),
                    folded: Vec::new(),
                })
            })
            .collect();
        let mut moved: Vec<(usize, Finding)> = Vec::new();
        for (n, carrier) in &folded_into {
            if let Some(d) = docs[*n].take() {
                moved.push((*carrier, d.finding));
            }
        }
        moved.sort_by(|a, b| a.1.rule.cmp(&b.1.rule));
        for (carrier, f) in moved {
            if let Some(Some(c)) = docs.get_mut(carrier) {
                c.folded.push(f);
            }
        }
        doc_groups.push(DocGroup {
            key: g.key,
            findings: docs.into_iter().flatten().collect(),
        });
    }
    let severity = doc_groups
        .iter()
        .flat_map(|g| g.findings.iter().map(|i| i.finding.severity))
        .max()
        .unwrap_or(Severity::Info);
    let subject = subject(kind, severity, &doc_groups, now);
    let mut doc = AlertDoc {
        version: DOC_VERSION,
        tool: "awxguard".into(),
        id: id.to_string(),
        message_id: message_id(id, &cfg.from),
        kind,
        severity,
        created_at: now.to_rfc3339(),
        timezone: tz.name().to_string(),
        subject: scrub(&subject),
        from: cfg.from.clone(),
        to,
        groups: doc_groups,
        text: String::new(),
    };
    doc.text = scrub(&text(&doc, tz));
    scrubbed(doc)
}

/// The last line of defence against a key or token in an alert: the one redaction gate
/// (`redact::scrub`). Findings never hold a key, but whatever has a key's or token's shape is
/// shown as its preview and fingerprint.
pub fn scrub(s: &str) -> String {
    crate::redact::scrub(s).into_owned()
}

/// The document with every string in it through the gate (subject, text, findings, evidence).
fn scrubbed(doc: AlertDoc) -> AlertDoc {
    let Ok(mut v) = serde_json::to_value(&doc) else {
        return doc;
    };
    crate::redact::scrub_json(&mut v);
    serde_json::from_value(v).unwrap_or(doc)
}

pub fn evidence_lines(v: &Value) -> Vec<(String, String)> {
    fn cut(s: String) -> String {
        if s.chars().count() > 300 {
            let mut c: String = s.chars().take(299).collect();
            c.push('…');
            c
        } else {
            s
        }
    }
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, v, out);
                }
            }
            Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
                let joined: Vec<String> = a.iter().map(scalar).collect();
                out.push((prefix.to_string(), cut(joined.join(", "))));
            }
            Value::Array(a) => {
                for (n, x) in a.iter().take(10).enumerate() {
                    out.push((format!("{prefix}[{n}]"), cut(x.to_string())));
                }
                if a.len() > 10 {
                    out.push((prefix.to_string(), format!("… and {} more", a.len() - 10)));
                }
            }
            // Nothing observed is nothing to show.
            Value::Null => {}
            other => out.push((prefix.to_string(), cut(scalar(other)))),
        }
    }
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        }
    }
    let mut out = Vec::new();
    if !v.is_null() {
        walk("", v, &mut out);
    }
    out
}

fn observed_expected(f: &Finding) -> (Option<String>, Option<String>) {
    let Some(Value::Object(ev)) = &f.evidence else {
        return (None, None);
    };
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (ev.get("observed").map(show), ev.get("expected").map(show))
}

fn evidence_rest(f: &Finding) -> Vec<(String, String)> {
    match &f.evidence {
        Some(Value::Object(ev)) => {
            let mut rest = ev.clone();
            rest.remove("observed");
            rest.remove("expected");
            evidence_lines(&Value::Object(rest))
        }
        Some(v) => evidence_lines(v),
        None => Vec::new(),
    }
}

fn key_lines(k: &KeyCard) -> Vec<(&'static str, String)> {
    let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
    vec![
        ("Name", k.name.clone()),
        ("Owner", or(&k.owner, "not declared")),
        ("Environment", or(&k.environment, "unknown")),
        ("Kind", or(&k.kind, "unknown")),
        (
            "Scopes",
            if k.scopes.is_empty() {
                match k.kind.as_deref() {
                    Some("admin") | Some("read_write") => "every scope (tier)".into(),
                    Some("read_only") => "every read scope (tier)".into(),
                    _ => "-".into(),
                }
            } else {
                k.scopes.join(", ")
            },
        ),
        ("Preview", or(&k.preview, "-")),
        ("Fingerprint", or(&k.fingerprint, "-")),
    ]
}

fn item_where(f: &Finding) -> Option<String> {
    let path = f.path.as_ref()?;
    let mut s = path.clone();
    if let Some(l) = f.line {
        let _ = write!(s, ":{l}");
    }
    if let Some(c) = &f.commit {
        let _ = write!(s, " (commit {})", c.id);
    }
    Some(s)
}
