//! One key's calls in one hour: counts, 5-minute sub-buckets, and the first and last call, write
//! and refusal.

use super::{Access, FINE, SUBS};
use serde::{Deserialize, Serialize};

/// Calls of one key in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBucket {
    pub calls: u32,
    /// Calls per 5-minute sub-bucket.
    pub sub: [u32; SUBS],
    /// Calls to write routes (sensitive ones included).
    pub writes: u32,
    /// Calls to sensitive write routes.
    pub sensitive: u32,
    /// Answers 401 and 403.
    pub denied: u32,
    /// Answers 429.
    pub throttled: u32,
    /// Second of the hour of the first and last call (0..3599).
    pub first: u16,
    pub last: u16,
    /// Of the first and last refused or throttled call.
    pub err_first: u16,
    pub err_last: u16,
    /// Of the first and last write.
    pub write_first: u16,
    pub write_last: u16,
}

impl HourBucket {
    /// Adds `n` calls at second `sec` of the hour.
    pub fn add(&mut self, sec: u16, n: u32, access: Access, status: u16) {
        let first_call = self.calls == 0;
        self.calls += n;
        self.sub[(sec as i64 / FINE) as usize] += n;
        span(&mut self.first, &mut self.last, first_call, sec);
        if access.writes() {
            span(
                &mut self.write_first,
                &mut self.write_last,
                self.writes == 0,
                sec,
            );
            self.writes += n;
            if access == Access::Sensitive {
                self.sensitive += n;
            }
        }
        if matches!(status, 401 | 403 | 429) {
            let empty = self.errors() == 0;
            span(&mut self.err_first, &mut self.err_last, empty, sec);
            if status == 429 {
                self.throttled += n;
            } else {
                self.denied += n;
            }
        }
    }

    /// Refused (401, 403) and throttled (429) calls.
    pub fn errors(&self) -> u32 {
        self.denied + self.throttled
    }

    /// The largest count of a sub-bucket.
    pub fn peak(&self) -> u32 {
        self.sub.iter().copied().max().unwrap_or(0)
    }

    /// Adds another bucket of the same hour.
    pub fn merge(&mut self, o: &HourBucket) {
        if o.calls == 0 {
            return;
        }
        let was_empty = self.calls == 0;
        if was_empty {
            *self = *o;
            return;
        }
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        if o.writes > 0 {
            if self.writes == 0 {
                self.write_first = o.write_first;
                self.write_last = o.write_last;
            } else {
                self.write_first = self.write_first.min(o.write_first);
                self.write_last = self.write_last.max(o.write_last);
            }
        }
        if o.errors() > 0 {
            if self.errors() == 0 {
                self.err_first = o.err_first;
                self.err_last = o.err_last;
            } else {
                self.err_first = self.err_first.min(o.err_first);
                self.err_last = self.err_last.max(o.err_last);
            }
        }
        self.calls += o.calls;
        for (a, b) in self.sub.iter_mut().zip(o.sub) {
            *a += b;
        }
        self.writes += o.writes;
        self.sensitive += o.sensitive;
        self.denied += o.denied;
        self.throttled += o.throttled;
    }
}

pub(super) fn span(first: &mut u16, last: &mut u16, empty: bool, sec: u16) {
    if empty {
        *first = sec;
        *last = sec;
    } else {
        *first = (*first).min(sec);
        *last = (*last).max(sec);
    }
}
