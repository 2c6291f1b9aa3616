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

/// The plain-text body.
pub fn text(doc: &AlertDoc, tz: chrono_tz::Tz) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", doc.subject);
    let _ = writeln!(out);
    match doc.kind {
        AlertKind::Test => {
            let _ = writeln!(
                out,
                "This is a test of awxguard's alert path (awxguard alerts test). If you read \
                 this, alerts reach you here. Nothing to do."
            );
        }
        AlertKind::Digest => {
            let _ = writeln!(
                out,
                "Daily digest: new findings below the immediate threshold, and standing ones \
                 still open."
            );
        }
        AlertKind::Repeat => {
            let _ = writeln!(
                out,
                "Reminder: these findings are still open and nobody has acknowledged them."
            );
        }
        AlertKind::Resolved => {
            let _ = writeln!(
                out,
                "Resolved: a later run no longer sees these findings. Nothing to do."
            );
        }
        AlertKind::Immediate => {}
    }
    for g in &doc.groups {
        let _ = writeln!(out);
        let _ = writeln!(out, "KEY");
        for (k, v) in key_lines(&g.key) {
            let _ = writeln!(out, "  {k:<12} {v}");
        }
        let n = g.findings.len();
        for (i, item) in g.findings.iter().enumerate() {
            let f = &item.finding;
            let _ = writeln!(out);
            let head = if n > 1 {
                format!("FINDING {} OF {n}", i + 1)
            } else {
                "FINDING".into()
            };
            let _ = writeln!(
                out,
                "{head}: {} ({}, {})",
                item.title,
                f.severity.as_str().to_ascii_uppercase(),
                f.rule
            );
            let _ = writeln!(out);
            let _ = writeln!(out, "What happened");
            let _ = writeln!(out, "  {}", f.message);
            let (obs, exp) = observed_expected(f);
            if let Some(o) = obs {
                let _ = writeln!(out, "  Observed:  {o}");
            }
            if let Some(e) = exp {
                let _ = writeln!(out, "  Expected:  {e}");
            }
            if let Some(w) = &item.window {
                let _ = writeln!(out, "  Evidence window: {}", w.text);
            }
            if let Some(w) = item_where(f) {
                let _ = writeln!(out, "  Where: {w}");
            }
            if let Some(v) = f.verification {
                let _ = writeln!(out, "  Login check: {v}");
            }
            let ev = evidence_rest(f);
            if !ev.is_empty() {
                let _ = writeln!(out);
                let _ = writeln!(out, "Evidence");
                for (k, v) in ev {
                    let _ = writeln!(out, "  {k}: {v}");
                }
            }
            if let Some(r) = &f.recommendation {
                if !r.steps.is_empty() {
                    let _ = writeln!(out);
                    let _ = writeln!(out, "What to do");
                    for (n, s) in r.steps.iter().enumerate() {
                        let _ = writeln!(out, "  {}. {s}", n + 1);
                    }
                }
            }
            if !f.also.is_empty() || !item.folded.is_empty() {
                let _ = writeln!(out);
                let _ = writeln!(out, "Also carries");
                for r in &f.also {
                    let _ = writeln!(out, "  - {r}");
                }
                for x in &item.folded {
                    if !f.also.contains(&x.rule) {
                        let _ = writeln!(out, "  - {}", x.rule);
                    }
                    let _ = writeln!(out, "    {} ({})", x.message, x.id);
                }
            }
            let _ = writeln!(out);
            let first = parse_time(&item.first_seen).map(|t| both_zones(t, tz));
            let last = parse_time(&item.last_seen).map(|t| both_zones(t, tz));
            let _ = writeln!(out, "  First seen:  {}", first.unwrap_or_default());
            let _ = writeln!(out, "  Last seen:   {}", last.unwrap_or_default());
            let _ = writeln!(out, "  Status:      {}", item.status_line);
            let _ = writeln!(out, "  Finding id:  {}", f.id);
            if doc.kind != AlertKind::Resolved {
                let _ = writeln!(out, "  To accept it (after review), run:");
                let _ = writeln!(out, "    {}", item.ack_command);
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "--");
    let _ = writeln!(
        out,
        "awxguard alert {} ({}), {}",
        doc.id,
        doc.kind.as_str(),
        parse_time(&doc.created_at)
            .map(|t| both_zones(t, tz))
            .unwrap_or_default()
    );
    out
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The HTML body: the same content as the text, laid out for a mail client.
pub fn html(doc: &AlertDoc) -> String {
    let tz: chrono_tz::Tz = doc.timezone.parse().unwrap_or(chrono_tz::UTC);
    let colour = match doc.severity {
        Severity::Critical => "#b00020",
        Severity::High => "#d35400",
        Severity::Medium => "#b7950b",
        _ => "#555555",
    };
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif;max-width:50em\">\
         <h2 style=\"color:{colour}\">{}</h2>",
        esc(&doc.subject),
        esc(&doc.subject)
    );
    // The lead paragraph of the text, if any.
    if let Some(lead) = doc
        .text
        .split("\n\n")
        .nth(1)
        .filter(|l| !l.starts_with("KEY"))
    {
        let _ = write!(o, "<p>{}</p>", esc(lead.trim()));
    }
    for g in &doc.groups {
        o.push_str("<h3>Key</h3><table>");
        for (k, v) in key_lines(&g.key) {
            let _ = write!(
                o,
                "<tr><th align=\"left\">{k}</th><td><code>{}</code></td></tr>",
                esc(&v)
            );
        }
        o.push_str("</table>");
        for item in &g.findings {
            let f = &item.finding;
            let _ = write!(
                o,
                "<hr><h3>{} <small>({}, <code>{}</code>)</small></h3>",
                esc(&item.title),
                f.severity.as_str().to_ascii_uppercase(),
                esc(&f.rule)
            );
            let _ = write!(o, "<h4>What happened</h4><p>{}</p>", esc(&f.message));
            let (obs, exp) = observed_expected(f);
            if obs.is_some() || exp.is_some() || item.window.is_some() {
                o.push_str("<table>");
                for (k, v) in [
                    ("Observed", obs),
                    ("Expected", exp),
                    (
                        "Evidence window",
                        item.window.as_ref().map(|w| w.text.clone()),
                    ),
                    ("Where", item_where(f)),
                ] {
                    if let Some(v) = v {
                        let _ = write!(
                            o,
                            "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
                            esc(&v)
                        );
                    }
                }
                o.push_str("</table>");
            }
            let ev = evidence_rest(f);
            if !ev.is_empty() {
                o.push_str("<h4>Evidence</h4><ul>");
                for (k, v) in ev {
                    let _ = write!(o, "<li><b>{}</b>: <code>{}</code></li>", esc(&k), esc(&v));
                }
                o.push_str("</ul>");
            }
            if let Some(r) = f.recommendation.as_ref().filter(|r| !r.steps.is_empty()) {
                o.push_str("<h4>What to do</h4><ol>");
                for s in &r.steps {
                    let _ = write!(o, "<li>{}</li>", esc(s));
                }
                o.push_str("</ol>");
            }
            if !f.also.is_empty() || !item.folded.is_empty() {
                o.push_str("<h4>Also carries</h4><ul>");
                for r in &f.also {
                    let _ = write!(o, "<li><code>{}</code></li>", esc(r));
                }
                for x in &item.folded {
                    let _ = write!(
                        o,
                        "<li><code>{}</code>: {} ({})</li>",
                        esc(&x.rule),
                        esc(&x.message),
                        esc(&x.id)
                    );
                }
                o.push_str("</ul>");
            }
            o.push_str("<table>");
            for (k, v) in [
                (
                    "First seen",
                    parse_time(&item.first_seen).map(|t| both_zones(t, tz)),
                ),
                (
                    "Last seen",
                    parse_time(&item.last_seen).map(|t| both_zones(t, tz)),
                ),
                ("Status", Some(item.status_line.clone())),
                ("Finding id", Some(f.id.clone())),
            ] {
                let _ = write!(
                    o,
                    "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
                    esc(&v.unwrap_or_default())
                );
            }
            o.push_str("</table>");
            if doc.kind != AlertKind::Resolved {
                let _ = write!(
                    o,
                    "<p>To accept it (after review), run:</p><pre>{}</pre>",
                    esc(&item.ack_command)
                );
            }
        }
    }
    let _ = write!(
        o,
        "<hr><p style=\"color:#777\">awxguard alert {} ({})</p></body></html>",
        esc(&doc.id),
        doc.kind.as_str()
    );
    scrub(&o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Action, Recommendation, SecretRef};

    pub(crate) fn sample(now: DateTime<Utc>) -> (Vec<Group>, AlertsConfig) {
        let mut f = Finding::new(
            "privilege.admin-key",
            Severity::Critical,
            "payvy-prod is an admin key (production): it can call every Airwallex API",
            &["payvy-prod"],
        );
        f.key = Some("payvy-prod".into());
        f.status = Some(Status::New);
        f.start = Some("2026-11-20T10:15:00Z".into());
        f.end = Some("2026-11-23T18:00:00Z".into());
        f.also = vec!["privilege.unused-scope".into()];
        f.evidence = Some(serde_json::json!({
            "observed": "admin key",
            "expected": "a scoped key with the scopes its calls need",
            "events": 20,
            "source_ips": ["203.0.113.7", "198.51.100.2"],
            "samples": [{"ts": "2026-11-20T10:15:00Z", "path": "/api/v1/transfers"}],
        }));
        f.recommendation = Some(Recommendation {
            action: Action::Narrow,
            steps: vec![
                "Create a scoped key named \"payvy-prod-scoped\" with transfer:read".into(),
                "Delete the admin key payvy-prod".into(),
            ],
            replacement: None,
        });
        let mut folded = Finding::new(
            "privilege.unused-scope",
            Severity::Medium,
            "payvy-prod has 36 unused scopes",
            &["payvy-prod", "u"],
        );
        folded.key = Some("payvy-prod".into());
        let mut leak = Finding::new(
            "leak.airwallex.api-key",
            Severity::High,
            "Airwallex API key in src/pay.py",
            &["x"],
        );
        leak.key = Some("payvy-prod".into());
        leak.path = Some("src/pay.py".into());
        leak.line = Some(3);
        leak.status = Some(Status::Open);
        leak.secret = Some(SecretRef {
            preview: "3f9a…c21e".into(),
            fingerprint: "sha256:0011223344556677".into(),
            client_id: None,
        });
        let card = KeyCard {
            name: "payvy-prod".into(),
            owner: Some("payments".into()),
            environment: Some("production".into()),
            kind: Some("admin".into()),
            scopes: vec![],
            preview: Some("3f9a…c21e".into()),
            fingerprint: Some("sha256:0011223344556677".into()),
            declared: true,
        };
        let items = [f, folded, leak]
            .into_iter()
            .map(|finding| Item {
                first_seen: if finding.status == Some(Status::Open) {
                    now - chrono::Duration::days(3)
                } else {
                    now
                },
                finding,
                last_seen: now,
            })
            .collect();
        let mut cfg = AlertsConfig::with_sinks(None, None, None);
        cfg.timezone = "Europe/Zurich".parse().unwrap();
        cfg.from = "awxguard <alerts@example.com>".into();
        (vec![Group { key: card, items }], cfg)
    }

    #[test]
    fn immediate_alert_says_everything_on_call_needs() {
        let now = parse_time("2026-11-24T12:00:00Z").unwrap();
        let (groups, cfg) = sample(now);
        let doc = build(
            AlertKind::Immediate,
            "abc123",
            groups,
            vec!["oncall@example.com".into()],
            &cfg,
            &Titles(HashMap::from([(
                "privilege.admin-key".to_string(),
                "Admin key in use".to_string(),
            )])),
            now,
        );
        assert_eq!(
            doc.subject,
            "[CRITICAL] awxguard: Admin key in use (+1 more) - key payvy-prod (3f9a…c21e) - production"
        );
        assert_eq!(doc.message_id, "<awxguard.abc123@example.com>");
        // The folded finding rides inside its carrier.
        assert_eq!(doc.groups[0].findings.len(), 2);
        assert_eq!(doc.groups[0].findings[0].folded.len(), 1);
        let t = &doc.text;
        for want in [
            "Observed:  admin key",
            "Expected:  a scoped key",
            "Evidence window: 2026-11-20 10:15 UTC to 2026-11-23 18:00 UTC (Europe/Zurich: 2026-11-20 11:15 CET to 2026-11-23 19:00 CET)",
            "Owner        payments",
            "Fingerprint  sha256:0011223344556677",
            "source_ips: 203.0.113.7, 198.51.100.2",
            "1. Create a scoped key named \"payvy-prod-scoped\" with transfer:read",
            "2. Delete the admin key payvy-prod",
            "Status:      new",
            "Status:      open for 3 days",
            "Where: src/pay.py:3",
            "privilege.unused-scope",
        ] {
            assert!(t.contains(want), "missing {want:?} in:\n{t}");
        }
        let id = &doc.groups[0].findings[0].finding.id;
        assert!(t.contains(&format!(
            "awxguard findings ack {id} --reason \"...\" --expires 30d"
        )));
        let h = html(&doc);
        assert!(
            h.contains("<li>Delete the admin key payvy-prod</li>"),
            "{h}"
        );
        assert!(h.contains("&quot;payvy-prod-scoped&quot;"));
        let json = serde_json::to_value(&doc).unwrap();
        let back: AlertDoc = serde_json::from_value(json).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn scrub_hides_keys_and_tokens() {
        let key = "ab".repeat(48);
        let s = scrub(&format!(
            "key {key} token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.abc"
        ));
        assert!(s.starts_with("key [redacted abab…abab sha256:"), "{s}");
        assert!(!s.contains(&key[..41]) && !s.contains("eyJzdWIi"), "{s}");
    }

    #[test]
    fn digest_subject_counts() {
        let now = parse_time("2026-11-24T12:00:00Z").unwrap();
        let (groups, cfg) = sample(now);
        let doc = build(
            AlertKind::Digest,
            "d1",
            groups,
            vec![],
            &cfg,
            &Titles::default(),
            now,
        );
        assert_eq!(
            doc.subject,
            "[DIGEST] awxguard: 2 findings on 1 key - 2026-11-24"
        );
    }
}
