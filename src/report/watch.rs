//! The watch's outcome as a report: this poll's findings, and a `watch` section with what each
//! list read (pages, items, new, the window, where it stopped), the findings still open from
//! earlier polls and those resolved.

use super::Report;
use crate::scan::Problem;
use crate::watch::WatchOutcome;

impl From<WatchOutcome> for Report {
    fn from(o: WatchOutcome) -> Report {
        let mut r = Report::new("watch", o.findings.clone());
        let s = &mut r.summary;
        for l in &o.lists {
            let mut line = format!(
                "{}: {} page{}, {} item{}, {} new",
                l.list,
                l.pages,
                if l.pages == 1 { "" } else { "s" },
                l.items,
                if l.items == 1 { "" } else { "s" },
                l.new
            );
            if l.changed > 0 {
                line.push_str(&format!(", {} changed", l.changed));
            }
            if l.first_run {
                line.push_str(" (first run: look-back)");
            }
            if l.resumed {
                line.push_str(" (resumed where the last poll stopped)");
            }
            match (&l.stopped, &l.high_water) {
                (Some(why), _) => line.push_str(&format!("; {why}")),
                (None, Some(h)) => line.push_str(&format!("; read up to {h}")),
                _ => {}
            }
            s.notes.push(line);
        }
        if o.still_open > 0 {
            s.notes.push(format!(
                "{} finding{} of earlier polls still open (awxguard findings list)",
                o.still_open,
                if o.still_open == 1 { "" } else { "s" }
            ));
        }
        for f in &o.resolved {
            s.notes.push(format!(
                "resolved (quiet for the keep-open period): {} {}",
                f.rule, f.id
            ));
        }
        s.notes.extend(o.notes.iter().cloned());
        s.problems.extend(o.problems.iter().map(|p| Problem {
            path: o.scope.clone(),
            error: p.clone(),
        }));
        s.resolved = (!o.resolved.is_empty()).then(|| o.resolved.clone());
        s.watch = Some(o);
        r
    }
}
