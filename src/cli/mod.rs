//! The command line: global options, one file per subcommand. Wiring only: each subcommand turns
//! its arguments into a request, runs the library job on the one runtime built here, hands the
//! outcome to `report`, and returns an exit code (0 clean, 1 findings at or above `--fail-on`,
//! 2 the tool failed) or an error that `main` prints and maps to 2.

mod alerts;
mod audit;
mod daemon;
mod demo;
mod findings;
mod hook;
mod inventory;
mod proxy;
mod report;
mod rules;
mod sandbox;
mod scan;
mod store;
mod usage;
mod watch;

use crate::clock::Clock;
use crate::config::Config;
use crate::finding::Severity;
use crate::report::{Format, Report, Style};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Keeps Airwallex API keys safe: finds leaked keys, inventories and audits the configured
/// ones, watches how they are used.
#[derive(Debug, Parser)]
#[command(name = "awxguard", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand shares.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Config file (TOML). Missing is fine when not given explicitly.
    #[arg(long, global = true, value_name = "PATH", env = "AWXGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database: a SQLite file, or a PostgreSQL URL (postgres://…) [default: $XDG_DATA_HOME/awxguard/awxguard.db]
    #[arg(long, global = true, value_name = "PATH", env = "AWXGUARD_DB")]
    pub db: Option<PathBuf>,
    /// Report format.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit 1 when a finding is at or above this severity (info never fails).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "low",
        value_name = "SEVERITY"
    )]
    pub fail_on: Severity,
    /// When to colour human output.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: ColorChoice,
    /// More log output (repeat for more).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (errors only).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan files, directories or standard input (`-`) for leaked Airwallex credentials.
    Scan(scan::ScanArgs),
    /// List the declared Airwallex keys; `verify` logs each in, `discover` finds undeclared ones.
    Inventory(inventory::InventoryArgs),
    /// Least-privilege audit of every key: inventory, login check, discovery, usage evidence,
    /// rules, findings recorded in the database.
    Audit(audit::AuditArgs),
    /// Inspect and test the detection rules.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Run the main job on generated sample data and a local Airwallex simulator: no Airwallex
    /// account, no network.
    Demo(demo::DemoArgs),
    /// Install or remove the git pre-commit hook that runs `awxguard scan --staged`.
    #[command(subcommand)]
    Hook(hook::HookCommand),
    /// Stored findings: list them, acknowledge the ones judged acceptable.
    #[command(subcommand)]
    Findings(findings::FindingsCommand),
    /// Alerts: send a test alert to every configured sink.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Serve the local Airwallex simulator (for tests, demos and trying integrations).
    Sandbox(sandbox::SandboxArgs),
    /// The recording (and, with --enforce, enforcing) proxy in front of Airwallex: point the
    /// integration's Airwallex base URL at it.
    Proxy(proxy::ProxyArgs),
    /// The usage evidence store: ingest usage events (then detect and record anomalies), show
    /// what it holds, list the anomalies.
    #[command(subcommand)]
    Usage(usage::UsageCommand),
    /// The store's current state as a report: keys by risk, what is new and resolved, each key
    /// with its findings and usage chart, leaks by repository, anomalies, and the blast radius
    /// of every leaked key. `--format html -o report.html` writes a printable page.
    Report(report::ReportArgs),
    /// Watch the account's money movement with a read-only key: new payees paid at once,
    /// unusual amounts, destinations and bursts, changed webhooks, a falling balance; who made
    /// each change (a proxied key, or none: from outside).
    Watch(watch::WatchArgs),
    /// Run unattended: the scheduled audit and repository scans of `[daemon]`, alert delivery,
    /// optionally the proxy; health and Prometheus metrics on loopback; SIGHUP reloads the config.
    Daemon(daemon::DaemonArgs),
    /// The database: `store migrate` applies the schema steps it has not had (SQLite or
    /// PostgreSQL), explicitly and idempotently.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

/// Runs the parsed command line and returns the exit code. The process's one tokio runtime is
/// built here, on first use (`Context::block_on`); library network work runs on it, CPU work on
/// its blocking threads.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    // The daemon builds and owns its runtime (it must be able to stop without waiting for a job
    // it interrupted).
    let cli = match cli.command {
        Command::Daemon(args) => return daemon::run(&cli.global, args),
        command => Cli {
            global: cli.global,
            command,
        },
    };
    // Each command reads the config sections it uses: a scan (the pre-commit hook above all)
    // never stops on a problem in the inventory or another section it does not read.
    let sections = match &cli.command {
        Command::Scan(args) => scan::sections(args),
        Command::Hook(_) => crate::config::Sections::Scan {
            airwallex: false,
            store: false,
        },
        _ => crate::config::Sections::All,
    };
    let ctx = Context::new(&cli.global, sections)?;
    let result = match cli.command {
        Command::Scan(args) => scan::run(&ctx, args),
        Command::Inventory(args) => inventory::run(&ctx, args),
        Command::Audit(args) => audit::run(&ctx, args),
        Command::Rules(cmd) => rules::run(&ctx, cmd),
        Command::Demo(args) => demo::run(&ctx, args),
        Command::Hook(cmd) => hook::run(&ctx, cmd),
        Command::Sandbox(args) => sandbox::run(&ctx, args),
        Command::Proxy(args) => proxy::run(&ctx, args),
        Command::Findings(cmd) => findings::run(&ctx, cmd),
        Command::Alerts(cmd) => alerts::run(&ctx, cmd),
        Command::Usage(cmd) => usage::run(&ctx, cmd),
        Command::Watch(args) => watch::run(&ctx, args),
        Command::Report(args) => report::run(&ctx, args),
        Command::Store(cmd) => store::run(&ctx, cmd),
        Command::Daemon(_) => unreachable!("the daemon runs before the runtime is built"),
    };
    // Whatever the run's outcome, what it queued goes out now.
    alerts::after_run(&ctx);
    result
}

/// What every subcommand gets: the global options, the loaded config, the clock (built once from
/// the environment: `AWXGUARD_NOW` pins it) and the runtime.
pub struct Context {
    pub global: GlobalArgs,
    pub config: Config,
    clock: std::sync::Arc<dyn Clock>,
    /// Built on first use: a run with nothing async (a scan without `--verify`, the pre-commit
    /// hook above all) starts no threads for it.
    runtime: std::sync::OnceLock<tokio::runtime::Runtime>,
    /// The store this run opened, with the alert planner installed on it when `[alerts]` is
    /// configured: alerts queued by the run are delivered at its end.
    alerting: std::cell::RefCell<Option<Alerting>>,
    /// Remarks for the report (the database is readable by other users).
    notes: std::cell::RefCell<Vec<String>>,
}

struct Alerting {
    store: std::sync::Arc<dyn crate::store::Store>,
    planner: std::sync::Arc<crate::alert::Planner>,
}

impl Context {
    fn new(global: &GlobalArgs, sections: crate::config::Sections) -> anyhow::Result<Context> {
        let (path, explicit) = match &global.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(crate::config::DEFAULT_PATH), false),
        };
        let config = Config::load_sections(&path, explicit, sections)?;
        Ok(Context {
            global: global.clone(),
            config,
            clock: crate::clock::from_env(),
            runtime: std::sync::OnceLock::new(),
            alerting: std::cell::RefCell::new(None),
            notes: std::cell::RefCell::new(Vec::new()),
        })
    }

    /// The clock every job of this process reads.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Builds the process's runtime with `threads` worker threads before its first use: 1 is a
    /// single-threaded runtime (every task on the calling thread, blocking work still on its
    /// blocking pool). Without this call, `block_on` builds a multi-threaded runtime with one
    /// worker per core. Returns false when the runtime was already built.
    pub fn use_threads(&self, threads: usize) -> bool {
        let mut built = false;
        self.runtime.get_or_init(|| {
            built = true;
            if threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(threads);
                b
            }
            .enable_all()
            .build()
            .expect("the async runtime starts")
        });
        built
    }

    /// Runs a library job (a future) on the process's runtime.
    pub fn block_on<F: std::future::Future>(&self, job: F) -> F::Output {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("the async runtime starts")
            })
            .block_on(job)
    }

    /// Whether human output gets colour: only on a terminal, never with NO_COLOR.
    pub fn style(&self) -> Style {
        let color = match self.global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                self.global.output.is_none()
                    && std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Style { color }
    }

    /// The database: `--db`, `AWXGUARD_DB`, `[store] url` (PostgreSQL, credentials read from
    /// their reference), `[store] path`, or the default under the XDG data directory. A
    /// PostgreSQL database is its `postgres://` URL.
    pub fn db_path(&self) -> anyhow::Result<PathBuf> {
        Ok(self.db_location()?.0)
    }

    /// The database and whether the user chose it (then its directory must exist; the
    /// default location's directory is created, owner-only).
    fn db_location(&self) -> anyhow::Result<(PathBuf, bool)> {
        if let Some(p) = &self.global.db {
            return Ok((p.clone(), true));
        }
        if let Some(url) = self
            .config
            .store
            .resolve_url()
            .map_err(|e| anyhow::anyhow!(e))?
        {
            return Ok((PathBuf::from(url), true));
        }
        Ok(match self.config.store.path.clone() {
            Some(p) => (p, true),
            None => (crate::store::default_path(), false),
        })
    }

    fn open_store_with(
        &self,
        read_only: bool,
        create: bool,
    ) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
        let (path, explicit) = self.db_location()?;
        let opened = crate::store::open_with(
            &path,
            crate::store::OpenOptions {
                read_only,
                create_dir: !explicit,
                create,
            },
        )?;
        for n in &opened.notes {
            tell!("warning: {n}");
        }
        self.notes.borrow_mut().extend(opened.notes);
        Ok(opened.store)
    }

    /// The database for a command that only reads it (`findings list`, `alerts list`): opened
    /// read-only (a read-only file will do), never created or upgraded; a path where there is
    /// no database is refused (a mistyped `--db` must not read as "no findings").
    pub fn open_store_read_only(&self) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
        self.open_store_with(true, false)
    }

    /// The database, read only, when there is one where `--db` / `AWXGUARD_DB` / `[store] path`
    /// / the default says: for a command that can do without it (`inventory`, `audit
    /// --no-store` read the usage evidence it holds).
    pub fn open_store_if_present(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn crate::store::Store>>> {
        let (path, _) = self.db_location()?;
        // a server database (postgres://...) is always there to ask; a file only when it exists
        let server = path.to_str().is_some_and(|p| p.contains("://"));
        if !server && !path.exists() {
            return Ok(None);
        }
        match self.open_store_read_only() {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                let note = format!(
                    "the database {} was not read (usage evidence it may hold is left out): {e:#}",
                    path.display()
                );
                tell!("warning: {note}");
                self.notes.borrow_mut().push(note);
                Ok(None)
            }
        }
    }

    /// The database for a command that changes what was recorded (`findings ack`, `unack`):
    /// never created (there is nothing to change in a new one).
    pub fn open_store_existing(&self) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
        self.open_store_with(false, false)
    }

    /// The database: `--db`, `AWXGUARD_DB`, `[store] path`, or the default under the XDG data
    /// directory.
    pub fn open_store(&self) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
        let store = self.open_store_with(false, true)?;
        // Every run recorded through this store queues its alerts when [alerts] is configured.
        if let Some(planner) = crate::alert::install(store.as_ref(), &self.config) {
            *self.alerting.borrow_mut() = Some(Alerting {
                store: store.clone(),
                planner,
            });
        }
        Ok(store)
    }

    /// Renders a report where the user asked, and returns the exit code its findings call for.
    pub fn emit(&self, report: &Report) -> anyhow::Result<u8> {
        let code = crate::finding::exit_code(&report.findings, self.global.fail_on);
        // What the run has to say about its database joins the report's notes.
        let with_notes;
        let report = if self.notes.borrow().is_empty() {
            report
        } else {
            let mut r = report.clone();
            r.summary.notes.extend(self.notes.borrow().iter().cloned());
            with_notes = r;
            &with_notes
        };
        match &self.global.output {
            Some(path) => {
                // Written beside the target and renamed into place, owner-only when new: a
                // failure leaves the previous report whole.
                let mut f = crate::files::AtomicFile::create(path, 0o600)
                    .context("cannot write the report")?;
                crate::report::render(report, self.global.format, self.style(), &mut f)
                    .map_err(|e| crate::files::FileError::Write {
                        path: path.clone(),
                        existed: path.exists(),
                        source: e,
                    })
                    .context("cannot write the report")?;
                f.commit().context("cannot write the report")?;
            }
            None => {
                let stdout = std::io::stdout();
                let mut lock = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
                match crate::report::render(report, self.global.format, self.style(), &mut lock)
                    .and_then(|_| lock.flush())
                {
                    Ok(()) => {}
                    // A closed pipe (`awxguard scan | head`) is not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(code)
    }
}
