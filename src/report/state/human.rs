//! The state report for a terminal: the same model as the HTML page, as text. Usage is a daily
//! sparkline instead of a chart.

use super::StateReport;
use crate::report::Style;
use std::io::Write;

fn t(s: &str) -> std::borrow::Cow<'_, str> {
    crate::redact::terminal(s)
}

fn bold(style: Style, s: &str) -> String {
    if style.color {
        format!("\x1b[1m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn sev(style: Style, s: crate::finding::Severity) -> String {
    use crate::finding::Severity::*;
    let code = match s {
        Critical => "1;31",
        High => "31",
        Medium => "33",
        Low => "36",
        Info => "2",
    };
    if style.color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// Eight levels of a sparkline.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Calls per day as a sparkline.
fn sparkline(days: &[u64]) -> String {
    let max = days.iter().copied().max().unwrap_or(0).max(1);
    days.iter()
        .map(|&d| {
            if d == 0 {
                ' '
            } else {
                BARS[((d * 7).div_ceil(max)).min(7) as usize]
            }
        })
        .collect()
}

pub fn render(r: &StateReport, style: Style, out: &mut dyn Write) -> std::io::Result<()> {
    let o = &r.overview;
    writeln!(
        out,
        "{}",
        bold(
            style,
            &format!(
                "awxguard report{} — {}",
                r.key
                    .as_deref()
                    .map(|k| format!(": key {}", t(k)))
                    .unwrap_or_default(),
                r.generated_at
            )
        )
    )?;
    let sevs: Vec<String> = o
        .open_by_severity
        .iter()
        .filter(|c| c.count > 0)
        .map(|c| format!("{} {}", c.count, sev(style, c.severity)))
        .collect();
    writeln!(
        out,
        "{} keys, {} open findings{}; since {}: {} new, {} resolved; usage evidence: {} ({} events)",
        o.keys,
        o.open_findings,
        if sevs.is_empty() {
            String::new()
        } else {
            format!(" ({})", sevs.join(", "))
        },
        r.since,
        o.new_since.len(),
        o.resolved_since.len(),
        o.evidence.source,
        o.evidence.events
    )?;
    writeln!(out)?;
    writeln!(out, "{}", bold(style, "Keys by risk"))?;
    for k in &o.keys_by_risk {
        writeln!(
            out,
            "  {:<24} {:<9} {:>2} open{}{}",
            t(&k.key),
            k.risk.map_or("none".to_string(), |s| sev(style, s)),
            k.open,
            if k.leaked { "  LEAKED" } else { "" },
            k.top_rule
                .as_deref()
                .map(|r| format!("  {}", t(r)))
                .unwrap_or_default()
        )?;
    }
    for (title, list) in [("New", &o.new_since), ("Resolved", &o.resolved_since)] {
        if list.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            bold(style, &format!("{title} since {}", r.since))
        )?;
        for f in list {
            writeln!(
                out,
                "  {}  {:<8} {}  {}{}",
                f.id,
                sev(style, f.severity),
                t(&f.rule),
                f.key
                    .as_deref()
                    .map(|k| format!("{}: ", t(k)))
                    .unwrap_or_default(),
                t(&f.message)
            )?;
        }
    }
    for b in &r.blast_radius {
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            bold(style, &format!("Blast radius of {}", t(&b.key)))
        )?;
        writeln!(
            out,
            "  exposed {} ({} days ago) at {}{}{}; {}",
            b.exposure.at,
            b.exposure.days,
            t(&b.exposure.path),
            b.exposure.line.map(|l| format!(":{l}")).unwrap_or_default(),
            b.exposure
                .commit
                .as_ref()
                .map(|c| format!(
                    ", commit {}{}",
                    super::blast::short_commit(&c.id),
                    if c.author.is_empty() {
                        String::new()
                    } else {
                        format!(" by {}", t(&c.author))
                    }
                ))
                .unwrap_or_default(),
            match &b.live {
                Some(v) => format!("verified {} on {}", v.status, v.observed_at),
                None => "never verified".into(),
            }
        )?;
        for e in &b.timeline {
            writeln!(
                out,
                "  {} {} {}{}",
                e.at,
                if e.attention { "!" } else { " " },
                t(&e.title),
                if e.ids.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", t(&e.ids.join(", ")))
                }
            )?;
            if !e.detail.is_empty() {
                writeln!(out, "                         {}", t(&e.detail))?;
            }
            if let Some(m) = &e.made_by {
                writeln!(out, "                         made by {}", t(m))?;
            }
        }
        writeln!(out, "  What to do, in order:")?;
        for (i, s) in b.steps.iter().enumerate() {
            writeln!(out, "    {}. {}", i + 1, t(&s.text))?;
        }
    }
    for k in &r.keys {
        writeln!(out)?;
        writeln!(
            out,
            "{}  risk {}{}",
            bold(style, &format!("Key {}", t(&k.name))),
            k.risk.map_or("none".to_string(), |s| sev(style, s)),
            if k.leaked { ", LEAKED" } else { "" }
        )?;
        let mut facts = vec![
            format!(
                "{}, {}",
                k.environment.as_deref().unwrap_or("unknown environment"),
                k.scopes_summary
            ),
            format!(
                "owner {}; created {}; rotated {}",
                k.owner.as_deref().unwrap_or("nobody"),
                k.created
                    .map(|c| format!("{c} ({}d)", k.age_days.unwrap_or(0)))
                    .unwrap_or_else(|| "unknown".into()),
                k.rotated
                    .map(|c| format!("{c} ({}d ago)", k.rotated_days_ago.unwrap_or(0)))
                    .unwrap_or_else(|| "never".into())
            ),
        ];
        if !k.scopes_declared.is_empty() {
            facts.push(format!("declared scopes: {}", k.scopes_declared.join(", ")));
        }
        if let Some(e) = &k.effective {
            facts.push(format!("effective: {e}"));
        }
        facts.push(format!(
            "IP whitelist: {}; last used: {}",
            if k.ip_whitelist.is_empty() {
                "none".into()
            } else {
                k.ip_whitelist.join(", ")
            },
            k.last_used.as_deref().unwrap_or("no evidence")
        ));
        facts.push(format!(
            "verification: {}; fingerprint {}",
            k.verification
                .as_ref()
                .map(|v| format!("{} ({}, {})", v.status, v.observed_at, v.by))
                .unwrap_or_else(|| "not verified".into()),
            k.fingerprint.as_deref().unwrap_or("unknown")
        ));
        for f in facts {
            writeln!(out, "  {}", t(&f))?;
        }
        if let Some(u) = &k.usage {
            let days: Vec<u64> = u
                .hours
                .chunks(24)
                .map(|c| c.iter().map(|h| h.calls).sum())
                .collect();
            writeln!(
                out,
                "  usage ({}, per day from {}): |{}| {} calls, {} writes, {} refused{}",
                u.source,
                u.hours.first().map(|h| h.at.as_str()).unwrap_or("-"),
                sparkline(&days),
                u.calls,
                u.writes,
                u.errors,
                if u.anomalies.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} {} marked",
                        u.anomalies.len(),
                        if u.anomalies.len() == 1 {
                            "anomaly"
                        } else {
                            "anomalies"
                        }
                    )
                }
            )?;
        }
        for f in &k.findings {
            writeln!(
                out,
                "  {}  {:<8} {:<12} {}  {}",
                f.id,
                sev(style, f.severity),
                f.status.as_str(),
                t(&f.rule),
                t(&f.message)
            )?;
            if let Some(rep) = &f.replacement {
                if !rep.scopes.is_empty() {
                    writeln!(
                        out,
                        "      replacement {}: {}",
                        t(&rep.name),
                        t(&rep.scopes.join(", "))
                    )?;
                }
            }
        }
    }
    if !r.leaks.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", bold(style, "Leaks by repository"))?;
        for repo in &r.leaks {
            writeln!(out, "  {} ({})", t(&repo.repository), repo.scanned)?;
            for l in &repo.leaks {
                writeln!(
                    out,
                    "    {}{}  {}  {}  {}  {}",
                    t(&l.path),
                    l.line.map(|n| format!(":{n}")).unwrap_or_default(),
                    l.key
                        .as_deref()
                        .map(t)
                        .unwrap_or("not in the inventory".into()),
                    l.commit
                        .as_ref()
                        .map(|c| format!("commit {} {}", super::blast::short_commit(&c.id), c.date))
                        .unwrap_or_else(|| "working tree".into()),
                    l.verification.map_or("not verified", |v| v.as_str()),
                    l.finding
                )?;
            }
        }
    }
    if !r.anomalies.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", bold(style, "Anomalies and money movement"))?;
        for a in &r.anomalies {
            writeln!(
                out,
                "  {}  {:<8} {}  {}: {}",
                a.finding,
                sev(style, a.severity),
                t(&a.rule),
                a.key.as_deref().map(t).unwrap_or("account".into()),
                t(&a.message)
            )?;
        }
    }
    for n in &r.notes {
        writeln!(out, "note: {}", t(n))?;
    }
    Ok(())
}
