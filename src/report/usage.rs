//! The usage jobs' outcomes as reports: `usage ingest` (what each source gave, the open
//! anomalies, which baseline each key is on), `usage stats` (what the store holds per key) and
//! `usage anomalies` (the stored ones).

use super::Report;
use crate::finding::Finding;
use crate::scan::Problem;
use crate::usage::job::{IngestOutcome, IngestSummary, StatsOutcome};
use serde::Serialize;

/// The `usage` section of a report.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum UsageSection {
    Ingest(IngestSummary),
    Stats(StatsOutcome),
}

impl From<IngestOutcome> for Report {
    fn from(o: IngestOutcome) -> Report {
        let mut r = Report::new("usage ingest", o.findings);
        let s = &mut r.summary;
        let u = &o.summary;
        s.notes.push(format!(
            "read {} line{} from {} source{}: {} event{} ({} new, {} already stored), {} rejected",
            u.lines,
            plural(u.lines),
            u.sources.len(),
            plural(u.sources.len() as u64),
            u.events,
            plural(u.events),
            u.new,
            u.duplicates,
            u.rejected
        ));
        if let Some(n) = &u.newest {
            s.notes.push(format!(
                "newest stored event {n}; pruned {} raw event{} and {} hourly rollup{} past \
                 retention",
                u.pruned.raw_events,
                plural(u.pruned.raw_events),
                u.pruned.hours,
                plural(u.pruned.hours)
            ));
        }
        s.notes.extend(o.notes.iter().cloned());
        for f in &o.resolved {
            s.notes.push(format!(
                "resolved ({}): {} {} {}",
                f.resolution.map_or("fixed", |x| x.as_str()),
                f.rule,
                f.key.as_deref().unwrap_or("-"),
                f.id
            ));
        }
        s.problems.extend(o.problems.iter().map(|p| Problem {
            path: p.split(':').next().unwrap_or("").to_string(),
            error: p.clone(),
        }));
        s.resolved = (!o.resolved.is_empty()).then(|| o.resolved.clone());
        s.usage = Some(UsageSection::Ingest(o.summary));
        r
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl From<StatsOutcome> for Report {
    fn from(o: StatsOutcome) -> Report {
        let mut r = Report::new("usage stats", Vec::new());
        let s = &mut r.summary;
        if o.keys.is_empty() {
            s.notes
                .push("the store holds no usage events (awxguard usage ingest FILE)".into());
        }
        for k in &o.keys {
            let mut line = format!(
                "{}: {} to {}, {} event{} ({} raw kept), {} active hour{}; baseline {}",
                k.holdings.key,
                k.first_seen,
                k.last_seen,
                k.holdings.events,
                plural(k.holdings.events),
                k.holdings.raw_events,
                k.holdings.active_hours,
                plural(k.holdings.active_hours),
                k.baseline.baseline
            );
            if let Some(u) = &k.baseline.learning_until {
                line.push_str(&format!(" (learning until {u})"));
            }
            if !k.silent.is_empty() {
                line.push_str(&format!("; silent days {}", k.silent.join(", ")));
            }
            s.notes.push(line);
        }
        if !o.gaps.is_empty() {
            s.notes.push(format!(
                "gaps in the evidence (days without any event of any key): {}",
                o.gaps.join(", ")
            ));
        }
        s.usage = Some(UsageSection::Stats(o));
        r
    }
}

/// The stored usage findings as a report.
pub fn anomalies(findings: Vec<Finding>) -> Report {
    let mut r = Report::new("usage anomalies", findings);
    if r.findings.is_empty() {
        r.summary
            .notes
            .push("no open anomaly recorded (awxguard usage ingest detects and records)".into());
    }
    r
}
