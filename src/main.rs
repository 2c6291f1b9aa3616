//! Thin main: parse, set up logging, run, map the result to an exit code.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the proxy allocates per request on one thread and frees on
/// another (its events cross to the writer thread), where glibc's arenas cost it about a seventh
/// of its CPU (measured with perf under bench/proxy.sh); every other command gains a little too.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = awxguard::cli::Cli::parse();
    // A daemon says what it does (journald, docker logs) unless told to be quiet.
    let daemon = matches!(cli.command, awxguard::cli::Command::Daemon(_)) as u8;
    let level = if cli.global.quiet {
        "error"
    } else {
        match cli.global.verbose + daemon {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AWXGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("awxguard={level}")));
    // Every log line goes through the redaction gate, control characters shown escaped.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || awxguard::redact::Scrubbing::for_terminal(std::io::stderr(), colour))
        .with_ansi(colour)
        .with_target(false)
        .without_time()
        .init();
    match awxguard::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            awxguard::tell!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
