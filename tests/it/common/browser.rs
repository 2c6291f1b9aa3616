//! A real headless browser (Debian's `chromium`) for the HTML report: one start per page, doing
//! everything at once (the DOM after parsing, a PDF print, a screenshot), and poppler's `pdfinfo`
//! / `pdftotext` to read the PDF back. Outside CI a missing tool skips the test with a loud
//! message; in CI (`CI` set, as `.ci/run` does; it installs both) it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the browser made of a page.
pub struct Rendered {
    /// The DOM after parsing, serialized.
    pub dom: String,
    pub pdf: PathBuf,
    pub png: PathBuf,
}

/// Whether `cmd` is an executable on `PATH`.
fn found(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let p = dir.join(cmd);
            p.is_file()
                && std::fs::metadata(&p).is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                })
        })
    })
}

/// Whether `tool` is here; outside CI a missing one is a loud skip, in CI a failure.
pub fn need(tool: &str, install: &str) -> bool {
    if found(tool) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is required in CI (.ci/run installs {install} with apt)");
    }
    eprintln!(
        "\n*** SKIPPED: {tool} is not installed; `apt-get install {install}` (as .ci/run does) \
         to run the browser tests of the HTML report ***\n"
    );
    false
}

/// The browser's command, if installed (or the test must fail: see `need`).
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| found(c))
        .or_else(|| {
            need("chromium", "chromium");
            None
        })
}

/// Opens `html` in headless Chromium once: the DOM, an A4/Letter print as the page's `@page`
/// says, and a `width`×`height` screenshot, all into `out`.
pub fn render(browser: &str, html: &Path, out: &Path, width: u32, height: u32) -> Rendered {
    let profile = out.join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let pdf = out.join("report.pdf");
    let png = out.join("report.png");
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--no-pdf-header-footer",
            "--run-all-compositor-stages-before-draw",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("--dump-dom")
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(90) {
            child.kill().ok();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = reader.join().unwrap();
    let err = err_reader.join().unwrap();
    assert!(status.success(), "chromium failed: {status}\n{err}");
    assert!(pdf.exists(), "chromium wrote no PDF\n{err}");
    assert!(png.exists(), "chromium wrote no screenshot\n{err}");
    Rendered { dom, pdf, png }
}

/// The pages' sizes in points, from `pdfinfo`.
pub fn page_sizes(pdf: &Path) -> Vec<(f64, f64, String)> {
    let o = Command::new("pdfinfo")
        .args(["-f", "1", "-l", "9999"])
        .arg(pdf)
        .output()
        .expect("run pdfinfo");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let re =
        regex::Regex::new(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts(?: \((\w+)\))?").unwrap();
    re.captures_iter(&text)
        .map(|c| {
            (
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
                c.get(3).map_or(String::new(), |m| m.as_str().to_string()),
            )
        })
        .collect()
}

/// A word of the PDF with its box (points) and page size.
#[derive(Debug, Clone)]
pub struct Word {
    pub text: String,
    pub page: usize,
    pub x_min: f64,
    pub x_max: f64,
    pub y_min: f64,
    pub y_max: f64,
    pub page_width: f64,
    pub page_height: f64,
}

/// Every word of the PDF with its box, from `pdftotext -bbox`.
pub fn words(pdf: &Path) -> Vec<Word> {
    let o = Command::new("pdftotext")
        .arg("-bbox")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("run pdftotext");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let page_re = regex::Regex::new(r#"<page width="([\d.]+)" height="([\d.]+)">"#).unwrap();
    let word_re = regex::Regex::new(
        r#"<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" yMax="([\d.-]+)">([^<]*)</word>"#,
    )
    .unwrap();
    let mut out = Vec::new();
    let (mut page, mut pw, mut ph) = (0, 0.0, 0.0);
    for line in text.lines() {
        if let Some(c) = page_re.captures(line) {
            page += 1;
            pw = c[1].parse().unwrap();
            ph = c[2].parse().unwrap();
        } else if let Some(c) = word_re.captures(line) {
            out.push(Word {
                text: c[5]
                    .replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\""),
                page,
                x_min: c[1].parse().unwrap(),
                y_min: c[2].parse().unwrap(),
                x_max: c[3].parse().unwrap(),
                y_max: c[4].parse().unwrap(),
                page_width: pw,
                page_height: ph,
            });
        }
    }
    out
}

/// Whether a size in points is A4 (595.28 × 841.89), within a point.
pub fn is_a4(w: f64, h: f64) -> bool {
    (w - 595.28).abs() < 1.5 && (h - 841.89).abs() < 1.5
}

/// An element's attributes.
pub type Attrs = std::collections::HashMap<String, String>;

/// The attributes of the `<svg>` whose `data-key` is `key`, and the points of its polyline of
/// `class`, as the browser serialized the DOM.
pub fn chart(dom: &str, key: &str, class: &str) -> Option<(Attrs, Vec<(f64, f64)>)> {
    let svg_re =
        regex::Regex::new(r#"(?s)<svg ([^>]*data-key="([^"]*)"[^>]*)>(.*?)</svg>"#).unwrap();
    let attr_re = regex::Regex::new(r#"([\w-]+)="([^"]*)""#).unwrap();
    for c in svg_re.captures_iter(dom) {
        if &c[2] != key {
            continue;
        }
        let attrs = attr_re
            .captures_iter(&c[1])
            .map(|a| (a[1].to_string(), a[2].to_string()))
            .collect();
        let line_re =
            regex::Regex::new(&format!(r#"<polyline class="{class}" points="([^"]*)""#)).unwrap();
        let points = line_re.captures(&c[3])?[1]
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        return Some((attrs, points));
    }
    None
}
