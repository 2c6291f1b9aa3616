//! Time is injected: windows, baselines, throttles and token expiry read a `Clock`, so tests move
//! a manual clock instead of sleeping.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// The longest span a window, horizon or expiry can have (about 5,000 years): any time near now
/// plus or minus it is still a date chrono can hold, so arithmetic on it never overflows.
pub const MAX_SPAN_DAYS: i64 = 1_826_250;

/// `n` days, saturated to `MAX_SPAN_DAYS` either way: a rule parameter or option of any size
/// gives a usable window, never a panic.
pub fn days(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n.clamp(-MAX_SPAN_DAYS, MAX_SPAN_DAYS) * 86_400)
}

/// `n` hours, saturated like [`days`].
pub fn hours(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n.clamp(-MAX_SPAN_DAYS * 24, MAX_SPAN_DAYS * 24) * 3_600)
}

/// `n` minutes, saturated like [`days`].
pub fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n.clamp(-MAX_SPAN_DAYS * 1_440, MAX_SPAN_DAYS * 1_440) * 60)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_saturate() {
        let now = Utc::now();
        for d in [
            days(i64::MAX),
            days(i64::MIN),
            hours(i64::MAX),
            minutes(i64::MIN),
        ] {
            let _ = now + d;
            let _ = now - d;
        }
        assert_eq!(days(3), chrono::Duration::days(3));
    }
}
