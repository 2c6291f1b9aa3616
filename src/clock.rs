//! Time is injected: windows, baselines, throttles and token expiry read a `Clock`, so tests move
//! a manual clock instead of sleeping.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests and for replaying evidence.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock poisoned") = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().expect("clock poisoned");
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock poisoned")
    }
}

/// The clock a command runs on: `AWXGUARD_NOW` (RFC 3339) pins it, so snapshot tests and the
/// demo produce the same ages and windows on every run; otherwise the wall clock.
/// Built once where the process starts and passed down.
pub fn from_env() -> Arc<dyn Clock> {
    match std::env::var("AWXGUARD_NOW") {
        Ok(v) => match DateTime::parse_from_rfc3339(&v) {
            Ok(t) => Arc::new(ManualClock::new(t.with_timezone(&Utc))),
            Err(_) => {
                tracing::warn!("AWXGUARD_NOW={v:?} is not RFC 3339; using the system clock");
                Arc::new(SystemClock)
            }
        },
        Err(_) => Arc::new(SystemClock),
    }
}
