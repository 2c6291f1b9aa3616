//! The HTML report in a real headless browser (Debian's `chromium`, one start for this file):
//! the chart's points as the browser parsed them read back to the store's hourly counts, every
//! finding id of the store is on the page, the print is A4 pages with every word inside the
//! page (no clipped table), a screenshot is made, and no key is in the page.

use crate::common::browser;
use crate::common::*;
use crate::report::{admin_key, payvy_key, report, scenario, t};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// The store's calls of `key` per hour, straight from the database.
fn hourly_counts(db: &std::path::Path, key: &str) -> BTreeMap<DateTime<Utc>, u64> {
    let rows = db_strings(
        db,
        &format!(
            "SELECT CAST(e.ts AS TEXT) FROM usage_events e JOIN usage_keys k ON k.id = e.key \
             WHERE k.name = '{key}'"
        ),
    );
    let mut out = BTreeMap::new();
    for ms in rows {
        let ms: i64 = ms.parse().unwrap();
        let ts = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
        let hour = ts
            - Duration::seconds(ts.timestamp() % 3600)
            - Duration::nanoseconds(ts.timestamp_subsec_nanos() as i64);
        *out.entry(hour).or_insert(0) += 1;
    }
    out
}

#[test]
fn the_report_in_chromium_charts_the_store_prints_a4_and_makes_a_screenshot() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    if !browser::need("pdfinfo", "poppler-utils") {
        return;
    }
    let d = tempdir();
    let db = scenario(d.path());
    let o = report(d.path(), &["--format", "html", "-o", "report.html"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let html_path = d.path().join("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_no_secret(&html, &payvy_key(), "html report");
    assert_no_secret(&html, &admin_key(), "html report");

    let r = browser::render(chromium, &html_path, d.path(), 1280, 2200);
    // AWXGUARD_KEEP_REPORT=DIR keeps the page, its print and its screenshot for a person.
    if let Some(keep) = std::env::var_os("AWXGUARD_KEEP_REPORT") {
        let keep = std::path::PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for f in [&html_path, &r.pdf, &r.png] {
            std::fs::copy(f, keep.join(f.file_name().unwrap())).unwrap();
        }
    }

    // The chart of payvy-ap, as the browser parsed it, reads back to the store's hourly counts.
    let (attrs, points) =
        browser::chart(&r.dom, "payvy-ap", "calls").expect("payvy-ap's chart in the DOM");
    let plot: Vec<f64> = attrs["data-plot"]
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let (x0, y0, w, h) = (plot[0], plot[1], plot[2], plot[3]);
    let ymax: f64 = attrs["data-ymax"].parse().unwrap();
    let hours: usize = attrs["data-hours"].parse().unwrap();
    let start = t(&attrs["data-start"]);
    assert_eq!(points.len(), hours);
    assert!(hours >= 7 * 24, "a week of hours at least: {hours}");
    let store = hourly_counts(&db, "payvy-ap");
    let mut nonzero = 0;
    for (x, y) in &points {
        let i = ((x - x0) * (hours - 1) as f64 / w).round() as i64;
        let count = (y0 + h - y) * ymax / h;
        assert!(
            (count - count.round()).abs() < 0.05,
            "point {x},{y} is not on a whole count ({count})"
        );
        let hour = start + Duration::hours(i);
        let expected = store.get(&hour).copied().unwrap_or(0);
        assert_eq!(
            count.round() as u64,
            expected,
            "calls in the hour of {hour}"
        );
        nonzero += u64::from(expected > 0);
    }
    assert!(
        nonzero > 50,
        "the chart shows the week's traffic ({nonzero} busy hours)"
    );
    // Writes and refusals are drawn too; the anomaly of the watch is marked.
    assert!(browser::chart(&r.dom, "payvy-ap", "writes").is_some());
    assert!(browser::chart(&r.dom, "payvy-ap", "errors").is_some());
    assert!(
        r.dom.contains("class=\"anomaly-mark\""),
        "an anomaly marked on the chart"
    );
    assert!(r
        .dom
        .contains("<title id=\"chart1-t\">Hourly calls of payvy-ap</title>"));

    // Every finding of the store is on the page.
    let ids = db_strings(&db, "SELECT id FROM findings");
    assert_eq!(ids.len(), 5);
    for id in &ids {
        assert!(
            r.dom.contains(id.as_str()),
            "finding {id} not in the rendered page"
        );
    }

    // The print: A4 pages, every word inside its page, the ids in the text (not clipped).
    let sizes = browser::page_sizes(&r.pdf);
    assert!(sizes.len() >= 2, "a report of several pages: {sizes:?}");
    for (i, (pw, ph, _)) in sizes.iter().enumerate() {
        assert!(
            browser::is_a4(*pw, *ph),
            "page {} is {pw} x {ph} pts, not A4",
            i + 1
        );
    }
    let words = browser::words(&r.pdf);
    assert!(words.len() > 300, "{} words", words.len());
    for wd in &words {
        assert!(
            wd.x_min >= 0.0 && wd.x_max <= wd.page_width - 20.0 && wd.y_max <= wd.page_height,
            "{:?} is cut off at the page's edge",
            wd
        );
    }
    let text: String = words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for id in &ids {
        assert!(text.contains(id.as_str()), "finding {id} not printed");
    }
    for s in [
        "tr_evil",
        "ben_evil",
        "payvy-ap",
        "legacy-admin",
        "config/airwallex.yml:3",
    ] {
        assert!(text.contains(s), "{s} not printed");
    }
    let pdf_bytes = std::fs::read(&r.pdf).unwrap();
    assert_no_window(&pdf_bytes, &payvy_key(), 24, "the PDF");

    // The screenshot.
    let png = std::fs::read(&r.png).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000);
}
