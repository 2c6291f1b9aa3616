//! The one redaction gate: every string on its way out of awxguard (a report, a log line, an
//! error message, a database row, an alert, a spill file) passes through [`scrub`], which
//! replaces anything of a key's or token's shape with `[redacted <preview> <fingerprint>]`.
//!
//! What counts as a secret, found by shape or by memory:
//! - a run of more than 40 hex digits (a 40-digit git commit id survives), and hex groups wrapped
//!   or split by whitespace (`3f9a… 7b1c…`, 64 + 32 per line) when one of them is longer than 40
//!   or they have a wrapped block's shape and more than 40 digits together;
//! - the value of an `Authorization: Bearer …` / `Basic …` header, and of `api_key=`, `token:`,
//!   `password=`, `secret:` … when it looks like a credential (16+ characters with a digit, or
//!   24+);
//! - a JWT (`eyJ….eyJ….…`);
//! - any 24-character window (the whole secret when shorter) of a secret awxguard holds: API keys
//!   resolved from the inventory, keys found by a scan, login tokens, SMTP and webhook
//!   credentials are [`hold`]-en when read, with their base64 forms, so a key that is cut,
//!   re-cased or base64-wrapped is still found.
//!
//! Use: `redact::scrub(&text)` on a string you emit; `redact::hold(secret.expose())` where a
//! secret enters memory; `redact::holds_key(value)` to reject an input field that must never
//! carry a key (a usage event's `key`); `redact::terminal(&text)` for values printed to a
//! terminal (control characters and escapes shown, not obeyed); `redact::Scrubbing` wraps a
//! writer (the log writer, report output). The choke points: `report::render`, the log writer
//! and error printing in `main`, the CLI's `say!`/`tell!`, the store's `params!`, the alert
//! renderers and sinks, the proxy's spill file.
//!
//! Rank 0: this module uses nothing of the crate (it computes previews and fingerprints the same
//! way `secret` does; a test checks they agree).

mod held;
mod shape;
mod terminal;
mod writer;

pub use held::{held_count, hold};
#[doc(hidden)]
pub use terminal::emit_line;
pub use terminal::{is_control, terminal, terminal_lines};
pub use writer::Scrubbing;

use held::held_spans;
use sha2::{Digest, Sha256};
use shape::{hex_spans, regex_spans};
use std::borrow::Cow;

/// Hex runs longer than this are secrets (a git commit id is exactly 40).
pub const MAX_HEX_RUN: usize = 40;

/// Matches of a held secret at least this long (or the whole secret) are redacted.
pub const MIN_WINDOW: usize = 24;

/// Secrets shorter than this are not held (too short to find without false alarms).
pub const MIN_HELD: usize = 12;

/// At most this many secrets are held (a scan of a repository full of keys must not turn the
/// gate into a memory sink); past it, the shapes above still catch keys and tokens.
pub const MAX_HELD: usize = 10_000;

/// `sha256:` + the first 16 hex digits of SHA-256 (the same function as `secret::fingerprint`).
fn fingerprint(text: &[u8]) -> String {
    let digest = Sha256::digest(text);
    let mut out = String::with_capacity(23);
    out.push_str("sha256:");
    for b in &digest[..8] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// First and last four characters around an ellipsis (the same as `secret::preview`).
fn preview(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 12 {
        return "…".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// What replaces a secret: its preview and fingerprint.
pub fn placeholder(secret: &str) -> String {
    format!(
        "[redacted {} {}]",
        preview(secret),
        fingerprint(secret.as_bytes())
    )
}

/// A stretch of text to replace, with what replaces it (`None`: the stretch's own placeholder).
#[derive(Debug, Clone)]
struct Span {
    start: usize,
    end: usize,
    label: Option<String>,
}

/// Every stretch of `text` to redact, sorted and merged, each cut to character boundaries.
fn spans(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    hex_spans(text, &mut out);
    regex_spans(text, &mut out);
    held_spans(text, &mut out);
    if out.is_empty() {
        return out;
    }
    out.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut merged: Vec<Span> = Vec::with_capacity(out.len());
    for s in out {
        match merged.last_mut() {
            Some(last) if s.start < last.end => {
                if s.end > last.end {
                    last.end = s.end;
                }
                // A held secret's label names the key better than a shape's own.
                if last.label.is_none() {
                    last.label = s.label;
                }
            }
            _ => merged.push(s),
        }
    }
    for s in &mut merged {
        while !text.is_char_boundary(s.start) {
            s.start -= 1;
        }
        while !text.is_char_boundary(s.end) {
            s.end += 1;
        }
    }
    merged
}

/// The gate: `text` with every secret-shaped stretch replaced by `[redacted <preview>
/// <fingerprint>]`. Borrowed (no copy) when there is nothing to replace.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let spans = spans(text);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in spans {
        if s.start < at {
            continue;
        }
        out.push_str(&text[at..s.start]);
        match s.label {
            Some(l) => out.push_str(&l),
            None => out.push_str(&placeholder(&text[s.start..s.end])),
        }
        at = s.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// `scrub` for an owned string (no copy when clean).
pub fn scrub_string(text: String) -> String {
    match scrub(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => s,
    }
}

/// Scrubs every string (and object key) of a JSON value in place.
pub fn scrub_json(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(c) = scrub(s) {
                *s = c;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(scrub_json),
        Value::Object(o) => {
            let dirty: Vec<String> = o
                .keys()
                .filter(|k| matches!(scrub(k), Cow::Owned(_)))
                .cloned()
                .collect();
            for k in dirty {
                if let Some(val) = o.remove(&k) {
                    o.insert(scrub(&k).into_owned(), val);
                }
            }
            o.values_mut().for_each(scrub_json);
        }
        _ => {}
    }
}

/// Scrubs bytes that are text (lossy for invalid UTF-8 only where a secret was found).
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    match std::str::from_utf8(bytes) {
        Ok(s) => match scrub(s) {
            Cow::Borrowed(_) => Cow::Borrowed(bytes),
            Cow::Owned(o) => Cow::Owned(o.into_bytes()),
        },
        Err(_) => {
            let lossy = String::from_utf8_lossy(bytes);
            match scrub(&lossy) {
                Cow::Borrowed(_) => Cow::Borrowed(bytes),
                Cow::Owned(o) => Cow::Owned(o.into_bytes()),
            }
        }
    }
}

/// Whether `text` has anything the gate would replace.
pub fn is_clean(text: &str) -> bool {
    spans(text).is_empty()
}

/// Whether a value that must name a key (a usage event's `key`: an inventory name or a
/// fingerprint) holds a key or token in any form: as the gate sees it, with a `Bearer`/`Basic`
/// prefix, or once everything but letters and digits is taken out (a key split by spaces,
/// dashes or line breaks).
pub fn holds_key(value: &str) -> bool {
    if !is_clean(value) {
        return true;
    }
    let t = value.trim_start().to_ascii_lowercase();
    if (t.starts_with("bearer") || t.starts_with("basic"))
        && t.split_whitespace().nth(1).is_some_and(|v| v.len() >= 8)
    {
        return true;
    }
    let compact: String = value.chars().filter(char::is_ascii_alphanumeric).collect();
    if compact.len() == value.len() {
        return false;
    }
    let longest_hex = compact
        .as_bytes()
        .split(|b| !b.is_ascii_hexdigit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    longest_hex > MAX_HEX_RUN || !is_clean(&compact)
}

/// `println!` through the gate: the line is scrubbed and its control characters shown escaped.
/// Code that prints for people uses `say!` / `tell!`, never `println!` / `eprintln!` (a test
/// checks `src/`).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::redact::emit_line(false, &format!($($arg)*))
    };
}

/// `eprintln!` through the gate (messages, warnings, errors on standard error).
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::redact::emit_line(true, &format!($($arg)*))
    };
}

#[cfg(test)]
mod tests;
