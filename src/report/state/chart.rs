//! A key's hourly usage as an inline SVG chart: calls (solid line), writes (dashed), refused
//! calls (dotted), the learned baseline band (shaded) and the anomalies (hatched windows with a
//! numbered marker). Geometry only: the template draws it. The plot's scale is written on the
//! `<svg>` (`data-plot`, `data-ymax`, `data-start`, `data-hours`) so a reader, or a test, can
//! read the counts back from the points.

use super::UsageChart;
use chrono::{DateTime, Utc};

/// Everything the template needs to draw one chart.
#[derive(Debug, Clone)]
pub struct ChartView {
    /// Unique within the page (ids of `<title>` and `<desc>`).
    pub id: String,
    pub key: String,
    pub width: f64,
    pub height: f64,
    pub x0: f64,
    pub y0: f64,
    pub w: f64,
    pub h: f64,
    pub ymax: u64,
    pub start: String,
    pub hours: usize,
    pub calls: String,
    pub writes: String,
    pub errors: String,
    /// The baseline band as a polygon, when the evidence has one.
    pub band: Option<String>,
    pub marks: Vec<Mark>,
    pub yticks: Vec<Tick>,
    pub xticks: Vec<Tick>,
    pub title: String,
    pub desc: String,
}

/// An anomaly window on the chart.
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub width: f64,
    pub label: String,
    pub title: String,
    pub finding: String,
}

/// An axis label.
#[derive(Debug, Clone)]
pub struct Tick {
    pub pos: f64,
    pub label: String,
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (at least 1).
pub fn nice_ceiling(v: f64) -> u64 {
    if v <= 1.0 {
        return 1;
    }
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if (m * p) as f64 >= v {
                return m * p;
            }
        }
        p *= 10;
    }
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

/// Two decimals, no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

impl ChartView {
    /// The x of hour `i`.
    fn x(&self, i: usize) -> f64 {
        self.x0 + self.w * i as f64 / (self.hours.max(2) - 1) as f64
    }

    /// The y of `count`.
    fn y(&self, count: f64) -> f64 {
        self.y0 + self.h - self.h * count / self.ymax as f64
    }

    fn line(&self, values: impl Iterator<Item = f64>) -> String {
        values
            .enumerate()
            .map(|(i, v)| format!("{},{}", num(self.x(i)), num(self.y(v))))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The chart of `key`'s usage; `n` makes its ids unique in the page.
    pub fn new(n: usize, key: &str, u: &UsageChart) -> ChartView {
        let hours = u.hours.len();
        let top = u
            .hours
            .iter()
            .map(|h| (h.calls as f64).max(h.band.map_or(0.0, |b| b.1)))
            .fold(0.0, f64::max);
        let mut c = ChartView {
            id: format!("chart{n}"),
            key: key.to_string(),
            width: 720.0,
            height: 210.0,
            x0: 48.0,
            y0: 12.0,
            w: 660.0,
            h: 150.0,
            ymax: nice_ceiling(top),
            start: u.hours.first().map(|h| h.at.clone()).unwrap_or_default(),
            hours,
            calls: String::new(),
            writes: String::new(),
            errors: String::new(),
            band: None,
            marks: Vec::new(),
            yticks: Vec::new(),
            xticks: Vec::new(),
            title: String::new(),
            desc: String::new(),
        };
        c.calls = c.line(u.hours.iter().map(|h| h.calls as f64));
        c.writes = c.line(u.hours.iter().map(|h| h.writes as f64));
        c.errors = c.line(u.hours.iter().map(|h| h.errors as f64));
        // The band over the hours that have one (a key's learned baseline starts with its
        // history): the first unbroken run of them.
        let first = u.hours.iter().position(|h| h.band.is_some());
        if let Some(first) = first {
            let run: Vec<(usize, (f64, f64))> = u.hours[first..]
                .iter()
                .enumerate()
                .map_while(|(i, h)| h.band.map(|b| (first + i, b)))
                .collect();
            let mut pts: Vec<String> = run
                .iter()
                .map(|(i, b)| format!("{},{}", num(c.x(*i)), num(c.y(b.1))))
                .collect();
            pts.extend(
                run.iter()
                    .rev()
                    .map(|(i, b)| format!("{},{}", num(c.x(*i)), num(c.y(b.0)))),
            );
            if run.len() > 1 {
                c.band = Some(pts.join(" "));
            }
        }
        // Axis: 0, half, max; a tick per day at midnight (at most 8 labels).
        for v in [0, c.ymax / 2, c.ymax] {
            c.yticks.push(Tick {
                pos: c.y(v as f64),
                label: v.to_string(),
            });
        }
        c.yticks.dedup_by(|a, b| a.label == b.label);
        let start = parse(&c.start);
        let days = hours.div_ceil(24).max(1);
        let every = days.div_ceil(8).max(1);
        for (i, h) in u.hours.iter().enumerate() {
            if let Some(t) = parse(&h.at) {
                if chrono::Timelike::hour(&t) == 0 && (i / 24) % every == 0 {
                    c.xticks.push(Tick {
                        pos: c.x(i),
                        label: t.format("%b %d").to_string(),
                    });
                }
            }
        }
        // Anomalies: their windows, numbered.
        for (k, a) in u.anomalies.iter().enumerate() {
            let (Some(s), Some(start)) = (parse(&a.start), start) else {
                continue;
            };
            let e = parse(&a.end).unwrap_or(s);
            let from = ((s - start).num_minutes() as f64 / 60.0).max(0.0);
            let to = ((e - start).num_minutes() as f64 / 60.0).min((hours.max(1) - 1) as f64);
            if to < 0.0 || from > (hours.max(1) - 1) as f64 {
                continue;
            }
            let step = c.w / (hours.max(2) - 1) as f64;
            let x = c.x0 + from * step;
            let width = ((to - from) * step).max(4.0);
            c.marks.push(Mark {
                x,
                width,
                label: format!("A{}", k + 1),
                title: format!(
                    "A{}: {} from {} to {} ({})",
                    k + 1,
                    a.rule,
                    a.start,
                    a.end,
                    a.finding
                ),
                finding: a.finding.clone(),
            });
        }
        c.title = format!("Hourly calls of {key}");
        let peak = u
            .peak
            .as_ref()
            .map(|p| format!("; busiest hour {} with {} calls", p.at, p.calls))
            .unwrap_or_default();
        c.desc = format!(
            "{} hours from {} ({}): {} calls, {} writes, {} refused{}{}{}",
            hours,
            c.start,
            u.source,
            u.calls,
            u.writes,
            u.errors,
            peak,
            if c.band.is_some() {
                "; shaded: the learned baseline band"
            } else {
                ""
            },
            if c.marks.is_empty() {
                String::new()
            } else {
                format!(
                    "; anomalies marked: {}",
                    c.marks
                        .iter()
                        .map(|m| m.title.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
        c
    }

    pub fn plot_attr(&self) -> String {
        format!(
            "{} {} {} {}",
            num(self.x0),
            num(self.y0),
            num(self.w),
            num(self.h)
        )
    }

    pub fn bottom(&self) -> f64 {
        self.y0 + self.h
    }

    pub fn right(&self) -> f64 {
        self.x0 + self.w
    }

    pub fn viewbox(&self) -> String {
        format!("0 0 {} {}", num(self.width), num(self.height))
    }
}

#[cfg(test)]
mod tests {
    use super::super::usage::HourPoint;
    use super::*;

    #[test]
    fn points_read_back_to_the_counts() {
        let hours: Vec<HourPoint> = (0..48)
            .map(|i| HourPoint {
                at: format!("2026-11-{:02}T{:02}:00:00Z", 22 + i / 24, i % 24),
                calls: (i * 7 % 23) as u64,
                errors: 0,
                writes: 0,
                band: None,
            })
            .collect();
        let u = UsageChart {
            source: "proxy events".into(),
            hours: hours.clone(),
            anomalies: Vec::new(),
            calls: 0,
            errors: 0,
            writes: 0,
            peak: None,
        };
        let c = ChartView::new(1, "k", &u);
        assert_eq!(c.ymax, 50);
        for (i, p) in c.calls.split(' ').enumerate() {
            let (x, y) = p.split_once(',').unwrap();
            let x: f64 = x.parse().unwrap();
            let y: f64 = y.parse().unwrap();
            let hour = ((x - c.x0) / c.w * 47.0).round() as usize;
            let count = ((c.y0 + c.h - y) * c.ymax as f64 / c.h).round() as u64;
            assert_eq!((hour, count), (i, hours[i].calls));
        }
        assert_eq!(c.xticks.len(), 2);
        assert_eq!(nice_ceiling(0.0), 1);
        assert_eq!(nice_ceiling(101.0), 200);
    }
}
