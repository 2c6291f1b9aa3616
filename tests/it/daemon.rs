//! The daemon (issue 13), driven as a person would: the real binary with second-level schedules
//! on real git repositories, signals sent with `kill`, `/healthz` `/readyz` `/metrics` read over
//! loopback, the store read back, systemd's notify socket bound by the test. Every test stops its
//! daemon; a test that fails kills it.

use crate::common::*;
use crate::git::{env_line, Repo};
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Polls `f` every 50 ms until it is true; panics with `what` and the daemon's log after `secs`.
fn wait_until(d: &Daemon, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}; daemon log:\n{}", d.log());
}

/// A running `awxguard daemon` with its log in a file.
struct Daemon {
    child: Child,
    log: PathBuf,
    url: String,
    db: PathBuf,
}

impl Daemon {
    /// Starts the daemon in `dir` with `awxguard.toml` and waits until it serves.
    fn start(dir: &Path) -> Daemon {
        Daemon::start_with(dir, |_| {})
    }

    fn start_with(dir: &Path, env: impl FnOnce(&mut Command)) -> Daemon {
        let mut d = Daemon::spawn(dir, "daemon.log", env);
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let log = d.log();
            if let Some(i) = log.find("health and metrics on http://") {
                let rest = &log[i + "health and metrics on ".len()..];
                d.url = rest.split_whitespace().next().unwrap().to_string();
                return d;
            }
            if let Some(st) = d.child.try_wait().unwrap() {
                panic!("the daemon exited ({st}):\n{log}");
            }
            assert!(Instant::now() < end, "the daemon does not serve:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn(dir: &Path, log: &str, env: impl FnOnce(&mut Command)) -> Daemon {
        let log = dir.join(log);
        let mut c = awxguard(dir);
        c.env_remove("AWXGUARD_NOW")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .args(["daemon", "--config", "awxguard.toml"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        env(&mut c);
        let child = c.spawn().expect("start the daemon");
        Daemon {
            child,
            log,
            url: String::new(),
            db: db_target(dir),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {sig}");
    }

    /// GET `path`: (status, body).
    fn get(&self, path: &str) -> (u16, String) {
        get(&self.url, path, None)
    }

    fn metrics(&self) -> String {
        self.get("/metrics").1
    }

    /// The value of one sample line of `/metrics` (`name{labels}`), 0 when absent.
    fn sample(&self, series: &str) -> f64 {
        sample(&self.metrics(), series)
    }

    fn runs(&self, job: &str) -> Vec<awxguard::store::JobRun> {
        let s = awxguard::store::open(&self.db).unwrap();
        s.job_runs(Some(job), 1000).unwrap()
    }

    /// Sends SIGTERM and waits for the exit.
    fn stop(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, self.log());
            }
            assert!(
                Instant::now() < end,
                "the daemon did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(base: &str, path: &str, accept: Option<&str>) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// `[daemon]` with a short drain and a loopback port of the system's choosing, then `extra`.
fn config(dir: &Path, extra: &str) {
    write(
        dir,
        "awxguard.toml",
        format!(
            "[daemon]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = \"20s\"\nalert_interval = \
             \"1s\"\n\n{extra}"
        ),
    );
}

fn repo_job(name: &str, path: &Path, schedule: &str) -> String {
    format!(
        "[[daemon.repo]]\nname = \"{name}\"\npath = \"{}\"\nschedule = \"{schedule}\"\n\n",
        path.display()
    )
}

const FILE_ALERTS: &str = "[alerts]\nfrom = \"awxguard <awxguard@example.test>\"\nfallback = \
                           [\"secops@example.test\"]\n\n[alerts.file]\ndir = \"alerts-out\"\n\n";

fn eml_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("alerts-out"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".eml")
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn daemon_check_prints_the_schedule_and_an_empty_daemon_refuses_to_start() {
    let t = tempdir();
    let r = Repo::new();
    config(
        t.path(),
        &format!(
            "timezone = \"Europe/Zurich\"\n[daemon.audit]\nschedule = \"0 7 * * *\"\nverify = \
             false\n\n{}",
            repo_job("app", &r.dir, "*/15 * * * *")
        ),
    );
    let o = run(
        t.path(),
        &["daemon", "--config", "awxguard.toml", "--check"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("schedules in Europe/Zurich"), "{out}");
    assert!(out.contains("audit"), "{out}");
    assert!(out.contains("07:00:00 CE"), "{out}");
    assert!(out.contains("scan:app"), "{out}");
    write(t.path(), "awxguard.toml", "[daemon]\n");
    let o = run(t.path(), &["daemon", "--config", "awxguard.toml"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("nothing to run"), "{}", stderr(&o));
}

#[test]
fn schedules_fire_scans_are_incremental_and_alerts_go_out() {
    let t = tempdir();
    let r = Repo::new();
    let (k1, k2) = (key("daemon-leak-1"), key("daemon-leak-2"));
    r.write(".env", env_line(&k1));
    let first = r.commit("config");
    config(
        t.path(),
        &format!("{}{FILE_ALERTS}", repo_job("app", &r.dir, "* * * * * *")),
    );
    let d = Daemon::start(t.path());
    wait_until(
        &d,
        20,
        "the first (whole history) scan and its alert",
        || d.runs("scan:app").iter().any(|r| r.counts.new == 1) && eml_count(t.path()) == 1,
    );
    let whole = d
        .runs("scan:app")
        .into_iter()
        .find(|r| r.counts.new == 1)
        .unwrap();
    assert!(
        whole.detail.as_deref().unwrap().contains("whole history"),
        "{whole:?}"
    );
    // Later fires find nothing new to scan.
    wait_until(&d, 10, "a scan with nothing new", || {
        d.runs("scan:app").iter().any(|r| {
            r.detail
                .as_deref()
                .is_some_and(|x| x.ends_with("no ref moved"))
        })
    });
    r.write("deploy/prod.env", env_line(&k2));
    let second = r.commit("deploy");
    wait_until(&d, 20, "the new commit scanned and alerted", || {
        d.runs("scan:app")
            .iter()
            .filter(|r| r.counts.new == 1)
            .count()
            == 2
            && eml_count(t.path()) == 2
    });
    let runs = d.runs("scan:app");
    let inc = runs.iter().find(|r| r.counts.new == 1).unwrap();
    assert!(
        inc.detail.as_deref().unwrap().contains("1 new range(s)"),
        "{inc:?}"
    );
    assert_eq!(inc.counts.findings, 1, "only the new blob was scanned");
    // The scan job recorded the range under its own scope.
    let store = awxguard::store::open(&d.db).unwrap();
    let scopes: Vec<String> = store
        .runs(None)
        .unwrap()
        .into_iter()
        .map(|r| r.scope)
        .collect();
    assert!(
        scopes
            .iter()
            .any(|s| s.ends_with(&format!(":{first}..{second}"))),
        "{scopes:?}"
    );
    assert!(d.sample("awxguard_job_runs_total{job=\"scan:app\",outcome=\"ok\"}") >= 3.0);
    assert_eq!(
        d.sample("awxguard_findings{severity=\"high\",status=\"new\"}")
            + d.sample("awxguard_findings{severity=\"critical\",status=\"new\"}"),
        2.0,
        "{}",
        d.metrics()
    );
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
    for text in std::fs::read_dir(t.path().join("alerts-out"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .chain([log])
    {
        assert_no_secret(&text, &k1, "daemon output");
        assert_no_secret(&text, &k2, "daemon output");
    }
}

#[test]
fn a_failing_job_does_not_stop_the_others_and_readiness_names_it() {
    let t = tempdir();
    let r = Repo::new();
    r.write("README", "hello\n");
    r.commit("init");
    std::fs::create_dir_all(t.path().join("not-a-repo")).unwrap();
    // A repository whose remote refuses (a closed loopback port), with a password in its URL.
    let unreachable = Repo::new();
    unreachable.commit("init");
    unreachable.git(&[
        "remote",
        "add",
        "origin",
        "https://bot:fetch-pass-7c1e9a@127.0.0.1:1/app.git",
    ]);
    config(
        t.path(),
        &format!(
            "{}{}{}fetch = true\n\n",
            repo_job("good", &r.dir, "* * * * * *"),
            repo_job("broken", &t.path().join("not-a-repo"), "* * * * * *"),
            repo_job("offline", &unreachable.dir, "* * * * * *"),
        ),
    );
    let d = Daemon::start(t.path());
    wait_until(&d, 20, "two failures and two successes", || {
        let m = d.metrics();
        sample(&m, "awxguard_job_failures_total{job=\"scan:broken\"}") >= 2.0
            && sample(
                &m,
                "awxguard_job_runs_total{job=\"scan:good\",outcome=\"ok\"}",
            ) >= 2.0
    });
    // A run that has started but not ended yet is `running`; every finished one failed.
    let failed: Vec<_> = d
        .runs("scan:broken")
        .into_iter()
        .filter(|r| r.outcome != awxguard::store::JobOutcome::Running)
        .collect();
    assert!(
        failed.len() >= 2
            && failed
                .iter()
                .all(|r| r.outcome == awxguard::store::JobOutcome::Failed),
        "{failed:?}"
    );
    assert!(
        failed[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("is not a git repository"),
        "{failed:?}"
    );
    assert!(d.log().contains("job scan:broken failed"), "{}", d.log());
    wait_until(&d, 20, "the fetch to fail", || {
        d.runs("scan:offline")
            .iter()
            .any(|r| r.outcome == awxguard::store::JobOutcome::Failed)
    });
    // Runs come newest first and a newer run may still be going (no detail yet): take a failed one.
    let offline = d.runs("scan:offline");
    let detail = offline
        .iter()
        .find(|r| r.outcome == awxguard::store::JobOutcome::Failed)
        .and_then(|r| r.detail.clone())
        .unwrap_or_else(|| panic!("a failed run has a detail: {offline:?}"));
    assert!(detail.contains("git fetch in "), "{detail}");
    for text in [&detail, &d.log()] {
        assert!(!text.contains("fetch-pass-7c1e9a"), "{text}");
    }
    assert_eq!(d.get("/healthz").0, 200);
    wait_until(&d, 10, "readiness to name the late job", || {
        let (code, body) = d.get("/readyz");
        code == 503 && body.contains("\"check\":\"job:scan:broken\",\"ok\":false")
    });
    let body = d.get("/readyz").1;
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    let checks = j["checks"].as_array().unwrap();
    let by = |name: &str| checks.iter().find(|c| c["check"] == name).unwrap().clone();
    assert_eq!(by("store")["ok"], true, "{body}");
    assert_eq!(by("job:scan:good")["ok"], true, "{body}");
    assert!(by("job:scan:broken")["detail"]
        .as_str()
        .unwrap()
        .contains("last error: "));
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
}

#[test]
fn metrics_parse_as_prometheus_text_exposition() {
    let t = tempdir();
    let r = Repo::new();
    r.write(".env", env_line(&key("daemon-metrics")));
    r.commit("leak");
    config(
        t.path(),
        &format!("{}{FILE_ALERTS}", repo_job("app", &r.dir, "* * * * * *")),
    );
    let d = Daemon::start(t.path());
    wait_until(&d, 20, "a run and its alert", || {
        d.sample("awxguard_alert_deliveries_total{result=\"sent\"}") >= 1.0
    });
    let (status, text) = d.get("/metrics");
    assert_eq!(status, 200);
    // Every line is a comment or a sample the parser reads.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match prometheus_parse::LineInfo::parse(line) {
            prometheus_parse::LineInfo::Sample { value, .. } => {
                assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}")
            }
            other => panic!("not a sample: {line} ({other:?})"),
        }
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let kind = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .value
            .clone()
    };
    use prometheus_parse::Value;
    for (name, counter) in [
        ("awxguard_job_runs_total", true),
        ("awxguard_job_failures_total", true),
        ("awxguard_job_skipped_total", true),
        ("awxguard_job_last_success_timestamp_seconds", false),
        ("awxguard_findings", false),
        ("awxguard_alert_deliveries_pending", false),
        ("awxguard_alert_deliveries_failing", false),
        ("awxguard_alert_deliveries_dead", false),
        ("awxguard_alerts_waiting", false),
        ("awxguard_alert_deliveries_total", true),
        ("awxguard_proxy_requests_total", true),
        ("awxguard_start_time_seconds", false),
    ] {
        match (kind(name), counter) {
            (Value::Counter(_), true) | (Value::Gauge(_), false) => {}
            (v, _) => panic!("{name}: {v:?}"),
        }
    }
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "awxguard_job_duration_seconds"
                && matches!(s.value, Value::Histogram(_))),
        "{text}"
    );
    assert!(text.contains("# TYPE awxguard_usage_events_ingested_total counter"));
    assert!(matches!(
        kind("awxguard_usage_events_ingested_total"),
        Value::Counter(_)
    ));
    // OpenMetrics for scrapers that ask for it.
    let (_, om) = get(
        &d.url,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0"),
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one_and_says_why() {
    let t = tempdir();
    let r = Repo::new();
    r.write("README", "hello\n");
    r.commit("init");
    let good = |name: &str| {
        config(t.path(), &repo_job(name, &r.dir, "* * * * * *"));
    };
    good("app");
    let d = Daemon::start(t.path());
    wait_until(&d, 20, "a first run", || !d.runs("scan:app").is_empty());
    config(
        t.path(),
        &format!(
            "{}[daemon.audit]\nschedule = \"at seven\"\n",
            repo_job("app", &r.dir, "* * * * * *")
        ),
    );
    d.signal("HUP");
    wait_until(&d, 10, "the refusal", || d.log().contains("is refused"));
    let log = d.log();
    assert!(log.contains("the running config stays in force"), "{log}");
    let line = std::fs::read_to_string(t.path().join("awxguard.toml"))
        .unwrap()
        .lines()
        .position(|l| l.contains("at seven"))
        .unwrap()
        + 1;
    assert!(
        log.contains(&format!(
            "awxguard.toml:{line}: daemon.audit.schedule: \"at seven\" is not a cron schedule"
        )),
        "{log}"
    );
    // The old schedule goes on.
    let before = d.runs("scan:app").len();
    wait_until(&d, 10, "runs after the refusal", || {
        d.runs("scan:app").len() >= before + 2
    });
    assert_eq!(
        d.sample("awxguard_config_reloads_total{result=\"refused\"}"),
        1.0
    );
    // A good config is taken: the job is renamed.
    good("renamed");
    d.signal("HUP");
    wait_until(&d, 10, "the new job to run", || {
        !d.runs("scan:renamed").is_empty()
    });
    assert!(d.log().contains("SIGHUP: reloaded"), "{}", d.log());
    assert!(d.log().contains("job scan:app is no longer scheduled"));
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
}

/// A clone whose `git fetch` takes `secs` seconds (its upload-pack sleeps first).
fn slow_clone(t: &Path, secs: u32) -> PathBuf {
    let origin = Repo::new();
    origin.write("README", "hello\n");
    origin.commit("init");
    let clone = t.join("clone");
    let ok = Command::new("git")
        .args(["clone", "-q"])
        .arg(&origin.dir)
        .arg(&clone)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let ok = Command::new("git")
        .arg("-C")
        .arg(&clone)
        .args([
            "config",
            "remote.origin.uploadpack",
            &format!("sleep {secs}; git-upload-pack"),
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // Keep the origin alive as long as the test: leak its temp dir.
    std::mem::forget(origin);
    clone
}

#[test]
fn sigterm_drains_a_running_job() {
    let t = tempdir();
    let clone = slow_clone(t.path(), 3);
    config(
        t.path(),
        &format!("{}fetch = true\n", repo_job("slow", &clone, "* * * * * *")),
    );
    let d = Daemon::start(t.path());
    wait_until(&d, 20, "the slow job to run", || {
        d.sample("awxguard_job_running{job=\"scan:slow\"}") == 1.0
    });
    // It fires every second but never overlaps itself.
    wait_until(&d, 10, "a fire skipped while it runs", || {
        d.sample("awxguard_job_skipped_total{job=\"scan:slow\"}") >= 1.0
    });
    assert!(
        d.log().contains("job scan:slow: still running since"),
        "{}",
        d.log()
    );
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
    assert!(
        log.contains("stopping (SIGTERM): no new runs; 1 running job(s) (scan:slow)"),
        "{log}"
    );
    assert!(log.contains("job scan:slow ok in"), "{log}");
    let s = awxguard::store::open(&db_target(t.path())).unwrap();
    let runs = s.job_runs(Some("scan:slow"), 10).unwrap();
    assert_eq!(runs.len(), 1, "nothing started after the stop: {runs:?}");
    assert_eq!(runs[0].outcome, awxguard::store::JobOutcome::Ok, "{runs:?}");
    // The lock is free again.
    assert!(s.daemon_lock_holder().unwrap().is_none());
}

#[test]
fn a_job_still_running_at_the_drain_timeout_is_interrupted_and_recorded() {
    let t = tempdir();
    let clone = slow_clone(t.path(), 20);
    config(
        t.path(),
        &format!("{}fetch = true\n", repo_job("slow", &clone, "* * * * * *")),
    );
    let p = t.path().join("awxguard.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("\"20s\"", "\"1s\"")).unwrap();
    let d = Daemon::start(t.path());
    wait_until(&d, 20, "the slow job to run", || {
        d.sample("awxguard_job_running{job=\"scan:slow\"}") == 1.0
    });
    let started = Instant::now();
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
    assert!(started.elapsed() < Duration::from_secs(10), "{log}");
    assert!(log.contains("drain timeout (1 s) ran out"), "{log}");
    let s = awxguard::store::open(&db_target(t.path())).unwrap();
    let runs = s.job_runs(Some("scan:slow"), 10).unwrap();
    assert_eq!(
        runs[0].outcome,
        awxguard::store::JobOutcome::Interrupted,
        "{runs:?}"
    );
}

#[test]
fn a_second_daemon_on_the_same_database_refuses_naming_the_holder() {
    let t = tempdir();
    let r = Repo::new();
    r.commit("init");
    config(t.path(), &repo_job("app", &r.dir, "0 7 * * *"));
    let first = Daemon::start(t.path());
    if on_postgres() {
        // On PostgreSQL daemons share the database and its work (each job run claimed under
        // an advisory lock): a second one starts beside the first (tests/it/pg_fleet.rs).
        let second = Daemon::spawn(t.path(), "second.log", |_| {});
        wait_until(&second, 20, "the second daemon to serve", || {
            second.log().contains("health and metrics on http://")
        });
        let (st, log) = second.stop();
        assert!(st.success(), "{log}");
        let (st, log) = first.stop();
        assert!(st.success(), "{log}");
        return;
    }
    let o = awxguard(t.path())
        .env_remove("AWXGUARD_NOW")
        .args(["daemon", "--config", "awxguard.toml"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "another awxguard daemon is running on this database: pid {} on host ",
            first.pid()
        )),
        "{err}"
    );
    assert!(err.contains(", started 20"), "{err}");
    assert!(err.contains("stop it first"), "{err}");
    let (st, log) = first.stop();
    assert!(st.success(), "{log}");
    // Once it stopped, another may start.
    let again = Daemon::start(t.path());
    let (st, log) = again.stop();
    assert!(st.success(), "{log}");
}

#[test]
fn type_notify_readiness_reload_watchdog_and_stop() {
    let t = tempdir();
    let r = Repo::new();
    r.commit("init");
    config(t.path(), &repo_job("app", &r.dir, "0 7 * * *"));
    let sock_path = t.path().join("notify.sock");
    let sock = Arc::new(UnixDatagram::bind(&sock_path).unwrap());
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let d = Daemon::start_with(t.path(), |c| {
        c.env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "400000");
    });
    let mut seen = Vec::new();
    let mut recv_until = |want: &str| {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {want} in {seen:?}: {e}"));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(msg.clone());
            if msg.lines().any(|l| l == want) {
                return msg;
            }
        }
    };
    let ready = recv_until("READY=1");
    assert!(
        ready.contains("STATUS=1 job(s) in UTC: scan:app"),
        "{ready}"
    );
    recv_until("WATCHDOG=1");
    recv_until("WATCHDOG=1");
    d.signal("HUP");
    let reloading = recv_until("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = recv_until("READY=1");
    assert!(ready.contains("STATUS=reloaded"), "{ready}");
    d.signal("TERM");
    recv_until("STOPPING=1");
    let (st, log) = d.stop_after_signal();
    assert!(st.success(), "{log}");
}

impl Daemon {
    /// Waits for the exit after a stop signal was already sent.
    fn stop_after_signal(mut self) -> (ExitStatus, String) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, self.log());
            }
            assert!(Instant::now() < end, "no exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_proxy_runs_in_the_daemon_and_its_counters_are_metrics() {
    let t = tempdir();
    // The upstream is a closed loopback port: every call is answered 502 by the proxy.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    config(
        t.path(),
        &format!("proxy = true\n\n[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n"),
    );
    let d = Daemon::start(t.path());
    let mut proxy = String::new();
    wait_until(&d, 20, "the proxy to listen", || {
        let log = d.log();
        match log.find("proxy listening on ") {
            Some(i) => {
                proxy = log[i + "proxy listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
                true
            }
            None => false,
        }
    });
    let (code, _) = get(&proxy, "/api/v1/balances/current", None);
    assert_eq!(code, 502);
    wait_until(&d, 10, "the proxy's request in /metrics", || {
        d.sample("awxguard_proxy_requests_total") >= 1.0
    });
    assert_eq!(d.sample("awxguard_proxy_upstream_errors_total"), 1.0);
    let (code, body) = d.get("/readyz");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"check\":\"proxy\",\"ok\":true"), "{body}");
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
}

#[test]
fn the_audit_and_the_watch_run_on_their_schedules_against_the_simulator() {
    use awxguard::airwallex::simulator::{Behaviour, SimState, Simulator};
    let mut state = SimState::default().with_key(
        &client_id("watcher"),
        &key("daemon-watcher"),
        Behaviour::Live,
    );
    state.keys[0].permissions = vec!["r:awx:*:*".into()];
    let sim = Simulator::spawn(state).unwrap();
    let t = tempdir();
    config(
        t.path(),
        &format!(
            "[daemon.audit]\nschedule = \"* * * * * *\"\n\n[daemon.watch]\nschedule = \
             \"* * * * * *\"\n\n[airwallex]\nbase_url = \"{}\"\n\n[watch]\nkey = \"watcher\"\n\n\
             [[key]]\nname = \"watcher\"\nclient_id = \"{}\"\napi_key = \"env:WATCH_KEY\"\n\
             environment = \"production\"\nkind = \"read_only\"\nowner = \"finance\"\n",
            sim.url(),
            client_id("watcher")
        ),
    );
    let d = Daemon::start_with(t.path(), |c| {
        c.env("WATCH_KEY", key("daemon-watcher"));
    });
    wait_until(&d, 30, "an audit and a watch poll", || {
        let m = d.metrics();
        sample(&m, "awxguard_job_runs_total{job=\"audit\",outcome=\"ok\"}") >= 1.0
            && sample(&m, "awxguard_job_runs_total{job=\"watch\",outcome=\"ok\"}") >= 1.0
    });
    let audit = d.runs("audit");
    let ok = audit
        .iter()
        .find(|r| r.outcome == awxguard::store::JobOutcome::Ok)
        .unwrap();
    assert!(
        ok.detail.as_deref().unwrap().starts_with("1 keys, "),
        "{ok:?}"
    );
    let watch = d.runs("watch");
    let ok = watch
        .iter()
        .find(|r| r.outcome == awxguard::store::JobOutcome::Ok)
        .unwrap();
    assert!(
        ok.detail.as_deref().unwrap().starts_with("key watcher: "),
        "{ok:?}"
    );
    assert!(sim.requests().iter().any(|r| r.path.contains("login")));
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
    assert_no_secret(&log, &key("daemon-watcher"), "daemon log");
}

/// One usage event of the contract, filed under `key` (a name or a fingerprint), `mins_ago`
/// minutes before now.
fn usage_event(key: &str, mins_ago: i64, ip: &str) -> String {
    let ts = chrono::Utc::now() - chrono::Duration::minutes(mins_ago);
    serde_json::json!({
        "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "key": key,
        "method": "GET", "path": "/api/v1/balances/current", "status": 200,
        "source_ip": ip, "user_agent": "erp/1.0", "host": "api.airwallex.com",
    })
    .to_string()
        + "\n"
}

fn usage_runs_ok(d: &Daemon) -> Vec<awxguard::store::JobRun> {
    d.runs("usage")
        .into_iter()
        .filter(|r| r.outcome == awxguard::store::JobOutcome::Ok)
        .collect()
}

#[test]
fn the_usage_job_ingests_a_growing_file_and_its_anomaly_is_alerted() {
    let t = tempdir();
    let secret = key("daemon-usage-ap");
    let fp = awxguard::secret::fingerprint(secret.as_bytes());
    let attacker = "203.0.113.66";
    config(
        t.path(),
        &format!(
            "[daemon.usage]\nschedule = \"* * * * * *\"\n\n[usage]\nsources = [\"usage\"]\n\n\
             {FILE_ALERTS}[[key]]\nname = \"ap\"\nclient_id = \"{}\"\napi_key = \"env:AP_KEY\"\n\
             environment = \"production\"\nkind = \"admin\"\nowner = \"finance\"\n\
             ip_whitelist = [\"198.51.100.0/24\"]\n",
            client_id("ap")
        ),
    );
    // The integration's log, filed under the key's fingerprint (never the key itself).
    let first: String = (0..20)
        .map(|i| usage_event(&fp, 120 - i, "198.51.100.7"))
        .collect();
    write(t.path(), "usage/erp.jsonl", &first);
    let check = awxguard(t.path())
        .args(["daemon", "--config", "awxguard.toml", "--check"])
        .output()
        .unwrap();
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    assert!(
        stdout(&check).contains("  usage "),
        "--check lists the usage job: {}",
        stdout(&check)
    );
    let d = Daemon::start_with(t.path(), |c| {
        c.env("AP_KEY", &secret);
    });
    let file = "awxguard_usage_events_ingested_total{source=\"file\"}";
    wait_until(&d, 30, "the first ingest", || d.sample(file) == 20.0);
    assert_eq!(eml_count(t.path()), 0, "nothing abnormal yet");

    // The integration keeps writing while the daemon runs: ten more calls from its network,
    // then one from outside the key's whitelist.
    let path = t.path().join("usage/erp.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    for i in 0..10 {
        f.write_all(usage_event(&fp, 60 - i, "198.51.100.7").as_bytes())
            .unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    // One call from outside the key's whitelist, then the integration's own calls go on: an
    // event is judged once the log is `[usage] lateness` (5 min) past it.
    f.write_all(usage_event(&fp, 30, attacker).as_bytes())
        .unwrap();
    for mins_ago in [10, 0] {
        f.write_all(usage_event(&fp, mins_ago, "198.51.100.7").as_bytes())
            .unwrap();
    }
    drop(f);
    wait_until(&d, 30, "the new lines ingested and alerted", || {
        d.sample(file) == 33.0 && eml_count(t.path()) >= 1
    });
    // Every line once: the runs' events add up to the lines written, later runs resumed where
    // the last one stopped.
    let runs = usage_runs_ok(&d);
    assert_eq!(
        runs.iter().map(|r| r.counts.items).sum::<u64>(),
        33,
        "{runs:?}"
    );
    assert!(
        runs.iter().any(|r| r
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("resumed at byte")),
        "{runs:?}"
    );
    let found = runs
        .iter()
        .find(|r| r.counts.new >= 1)
        .expect("a run with a new finding");
    assert!(
        found.detail.as_deref().unwrap().contains("1 new"),
        "{found:?}"
    );
    // The anomaly went through the one store and lifecycle, under the key's name.
    let listed = awxguard(t.path())
        .args(["--format", "json", "findings", "list"])
        .output()
        .unwrap();
    let all = json(&listed);
    let f = all["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "usage.outside-whitelist")
        .unwrap_or_else(|| panic!("no usage.outside-whitelist in {all:#}"));
    assert_eq!(f["key"], "ap", "{f:#}");
    // Its alert: an email (file sink) naming the key and the address, the key's secret nowhere.
    let alerts: Vec<PathBuf> = std::fs::read_dir(t.path().join("alerts-out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let eml = alerts
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "eml"))
        .unwrap();
    let text = std::fs::read_to_string(eml).unwrap();
    assert!(
        text.contains(
            "Subject: [HIGH] awxguard: Key used from an address outside its IP whitelist"
        ),
        "{text}"
    );
    // the sink's JSON twin says the same without quoted-printable line breaks
    let doc = std::fs::read_to_string(eml.with_extension("json")).unwrap();
    assert!(doc.contains("usage.outside-whitelist"), "{doc}");
    assert!(doc.contains(attacker), "{doc}");
    assert!(d.sample("awxguard_job_failures_total{job=\"usage\"}") == 0.0);
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
    let mut files = alerts.clone();
    files.push(t.path().join("daemon.log"));
    assert_nowhere(&secret, t.path(), &[("findings list", &listed)], &files);
}
