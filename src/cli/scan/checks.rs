//! The options of what happens to a scan's findings after the scan: `--verify`, `--baseline`,
//! `--write-baseline` (the scan job applies them).

use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args, Default, Clone)]
pub struct CheckArgs {
    /// Log in with each client-ID-plus-key pair found to tell live keys from revoked ones. Sends
    /// the key to the configured Airwallex base URL, else to Airwallex production and then the
    /// sandbox hosts; never elsewhere. A live key becomes critical.
    #[arg(long)]
    pub verify: bool,
    /// Drop findings recorded in this baseline file (matched on rule, fingerprint and path);
    /// entries that match nothing are reported as stale.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Record every finding of this scan in this baseline file (keeping the reasons of entries
    /// carried over from --baseline), print the report, and exit 0.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
}
