//! One daemon per database: the lock is a row in the store (`daemon_lock`) naming its holder
//! (pid, host, start time) with a heartbeat. A second daemon refuses to start and says who holds
//! it. A holder is judged gone when it ran on this host and its process no longer exists, or when
//! its heartbeat is older than `LEASE` (a crashed daemon on another host, or a stopped one whose
//! pid was reused); then the lock is taken over, with a warning naming the old holder.

use crate::store::outbox::this_host;
use crate::store::{DaemonHolder, LockOutcome, Store, StoreError};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the holder renews its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How old a heartbeat may be before its holder is judged gone.
pub const LEASE: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{db}: another awxguard daemon is running on this database: pid {pid} on host {host}, \
         started {started} (last heartbeat {heartbeat}); stop it first (systemctl stop awxguard, \
         or kill {pid}), or give this daemon another database with --db or [store] path"
    )]
    Held {
        db: PathBuf,
        pid: u32,
        host: String,
        started: String,
        heartbeat: String,
    },
    #[error("{0}: cannot take the daemon lock")]
    Store(PathBuf, #[source] StoreError),
}

/// This process as a lock holder.
pub fn me(started: DateTime<Utc>) -> DaemonHolder {
    DaemonHolder {
        pid: std::process::id(),
        host: this_host(),
        started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: env!("CARGO_PKG_VERSION").into(),
        heartbeat_at: None,
    }
}

/// Whether `h` may still be running.
pub fn alive(h: &DaemonHolder, host: &str, now: DateTime<Utc>) -> bool {
    let fresh = h
        .heartbeat_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| {
            now.signed_duration_since(t.with_timezone(&Utc))
                .to_std()
                .map_or(true, |age| age < LEASE)
        });
    if h.host == host && cfg!(target_os = "linux") {
        // A process on this host: gone when its pid is gone.
        return fresh && Path::new("/proc").join(h.pid.to_string()).exists();
    }
    fresh
}

/// Takes the lock or says who holds it.
pub fn acquire(
    store: &dyn Store,
    db: &Path,
    me: &DaemonHolder,
    now: DateTime<Utc>,
) -> Result<(), LockError> {
    let host = me.host.clone();
    match store
        .take_daemon_lock(me, now, &|h| alive(h, &host, now))
        .map_err(|e| LockError::Store(db.to_path_buf(), e))?
    {
        LockOutcome::Held(h) => Err(LockError::Held {
            db: db.to_path_buf(),
            pid: h.pid,
            host: h.host,
            started: h.started_at,
            heartbeat: h.heartbeat_at.unwrap_or_default(),
        }),
        LockOutcome::Acquired { replaced } => {
            if let Some(h) = replaced {
                tracing::warn!(
                    "took over the daemon lock of {}: pid {} on {} started {} is gone (last \
                     heartbeat {})",
                    db.display(),
                    h.pid,
                    h.host,
                    h.started_at,
                    h.heartbeat_at.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_gone_when_its_process_or_heartbeat_is() {
        let now = Utc::now();
        let mut h = me(now);
        h.heartbeat_at = Some(now.to_rfc3339());
        assert!(alive(&h, &h.host.clone(), now), "this very process");
        h.heartbeat_at = Some((now - chrono::Duration::seconds(600)).to_rfc3339());
        assert!(!alive(&h, &h.host.clone(), now), "stale heartbeat");
        h.heartbeat_at = Some(now.to_rfc3339());
        h.pid = u32::MAX - 7;
        assert!(!alive(&h, &h.host.clone(), now), "no such process here");
        assert!(
            alive(&h, "another-host", now),
            "elsewhere: the heartbeat decides"
        );
    }
}
