//! The demo's story, told by the library's own jobs on one store, on a story clock that starts
//! half an hour ago and moves as the story does (the simulator shares it, so the objects it
//! creates carry the story's times):
//!
//! 1. a scan of the sample repository's tree and of its whole history, keys verified live
//!    against the local simulator, recorded;
//! 2. the watch's first poll with a read-only key (the usual payee and payments: quiet);
//! 3. the incident: payvy-ap's leaked key, from a network and a client it never used, creates a
//!    beneficiary and pays it four minutes later (real calls to the simulator);
//! 4. five weeks of usage (a weekly batch peak, then the incident) ingested into the usage
//!    evidence store, whose anomaly detection records what it finds;
//! 5. the least-privilege audit (logins, usage, the leaks), recorded;
//! 6. the watch's next poll: the payee created and paid at once;
//! 7. the alerts queued by those recordings, delivered to the file sink;
//! 8. the HTML report.

use super::usage::{self, ATTACKER_AGENT, ATTACKER_IP};
use super::{write_inventory, write_repo, DemoError, DemoKeys, OtherKeys, LEAK_DAYS};
use crate::airwallex::simulator::{Behaviour, SimState, Simulator};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::finding::{Finding, Severity, Status};
use crate::privilege::audit::{self, AuditRequest};
use crate::report::state::{self as state_report, StateRequest};
use crate::scan::git::Selection;
use crate::scan::job::{self as scan_job, Input, ScanRequest};
use crate::store::Store;
use crate::watch::{self, WatchRequest};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What the demo is asked to do.
#[derive(Debug, Clone, Default)]
pub struct DemoRequest {
    /// Write everything here (default: a new directory under the system's temporary directory,
    /// kept so the report can be opened).
    pub dir: Option<PathBuf>,
}

/// One thing the story found, for the summary.
#[derive(Debug, Clone)]
pub struct Found {
    pub step: &'static str,
    pub rule: String,
    pub id: String,
    pub severity: Severity,
    pub message: String,
}

/// What the demo wrote and found.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub dir: PathBuf,
    pub repo: PathBuf,
    pub config: PathBuf,
    pub db: PathBuf,
    pub alerts_dir: PathBuf,
    pub report: PathBuf,
    /// Alert files the file sink wrote (`.json` and `.eml`).
    pub alert_files: Vec<PathBuf>,
    pub usage_events: usize,
    /// The open findings of the store at the end, by step.
    pub found: Vec<Found>,
    pub elapsed: std::time::Duration,
    /// Milliseconds per step.
    pub timings: Vec<(&'static str, u128)>,
    /// Whether the repository got a git history (git installed).
    pub history: bool,
}

impl DemoOutcome {
    /// The guided summary: what was found, where the alerts and the report are.
    pub fn summary(&self) -> Vec<String> {
        let ms = |step: &str| {
            self.timings
                .iter()
                .filter(|(s, _)| *s == step)
                .map(|(_, ms)| ms)
                .sum::<u128>()
        };
        let mut out = vec![format!(
            "awxguard demo: the whole story in {:.1} s, offline on a local Airwallex simulator \
             (every key made up on the spot; none is printed). Open findings by step, the most \
             severe first:",
            self.elapsed.as_secs_f64()
        )];
        let mut steps: Vec<&str> = self.found.iter().map(|f| f.step).collect();
        steps.dedup();
        for step in steps {
            let of: Vec<&Found> = self.found.iter().filter(|f| f.step == step).collect();
            out.push(String::new());
            out.push(format!("{step}: {} finding(s)", of.len()));
            for f in of.iter().take(SHOWN) {
                out.push(format!(
                    "  {:<8} {}  {:<28} {}",
                    f.severity.to_string(),
                    f.id,
                    f.rule,
                    short(&f.message)
                ));
            }
            if of.len() > SHOWN {
                out.push(format!("  ... and {} more in the report", of.len() - SHOWN));
            }
        }
        out.push(String::new());
        out.push(format!(
            "Alerts: {} messages (.eml and .json, one per key and run) in {}",
            self.alert_files
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .count(),
            self.alerts_dir.display()
        ));
        out.push(format!(
            "Report: {} (open it in a browser, or print it)",
            self.report.display()
        ));
        out.push(format!(
            "Data: {} (repository payments-service/, inventory ops/awxguard.toml, {} usage \
             events in ops/usage/, store awxguard-demo.db)",
            self.dir.display(),
            self.usage_events
        ));
        out.push(format!(
            "Time: scans {} ms, anomaly detection {} ms, audit {} ms, watch {} ms, alerts {} ms, \
             report {} ms",
            ms("scan"),
            ms("anomalies"),
            ms("audit"),
            ms("watch"),
            ms("alerts"),
            ms("report")
        ));
        out.push(format!(
            "Again, as text: awxguard --config {} report",
            self.config.display()
        ));
        if !self.history {
            out.push("git is not installed: the history scan was skipped".into());
        }
        out
    }
}

/// Findings shown per step in the summary.
const SHOWN: usize = 4;

/// A finding's message cut to one short line.
fn short(message: &str) -> String {
    let first = message.split("; ").next().unwrap_or(message);
    if first.chars().count() <= 90 {
        return first.to_string();
    }
    let cut: String = first.chars().take(89).collect();
    format!("{cut}…")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError {
    let path = path.to_path_buf();
    move |source| DemoError::Write { path, source }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DemoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DemoError::Panicked(e.to_string()))
}

/// A TOML string (quoted and escaped).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The local Airwallex: which keys log in, what their tokens allow, the usual payee and its
/// payments.
fn simulator(
    keys: &DemoKeys,
    other: &OtherKeys,
    clock: Arc<ManualClock>,
    t0: DateTime<Utc>,
) -> Simulator {
    let mut state = SimState::default()
        .with_key(&keys.client_id, &keys.env_key, Behaviour::Live)
        .with_key(&keys.client_id, &keys.script_key, Behaviour::Revoked)
        .with_key(&keys.client_id, &keys.history_key, Behaviour::Live)
        .with_key(&keys.client_id, &keys.branch_key, Behaviour::Revoked)
        .with_key(&other.cids[0], &other.reporting, Behaviour::Live)
        .with_key(&other.cids[1], &other.legacy, Behaviour::Live)
        .with_key(&other.cids[2], &other.sandbox, Behaviour::Live)
        .with_key(&other.cids[3], &other.watcher, Behaviour::Live);
    // payvy-ap's token lists its scopes; reporting is declared read-only but its token shows
    // full access (the simulator's default): an admin in disguise. The watch's key reads only.
    state.keys[0].permissions = ["transfer:write", "beneficiary:write", "balance:read"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let n = state.keys.len();
    state.keys[n - 1].permissions = vec!["r:awx:*:*".into()];
    let sim = Simulator::with_clock(state, clock);
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let payee = json!({
        "id": "ben_acme_supplies", "created_at": at(t0 - Duration::days(200)),
        "beneficiary": {"entity_type": "COMPANY", "company_name": "Acme Supplies Ltd",
            "bank_details": {"account_number": "41180022", "bank_country_code": "GB",
                "account_currency": "GBP"}}
    });
    let _ = sim.add_activity("beneficiaries", vec![payee]);
    let payments: Vec<Value> = (10..=14)
        .map(|d| {
            json!({"id": format!("tr_acme_{d}"), "beneficiary_id": "ben_acme_supplies",
                "transfer_amount": 1000.0 + 125.0 * d as f64, "transfer_currency": "GBP",
                "created_at": at(t0 - Duration::days(d) - Duration::hours(3)), "status": "PAID"})
        })
        .collect();
    let _ = sim.add_activity("transfers", payments);
    sim
}

/// The incident, as real calls to the simulator with payvy-ap's leaked key: log in, create a
/// payee, pay it four minutes later. Returns the payee's and the payment's ids.
async fn incident(
    url: &str,
    keys: &DemoKeys,
    clock: &ManualClock,
) -> Result<(String, String), DemoError> {
    let fail = |what: &str, e: String| DemoError::Panicked(format!("the incident's {what}: {e}"));
    let http = reqwest::Client::builder()
        .user_agent(ATTACKER_AGENT)
        .build()
        .map_err(|e| fail("client", e.to_string()))?;
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut r = http.post(format!("{url}{path}")).json(&body);
        r = match token {
            Some(t) => r.bearer_auth(t),
            None => r
                .header("x-client-id", &keys.client_id)
                .header("x-api-key", &keys.env_key),
        };
        async move {
            let r = r.send().await.map_err(|e| e.to_string())?;
            let status = r.status();
            let v: Value = r.json().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{status}"));
            }
            Ok::<Value, String>(v)
        }
    };
    let login = post("/api/v1/authentication/login", None, json!({}))
        .await
        .map_err(|e| fail("login", e))?;
    let token = login["token"].as_str().unwrap_or_default().to_string();
    crate::redact::hold(&token);
    let ben = post(
        "/api/v1/beneficiaries/create",
        Some(&token),
        json!({"beneficiary": {"entity_type": "COMPANY", "company_name": "Quick Trading UAB",
            "bank_details": {"account_number": "LT601010012345678901", "bank_country_code": "LT",
                "account_currency": "EUR"}}}),
    )
    .await
    .map_err(|e| fail("payee", e))?;
    let ben_id = ben["id"].as_str().unwrap_or_default().to_string();
    clock.advance(Duration::minutes(4));
    let tr = post(
        "/api/v1/transfers/create",
        Some(&token),
        json!({"beneficiary_id": ben_id, "transfer_amount": 9500, "transfer_currency": "EUR",
            "reference": "INV 2291"}),
    )
    .await
    .map_err(|e| fail("payment", e))?;
    Ok((ben_id, tr["id"].as_str().unwrap_or_default().to_string()))
}

/// The demo's directory: the one asked for, or a new one under the temporary directory.
fn directory(req: &DemoRequest) -> Result<PathBuf, DemoError> {
    let dir = match &req.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "awxguard-demo-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        )),
    };
    crate::files::create_private_dir_all(&dir).map_err(|e| DemoError::Write {
        path: dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(dir)
}

/// Tells the story; the simulator serves on the caller's runtime until the demo is done.
pub async fn run(req: DemoRequest, clock: &dyn Clock) -> Result<DemoOutcome, DemoError> {
    let started = Instant::now();
    let dir = directory(&req)?;
    let t0 = (clock.now() - Duration::minutes(30))
        .duration_trunc(Duration::minutes(1))
        .unwrap_or_else(|_| clock.now());
    let story = Arc::new(ManualClock::new(t0));
    let keys = DemoKeys::default();
    let other = OtherKeys::default();
    let repo = dir.join("payments-service");
    let ops = dir.join("ops");
    let history = write_repo(&repo, &keys, t0)?;

    let sim = simulator(&keys, &other, story.clone(), t0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Simulator)?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(DemoError::Simulator)?
    );
    let server = tokio::spawn(sim.clone().serve(listener));
    let _stop = AbortOnDrop(server);

    // The inventory and the demo's sections: the simulator, the alerts to files, the watch.
    let db = dir.join("awxguard-demo.db");
    let alerts_dir = dir.join("alerts");
    let sections = format!(
        "[airwallex]\nbase_url = {}\n\n[store]\npath = {}\n\n\
         [alerts]\nmin_severity = \"low\"\nfrom = \"awxguard demo <awxguard@example.com>\"\n\
         fallback = [\"security@example.com\"]\n\n[alerts.file]\ndir = {}\n\n\
         [watch]\nkey = \"treasury-watch\"\n",
        toml_str(&url),
        toml_str(&db.display().to_string()),
        toml_str(&alerts_dir.display().to_string()),
    );
    write_inventory(&ops, &keys, &other, &sections).map_err(io(&ops))?;
    let config_path = ops.join("awxguard.toml");
    let config = Config::load(&config_path, true)
        .map_err(|e| DemoError::step("reading the demo's inventory", e))?;
    let store: Arc<dyn Store> =
        crate::store::open(&db).map_err(|e| DemoError::step("opening the store", e))?;
    crate::alert::install(store.as_ref(), &config);
    let mut found = Vec::new();
    let mut timings = Vec::new();
    let mut lap = Instant::now();
    let mut time = |step: &'static str| {
        timings.push((step, lap.elapsed().as_millis()));
        lap = Instant::now();
    };
    time("setup");

    // 1. The repository: the tree, then the whole history with live verification.
    let mut tree = ScanRequest::new(Input::Paths(vec![repo.clone()]));
    tree.record = true;
    let r = scan_job::run(tree, &config, story.as_ref(), Some(store.clone()))
        .await
        .map_err(|e| DemoError::step("the scan of the working tree", e))?;
    let _ = r;
    if history {
        let mut git = ScanRequest::new(Input::History {
            repo: repo.clone(),
            selection: Selection::All,
        });
        git.verify = true;
        git.record = true;
        scan_job::run(git, &config, story.as_ref(), Some(store.clone()))
            .await
            .map_err(|e| DemoError::step("the scan of the history", e))?;
    }

    time("scan");
    // 2. The watch's first poll: the usual payee and its payments.
    story.advance(Duration::minutes(1));
    watch::run(
        &WatchRequest::default(),
        &config,
        story.as_ref(),
        store.clone(),
    )
    .await
    .map_err(|e| DemoError::step("the watch's first poll", e))?;

    time("watch");
    // 3. The incident.
    story.advance(Duration::minutes(9));
    let incident_at = story.now();
    incident(&url, &keys, &story).await?;

    time("incident");
    // 4. Five weeks of usage and the incident, as Airwallex's log export: `usage ingest` stores
    // them and runs the anomaly detection over everything stored.
    story.advance(Duration::minutes(2));
    let (text, usage_events) = usage::stream(t0, incident_at);
    let usage_dir = ops.join("usage");
    crate::files::create_private_dir_all(&usage_dir)
        .map_err(|e| DemoError::step("writing the usage events", e))?;
    crate::files::write_atomic(&usage_dir.join("events.jsonl"), text.as_bytes(), 0o600)
        .map_err(|e| DemoError::step("writing the usage events", e))?;
    let req = crate::usage::job::IngestRequest {
        inputs: vec![usage_dir.clone()],
        ..Default::default()
    };
    crate::usage::job::ingest(req, &config, story.as_ref(), store.clone())
        .await
        .map_err(|e| DemoError::step("the usage ingest and anomaly detection", e))?;
    time("anomalies");
    // 5. The least-privilege audit: logins, the usage evidence, the leaks.
    story.advance(Duration::minutes(1));
    let req = AuditRequest {
        usage: vec![usage_dir.clone()],
        scan: vec![repo.clone()],
        record: true,
        ..AuditRequest::default()
    };
    audit::run(req, &config, story.as_ref(), Some(store.clone()))
        .await
        .map_err(|e| DemoError::step("the audit", e))?;

    time("audit");
    // 6. The watch's next poll.
    story.advance(Duration::minutes(1));
    watch::run(
        &WatchRequest::default(),
        &config,
        story.as_ref(),
        store.clone(),
    )
    .await
    .map_err(|e| DemoError::step("the watch's poll", e))?;

    time("watch");
    // 7. The alerts those recordings queued.
    story.advance(Duration::minutes(1));
    crate::alert::deliver_due(store.clone(), &config, story.as_ref())
        .await
        .map_err(|e| DemoError::step("delivering the alerts", e))?;

    time("alerts");
    // 8. The report.
    story.advance(Duration::minutes(1));
    let report_path = dir.join("report.html");
    let (s, c, rp, clk) = (
        store.clone(),
        config.clone(),
        report_path.clone(),
        story.clone(),
    );
    let stored = blocking(move || -> Result<Vec<Finding>, DemoError> {
        let report = state_report::run(&StateRequest::default(), &c, clk.as_ref(), s.as_ref())
            .map_err(|e| DemoError::step("the report", e))?;
        state_report::write_file(
            &report,
            crate::report::Format::Html,
            crate::report::Style { color: false },
            state_report::html::Paper::A4,
            &rp,
        )
        .map_err(|e| DemoError::step("writing the report", e))?;
        Ok(report.findings)
    })
    .await??;

    time("report");
    for f in stored {
        if !matches!(f.status, Some(Status::New) | Some(Status::Open)) {
            continue;
        }
        let step = match f.rule.split('.').next().unwrap_or("") {
            "leak" => "Leaks (scan of the tree and the history, keys verified live)",
            "privilege" => "Least privilege (audit)",
            "anomaly" | "usage" => "Usage anomalies (the incident)",
            "watch" => "Money movement (watch)",
            _ => "Other",
        };
        found.push(Found {
            step,
            rule: f.rule.clone(),
            id: f.id.clone(),
            severity: f.severity,
            message: f.message.clone(),
        });
    }
    let order = |s: &str| {
        ["Leaks", "Least", "Usage", "Money", "Other"]
            .iter()
            .position(|p| s.starts_with(p))
            .unwrap_or(9)
    };
    found.sort_by(|a, b| {
        (order(a.step), std::cmp::Reverse(a.severity), &a.rule).cmp(&(
            order(b.step),
            std::cmp::Reverse(b.severity),
            &b.rule,
        ))
    });
    let mut alert_files: Vec<PathBuf> = std::fs::read_dir(&alerts_dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    alert_files.sort();
    let _ = (LEAK_DAYS, ATTACKER_IP);
    Ok(DemoOutcome {
        dir,
        repo,
        config: config_path,
        db,
        alerts_dir,
        report: report_path,
        alert_files,
        usage_events,
        found,
        elapsed: started.elapsed(),
        timings,
        history,
    })
}

/// Stops the simulator when the story ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
