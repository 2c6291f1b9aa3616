//! One line of the usage-event contract: parsed into a borrowed event, checked (the contract's
//! rules, with the reader's messages), normalized; and the checks on values that must never be
//! a key.

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;

/// A string that borrows from the line when it can (no escapes) and owns otherwise.
#[derive(Debug)]
pub(super) struct Str<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl Str<'_> {
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of the contract, borrowed from the line. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub(super) struct RawEvent<'a> {
    #[serde(borrow)]
    pub(super) ts: Str<'a>,
    #[serde(borrow)]
    pub(super) key: Str<'a>,
    #[serde(borrow)]
    pub(super) method: Str<'a>,
    #[serde(borrow)]
    pub(super) path: Str<'a>,
    pub(super) status: u16,
    #[serde(default, borrow)]
    pub(super) source_ip: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) user_agent: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) account_id: Option<Str<'a>>,
    #[serde(default)]
    pub(super) latency_ms: Option<f64>,
    #[serde(default, borrow)]
    pub(super) host: Option<Str<'a>>,
    /// `proxy` when awxguard's proxy recorded it (its `source_ip` is then internal).
    #[serde(default, borrow)]
    pub(super) via: Option<Str<'a>>,
    #[serde(default)]
    pub(super) object_ids: Option<Vec<String>>,
}

/// Whether `s` is shaped like a raw Airwallex API key (96 hex digits).
pub fn looks_like_raw_key(s: &str) -> bool {
    s.len() == 96 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The longest run of hex digits in `s` (a key name or fingerprint has none of 32 or more: such
/// a run is a key, or a cut piece of one).
fn longest_hex_run(s: &str) -> usize {
    s.as_bytes()
        .split(|b| !b.is_ascii_hexdigit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

/// A message about a line, through the redaction gate (and runs of 32 or more hex digits, which
/// a usage file has no business holding, shown as `<redacted>` as before), so a rejection never
/// echoes a key.
pub(super) fn redact_hex_runs(msg: &str) -> String {
    let msg = crate::redact::scrub(msg);
    let b = msg.as_bytes();
    let mut out = String::with_capacity(msg.len());
    let mut i = 0;
    while i < b.len() {
        let mut j = i;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        if j - i >= 32 {
            out.push_str("<redacted>");
            i = j;
        } else if j > i {
            out.push_str(&msg[i..j]);
            i = j;
        } else {
            let ch = msg[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Parses the `ts` field: RFC 3339 (fractional seconds, any offset), or Airwallex's own
/// `+0000` form.
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| crate::airwallex::parse_timestamp(s))
        .map(|t| t.with_timezone(&Utc))
}

pub(super) fn opt<'b>(s: &'b Option<Str<'_>>) -> Option<&'b str> {
    s.as_ref().map(|s| s.as_str())
}

pub(super) fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    let b = &b[start..end];
    // a UTF-8 byte order mark at the start of a file
    b.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(b)
}

/// A line that passed the contract's checks: time in UTC, method upper case (in the buffer
/// given), path without query string.
pub(super) struct Checked<'a> {
    pub(super) ts: DateTime<Utc>,
    pub(super) path: &'a str,
}

/// The contract's checks on one parsed line; `method_buf` receives the upper-case method.
pub(super) fn check<'a>(
    ev: &'a RawEvent<'_>,
    method_buf: &mut String,
) -> Result<Checked<'a>, String> {
    let key = ev.key.as_str();
    // A key in any form (whole, `Bearer `-prefixed, split, wrapped, a token): rejected, never
    // echoed.
    if looks_like_raw_key(key) || crate::redact::holds_key(key) || longest_hex_run(key) >= 32 {
        return Err(
            "field `key` holds what looks like an API key or token; usage events must name the \
             key by its inventory name or fingerprint (sha256:...), never carry the key (the \
             value is not shown). Revoke that key if the file was shared"
                .to_string(),
        );
    }
    if key.trim().is_empty() {
        return Err("field `key` is empty".to_string());
    }
    let Some(ts) = parse_ts(ev.ts.as_str()) else {
        return Err(format!(
            "field `ts` {:?} is not an RFC 3339 time (e.g. 2026-11-20T10:15:00Z)",
            redact_hex_runs(ev.ts.as_str())
        ));
    };
    if !(100..=599).contains(&ev.status) {
        return Err(format!(
            "field `status` {} is not an HTTP status",
            ev.status
        ));
    }
    let m = ev.method.as_str().trim();
    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "field `method` {:?} is not an HTTP method",
            redact_hex_runs(m)
        ));
    }
    method_buf.clear();
    method_buf.push_str(m);
    method_buf.make_ascii_uppercase();
    let raw_path = ev.path.as_str();
    let path = raw_path.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(format!(
            "field `path` {:?} is not a request path (it must start with /)",
            redact_hex_runs(path)
        ));
    }
    Ok(Checked { ts, path })
}

pub use crate::store::UsageEvent;

/// Parses and checks one line of the contract, with the reader's messages (without the
/// `file:line: ` prefix).
pub fn parse_line(line: &[u8]) -> Result<UsageEvent, String> {
    let line = trim_ascii(line);
    let ev: RawEvent<'_> = serde_json::from_slice(line).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "not a usage event",
            _ => "not valid JSON",
        };
        redact_hex_runs(&format!("{what}: {e}"))
    })?;
    let mut method = String::new();
    let c = check(&ev, &mut method)?;
    let (ts, path) = (c.ts, c.path.to_string());
    let own = |s: &Option<Str<'_>>| s.as_ref().map(|s| s.as_str().to_string());
    Ok(UsageEvent {
        ts,
        key: ev.key.as_str().to_string(),
        method,
        path,
        status: ev.status,
        source_ip: own(&ev.source_ip),
        user_agent: own(&ev.user_agent),
        account_id: own(&ev.account_id),
        latency_ms: ev.latency_ms,
        host: own(&ev.host),
        via: own(&ev.via),
        object_ids: ev.object_ids.unwrap_or_default(),
    })
}
