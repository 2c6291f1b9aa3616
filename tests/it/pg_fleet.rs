//! Several processes on one PostgreSQL database (issue 18): two daemons and three recording
//! proxies, real processes on real sockets, all writing at once. No event lost (every call
//! through any proxy stored once, attributed to its key although the login went through another
//! proxy), no alert sent twice (the outbox's deliveries claimed with SKIP LOCKED; a webhook
//! receiver counts), no job run by both daemons at once or twice for one scheduled second (the
//! per-job advisory lock), no lifecycle regression (a finding never goes back from open to new,
//! its first sighting never moves, its count never falls), and a daemon killed with SIGKILL
//! leaves the other doing every job. Runs when the tests have a server (`AWXGUARD_TEST_PG_URL`;
//! always in CI), once: in the SQLite pass of the suite.

use crate::alerts::servers::Hook;
use crate::common::*;
use crate::git::{env_line, Repo};
use crate::proxy::{setup, Client, Proxy};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, name: &str, db: &Path, env: &[(&str, String)]) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let mut c = awxguard(dir);
        c.env("AWXGUARD_DB", db)
            .env_remove("AWXGUARD_NOW")
            .env_remove("NOTIFY_SOCKET")
            .args(["daemon", "--config", "awxguard.toml"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut d = Daemon {
            child: c.spawn().expect("start a daemon"),
            log,
        };
        let end = Instant::now() + Duration::from_secs(30);
        while !d.log().contains("health and metrics on http://") {
            if let Some(st) = d.child.try_wait().unwrap() {
                panic!("daemon {name} exited ({st}):\n{}", d.log());
            }
            assert!(
                Instant::now() < end,
                "daemon {name} does not serve:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs of `job` this daemon ended well, by its log.
    fn ok_runs(&self, job: &str) -> usize {
        self.log().matches(&format!("job {job} ok in ")).count()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {sig}");
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < end,
                "a daemon did not stop:\n{}",
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

fn pg(url: &Path) -> postgres::Client {
    let cfg: postgres::Config = url.to_str().unwrap().parse().unwrap();
    cfg.connect(postgres::NoTls).unwrap()
}

/// Each finding's (status, first_seen, times_seen).
type Snapshot = BTreeMap<String, (String, String, i64)>;

fn snapshot(c: &mut postgres::Client) -> Snapshot {
    c.query(
        "SELECT id, status, first_seen, times_seen FROM findings",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
    .collect()
}

fn rank(status: &str) -> u8 {
    match status {
        "new" => 0,
        "open" => 1,
        _ => 2,
    }
}

/// Checks that nothing went back between two snapshots.
fn no_regression(before: &Snapshot, after: &Snapshot) {
    for (id, (st, first, seen)) in before {
        let (st2, first2, seen2) = after
            .get(id)
            .unwrap_or_else(|| panic!("finding {id} disappeared"));
        assert_eq!(first, first2, "finding {id}: first sighting moved");
        assert!(
            seen2 >= seen,
            "finding {id}: times seen fell {seen} -> {seen2}"
        );
        if st != "resolved" {
            assert!(
                rank(st2) >= rank(st),
                "finding {id} went back from {st} to {st2}"
            );
        }
    }
}

/// A job run: job, started_at, ended_at, outcome.
type Run = (String, String, Option<String>, String);

/// Every job run, oldest first.
fn runs(c: &mut postgres::Client) -> Vec<Run> {
    c.query(
        "SELECT job, started_at, ended_at, outcome FROM daemon_job_runs ORDER BY id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[test]
fn two_daemons_and_three_proxies_share_one_postgresql_database() {
    if on_postgres() {
        return; // run once, in the SQLite pass (it makes its own PostgreSQL database)
    }
    let dir = tempdir();
    let d = dir.path();
    let Some(db) = pg_database(d) else {
        return;
    };
    let (sim, mut env) = setup(d);
    env.push(("AWXGUARD_DB", db.display().to_string()));
    let repo = Repo::new();
    repo.write("deploy/a.env", env_line(&key("fleet-leak-a")));
    repo.write("deploy/b.env", env_line(&key("fleet-leak-b")));
    repo.commit("add deploy settings");
    let hook = Hook::start(vec![]);
    let mut config = std::fs::read_to_string(d.join("awxguard.toml")).unwrap();
    config.push_str(&format!(
        "\n[daemon]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = \"20s\"\nalert_interval = \"1s\"\n\n\
         [daemon.audit]\nschedule = \"* * * * * *\"\nverify = false\n\n\
         [[daemon.repo]]\nname = \"app\"\npath = \"{}\"\nschedule = \"* * * * * *\"\n\n\
         [alerts]\nfrom = \"awxguard <awxguard@example.test>\"\nfallback = \
         [\"secops@example.test\"]\n\n[alerts.webhook]\nurl = \"{}\"\ntimeout = \"5s\"\n",
        repo.dir.display(),
        hook.url
    ));
    write(d, "awxguard.toml", config);
    let o = awxguard(d)
        .env("AWXGUARD_DB", &db)
        .args(["store", "migrate"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let mut a = Daemon::start(d, "daemon-a", &db, &env);
    let mut b = Daemon::start(d, "daemon-b", &db, &env);
    let proxies: Vec<Proxy> = (0..3)
        .map(|i| {
            let spill = format!("--spill-dir=spill-{i}");
            Proxy::start(d, &sim.url(), &[&spill], &env)
        })
        .collect();
    let urls: Vec<String> = proxies.iter().map(|p| p.url.clone()).collect();
    let mut c = pg(&db);

    // Clients: each logs in through one proxy and calls through the next.
    const CALLS: usize = 40;
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let (login, calls) = (urls[i].clone(), urls[(i + 1) % 3].clone());
            std::thread::spawn(move || {
                let token = Client::new(&login).login("reader");
                let through = Client::new(&calls);
                let mut ok = 0;
                for _ in 0..CALLS {
                    let (st, body) = through.call(&token, "GET", "/api/v1/transfers", None);
                    assert_eq!(st, 200, "{body}");
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    // Meanwhile the lifecycle, watched from outside.
    let mut seen = snapshot(&mut c);
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        let now = snapshot(&mut c);
        no_regression(&seen, &now);
        seen = now;
        std::thread::sleep(Duration::from_millis(100));
    }
    let calls: usize = clients.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(calls, 3 * CALLS);

    // Both daemons work: each job ran (by one daemon or the other) several times.
    let end = Instant::now() + Duration::from_secs(40);
    while a.ok_runs("audit") + b.ok_runs("audit") < 3
        || a.ok_runs("scan:app") + b.ok_runs("scan:app") < 3
    {
        assert!(
            Instant::now() < end,
            "jobs do not run:\n{}\n{}",
            a.log(),
            b.log()
        );
        let now = snapshot(&mut c);
        no_regression(&seen, &now);
        seen = now;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        a.log()
            .contains("run by another daemon sharing this database")
            || b.log()
                .contains("run by another daemon sharing this database"),
        "the daemons shared the schedule:\n{}\n{}",
        a.log(),
        b.log()
    );

    // Daemon A dies without a word; B carries on with every job.
    a.signal("KILL");
    a.wait_exit();
    let (audit_b, scan_b) = (b.ok_runs("audit"), b.ok_runs("scan:app"));
    let end = Instant::now() + Duration::from_secs(40);
    while b.ok_runs("audit") < audit_b + 2 || b.ok_runs("scan:app") < scan_b + 2 {
        assert!(Instant::now() < end, "B does not take over:\n{}", b.log());
        let now = snapshot(&mut c);
        no_regression(&seen, &now);
        seen = now;
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every alert delivered once: one webhook request per message, none twice.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let pending: i64 = c
            .query_one(
                "SELECT count(*) FROM alert_deliveries WHERE state <> 'sent'",
                &[],
            )
            .unwrap()
            .get(0);
        let waiting: i64 = c
            .query_one(
                "SELECT count(*) FROM alert_queue WHERE message_id IS NULL AND kind = 'immediate'",
                &[],
            )
            .unwrap()
            .get(0);
        if pending == 0 && waiting == 0 {
            break;
        }
        assert!(Instant::now() < end, "alerts not delivered:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    b.signal("TERM");
    assert!(b.wait_exit().success(), "{}", b.log());
    let messages: i64 = c
        .query_one("SELECT count(*) FROM alert_messages", &[])
        .unwrap()
        .get(0);
    let got: Vec<String> = hook
        .received()
        .iter()
        .map(|r| r.json()["message_id"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = got.iter().collect();
    assert!(
        messages >= 2,
        "the leaks and the audit alerted ({messages} messages)"
    );
    assert_eq!(unique.len(), got.len(), "an alert was sent twice: {got:?}");
    assert_eq!(got.len() as i64, messages, "every message sent once");

    // One run at a time per job, one run per scheduled second, across both daemons.
    let runs = runs(&mut c);
    let mut by_job: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for r in &runs {
        by_job.entry(&r.0).or_default().push(r);
    }
    for (job, rs) in &by_job {
        let starts: BTreeSet<&str> = rs.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(
            starts.len(),
            rs.len(),
            "{job}: two runs for one second: {rs:#?}"
        );
        for w in rs.windows(2) {
            if let Some(end) = &w[0].2 {
                assert!(
                    w[1].1 >= *end,
                    "{job}: a run started before the one before ended: {w:#?}"
                );
            }
        }
    }

    // Every call through every proxy stored once, attributed to the key that logged in.
    let logs: Vec<String> = proxies.into_iter().map(|p| p.stop()).collect();
    let events: Vec<(String, String)> = c
        .query(
            "SELECT r.route, k.name FROM usage_events e JOIN usage_keys k ON k.id = e.key \
             JOIN usage_routes r ON r.id = e.route",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let transfers: Vec<&(String, String)> = events
        .iter()
        .filter(|(route, _)| route == "GET /api/v1/transfers")
        .collect();
    assert_eq!(transfers.len(), 3 * CALLS, "{events:?}\n{logs:#?}");
    assert!(
        transfers.iter().all(|(_, k)| k == "reader"),
        "a call through a proxy that did not see the login is still the reader's: {transfers:?}"
    );
    assert_eq!(
        events.len(),
        3 * CALLS + 3,
        "the calls and the three logins, each once: {events:?}"
    );
    // No key, token or password in the database.
    let contents = String::from_utf8_lossy(&db_contents_of(&db)).into_owned();
    for k in ["reader", "payvy", "payer", "fleet-leak-a", "fleet-leak-b"] {
        assert_no_secret(&contents, &key(k), "the database");
    }
}

fn db_contents_of(db: &Path) -> Vec<u8> {
    let mut c = pg(db);
    let mut out = Vec::new();
    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in tables {
        for r in c.query(&format!("SELECT t::text FROM {t} t"), &[]).unwrap() {
            out.extend(r.get::<_, String>(0).into_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// The PostgreSQL store is synchronous; called from inside a tokio runtime (a daemon's job, the
/// proxy's writer) it must not panic: its calls are kept off the runtime's threads.
#[test]
fn the_store_called_from_inside_a_runtime_does_not_panic() {
    let Some(url) = awxguard::store::postgres::test_database("runtime") else {
        return;
    };
    let s = awxguard::store::postgres::PgStore::open(&url, false, true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = rt.block_on(async { s.schema_version() }).unwrap();
    assert_eq!(v, awxguard::store::SCHEMA_VERSION);
}
