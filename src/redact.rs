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
//! Rank 0: this file uses nothing of the crate (it computes previews and fingerprints the same
//! way `secret` does; a test checks they agree).

use regex::Regex;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::sync::{LazyLock, RwLock};

/// Hex runs longer than this are secrets (a git commit id is exactly 40).
pub const MAX_HEX_RUN: usize = 40;

/// Matches of a held secret at least this long (or the whole secret) are redacted.
pub const MIN_WINDOW: usize = 24;

/// Secrets shorter than this are not held (too short to find without false alarms).
pub const MIN_HELD: usize = 12;

/// At most this many secrets are held (a scan of a repository full of keys must not turn the
/// gate into a memory sink); past it, the shapes above still catch keys and tokens.
pub const MAX_HELD: usize = 10_000;

/// Length of the blocks the held-secret index is built from: any `MIN_WINDOW` window of a
/// secret contains one whole block at a multiple of `BLOCK`.
const BLOCK: usize = MIN_WINDOW / 2;

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

// ---------------------------------------------------------------------------------------------
// Held secrets

struct HeldSecret {
    /// The text to look for, ASCII-lowercased (matching ignores ASCII case).
    text: Vec<u8>,
    /// What a match is replaced with: the original secret's placeholder.
    label: String,
}

#[derive(Default)]
struct Held {
    secrets: Vec<HeldSecret>,
    /// Block hash -> (secret, offset of the block in it).
    index: HashMap<u64, Vec<(u32, u32)>, IdentityBuild>,
    /// One bit per block-hash bucket: most text positions are rejected here.
    bloom: Vec<u64>,
    /// Fingerprints of what is held (so holding twice is free).
    seen: HashSet<String>,
}

const BLOOM_BITS: u32 = 20;

#[derive(Default, Clone, Copy)]
struct IdentityBuild;
struct IdentityHasher(u64);
impl std::hash::BuildHasher for IdentityBuild {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}
impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const P: u64 = 0x100000001b3;

fn block_hash(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |h, &x| {
        h.wrapping_mul(P)
            .wrapping_add(u64::from(x.to_ascii_lowercase()))
    })
}

fn mix(h: u64) -> u64 {
    let h = h ^ (h >> 29);
    h.wrapping_mul(0xbf58476d1ce4e5b9)
}

fn bloom_slot(h: u64) -> (usize, u64) {
    let m = mix(h) >> (64 - BLOOM_BITS);
    ((m >> 6) as usize, 1u64 << (m & 63))
}

static HELD: LazyLock<RwLock<Held>> = LazyLock::new(|| RwLock::new(Held::default()));

impl Held {
    fn add(&mut self, text: &[u8], label: &str) {
        if text.len() < MIN_HELD {
            return;
        }
        if self.bloom.is_empty() {
            self.bloom = vec![0; 1 << (BLOOM_BITS - 6)];
        }
        let id = self.secrets.len() as u32;
        let lower = text.to_ascii_lowercase();
        let mut offsets: Vec<usize> = (0..=lower.len() - BLOCK).step_by(BLOCK).collect();
        if offsets.last() != Some(&(lower.len() - BLOCK)) {
            offsets.push(lower.len() - BLOCK);
        }
        for off in offsets {
            let h = block_hash(&lower[off..off + BLOCK]);
            let (w, bit) = bloom_slot(h);
            self.bloom[w] |= bit;
            self.index.entry(h).or_default().push((id, off as u32));
        }
        self.secrets.push(HeldSecret {
            text: lower,
            label: label.to_string(),
        });
    }
}

/// Remembers a secret awxguard now holds (a resolved API key, a key a scan found, a login
/// token, an SMTP password), so that any 24-character window of it, in any ASCII case or in
/// base64, is redacted wherever it would appear. Values under 12 characters are not held.
pub fn hold(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_HELD {
        return;
    }
    let fp = fingerprint(secret.as_bytes());
    if HELD
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .seen
        .contains(&fp)
    {
        return;
    }
    let label = placeholder(secret);
    let mut held = HELD.write().unwrap_or_else(|e| e.into_inner());
    if held.seen.len() >= MAX_HELD || !held.seen.insert(fp) {
        return;
    }
    held.add(secret.as_bytes(), &label);
    // Its base64 forms, at the three alignments a surrounding text can give it (the characters
    // that depend on the neighbours are left out).
    use base64::Engine as _;
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for lead in 0..3usize {
            let mut bytes = vec![0u8; lead];
            bytes.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&bytes);
            let skip = if lead == 0 {
                0
            } else {
                (lead * 4).div_ceil(3) + 1
            };
            let keep = enc.len().saturating_sub(3);
            if keep > skip {
                // Case matters in base64 but matching ignores it: a 24-character window is
                // still far beyond chance.
                held.add(&enc.as_bytes()[skip..keep], &label);
            }
        }
    }
}

/// How many secrets are held (for tests and `-vv` logs).
pub fn held_count() -> usize {
    HELD.read().unwrap_or_else(|e| e.into_inner()).seen.len()
}

// ---------------------------------------------------------------------------------------------
// Finding secrets in text

/// A stretch of text to replace, with what replaces it (`None`: the stretch's own placeholder).
#[derive(Debug, Clone)]
struct Span {
    start: usize,
    end: usize,
    label: Option<String>,
}

// The patterns are ASCII-case-insensitive (`(?i-u)`, whitespace still Unicode): a fifth of the
// compile time of Unicode case folding, and they are compiled only when a cheap byte check
// (`regex_spans`) says the text could match, so a process that prints only clean lines never
// builds them.
static AUTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i-u)\b(?:bearer|basic)(?u:\s)+([A-Za-z0-9._~+/\-]{12,}=*)").expect("auth regex")
});

static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i-u)\b(?:x-)?(?:api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|token|client[_-]?secret|secret|password|passwd)["']?(?u:\s)*[:=](?u:\s)*["']?([A-Za-z0-9._~+/\-]{16,}=*)"#,
    )
    .expect("key-value regex")
});

static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"eyJ[A-Za-z0-9_\-]{6,}\.eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*").expect("jwt regex")
});

/// Credential-like: long enough, and not a plain word.
fn credential_like(v: &str) -> bool {
    v.len() >= 24 || (v.len() >= 16 && v.bytes().any(|b| b.is_ascii_digit()))
}

/// Bytes between two hex groups that still make them one wrapped value: whitespace, and the
/// escapes a JSON or log rendering shows for it (`\n`, `\r`, `\t`).
fn is_wrap_gap(gap: &[u8]) -> bool {
    if gap.is_empty() || gap.len() > 8 {
        return false;
    }
    let mut i = 0;
    while i < gap.len() {
        match gap[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'\\' if i + 1 < gap.len() && matches!(gap[i + 1], b'n' | b'r' | b't') => i += 2,
            _ => return false,
        }
    }
    true
}

fn hex_spans(text: &str, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    // Maximal hex runs of 8 digits or more.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_hexdigit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i - s >= 8 {
                runs.push((s, i));
            }
        } else {
            i += 1;
        }
    }
    let mut k = 0;
    while k < runs.len() {
        // The chain of runs joined by wrap gaps.
        let mut end = k;
        while end + 1 < runs.len() && is_wrap_gap(&b[runs[end].1..runs[end + 1].0]) {
            end += 1;
        }
        let chain = &runs[k..=end];
        let lens: Vec<usize> = chain.iter().map(|(s, e)| e - s).collect();
        let total: usize = lens.iter().sum();
        let longest = lens.iter().copied().max().unwrap_or(0);
        let block_shaped = lens.len() >= 2
            && lens[0] >= 16
            && lens[..lens.len() - 1].iter().all(|&l| l == lens[0])
            && lens[lens.len() - 1] <= lens[0];
        let all_commits = lens.iter().all(|&l| l == MAX_HEX_RUN);
        if longest > MAX_HEX_RUN || (block_shaped && total > MAX_HEX_RUN && !all_commits) {
            // The whole chain (a long run next to shorter groups is a split key), labelled by
            // its digits together: a wrapped key gets its own fingerprint.
            let digits: String = chain
                .iter()
                .map(|(s, e)| text[*s..*e].to_ascii_lowercase())
                .collect();
            out.push(Span {
                start: chain[0].0,
                end: chain[chain.len() - 1].1,
                label: Some(placeholder(&digits)),
            });
        }
        k = end + 1;
    }
}

/// Whether `hay` holds `needle` (given in lower case) in any ASCII case.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    let (lo, up) = (needle[0], needle[0].to_ascii_uppercase());
    memchr::memchr2_iter(lo, up, hay).any(|i| {
        hay.len() - i >= needle.len() && hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
    })
}

/// Whether `hay` has a run of at least `min` characters a credential value is made of.
fn has_value_run(hay: &[u8], min: usize) -> bool {
    let mut run = 0;
    for &b in hay {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'-') {
            run += 1;
            if run >= min {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn regex_spans(text: &str, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    // Cheap byte checks first: each pattern needs its words and a long enough value; most text
    // has neither, and then the pattern is never compiled nor run.
    let auth = has_value_run(b, 12) && (contains_ci(b, b"bearer") || contains_ci(b, b"basic"));
    let key_value = has_value_run(b, 16)
        && memchr::memchr2(b':', b'=', b).is_some()
        && [&b"key"[..], b"token", b"secret", b"passw"]
            .iter()
            .any(|w| contains_ci(b, w));
    let jwt = memchr::memmem::find(b, b"eyJ").is_some();
    if auth {
        regex_auth(text, out);
    }
    if key_value {
        regex_key_value(text, out);
    }
    if jwt {
        regex_jwt(text, out);
    }
}

fn regex_auth(text: &str, out: &mut Vec<Span>) {
    for c in AUTH.captures_iter(text) {
        let m = c.get(1).expect("group 1");
        if !is_word(m.as_str()) {
            out.push(Span {
                start: m.start(),
                end: m.end(),
                label: None,
            });
        }
    }
}

fn regex_key_value(text: &str, out: &mut Vec<Span>) {
    for c in KEY_VALUE.captures_iter(text) {
        let m = c.get(1).expect("group 1");
        if credential_like(m.as_str()) {
            out.push(Span {
                start: m.start(),
                end: m.end(),
                label: None,
            });
        }
    }
}

fn regex_jwt(text: &str, out: &mut Vec<Span>) {
    for m in JWT.find_iter(text) {
        out.push(Span {
            start: m.start(),
            end: m.end(),
            label: None,
        });
    }
}

/// A plain word (letters only, at most an initial capital): `Bearer authentication` is prose.
fn is_word(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphabetic()) && s.bytes().skip(1).all(|b| b.is_ascii_lowercase())
}

fn held_spans(text: &str, out: &mut Vec<Span>) {
    let held = HELD.read().unwrap_or_else(|e| e.into_inner());
    if held.secrets.is_empty() || text.len() < BLOCK.min(MIN_HELD) {
        return;
    }
    let b = text.as_bytes();
    if b.len() < BLOCK {
        return;
    }
    let mut pow = 1u64;
    for _ in 1..BLOCK {
        pow = pow.wrapping_mul(P);
    }
    let mut h = block_hash(&b[..BLOCK]);
    let mut p = 0usize;
    // Text before `skip_to` is already inside a found span.
    let mut skip_to = 0usize;
    loop {
        if p >= skip_to {
            let (w, bit) = bloom_slot(h);
            if held.bloom[w] & bit != 0 {
                if let Some(cands) = held.index.get(&h) {
                    let mut best: Option<Span> = None;
                    for &(id, off) in cands {
                        let s = &held.secrets[id as usize];
                        let off = off as usize;
                        if !b[p..p + BLOCK].eq_ignore_ascii_case(&s.text[off..off + BLOCK]) {
                            continue;
                        }
                        let mut left = 0;
                        while left < off
                            && left < p
                            && b[p - left - 1].eq_ignore_ascii_case(&s.text[off - left - 1])
                        {
                            left += 1;
                        }
                        let mut right = BLOCK;
                        while off + right < s.text.len()
                            && p + right < b.len()
                            && b[p + right].eq_ignore_ascii_case(&s.text[off + right])
                        {
                            right += 1;
                        }
                        let len = left + right;
                        if len >= MIN_WINDOW.min(s.text.len())
                            && best.as_ref().is_none_or(|x| x.end - x.start < len)
                        {
                            best = Some(Span {
                                start: p - left,
                                end: p + right,
                                label: Some(s.label.clone()),
                            });
                        }
                    }
                    if let Some(span) = best {
                        skip_to = span.end;
                        out.push(span);
                    }
                }
            }
        }
        if p + BLOCK >= b.len() {
            break;
        }
        h = h
            .wrapping_sub(u64::from(b[p].to_ascii_lowercase()).wrapping_mul(pow))
            .wrapping_mul(P)
            .wrapping_add(u64::from(b[p + BLOCK].to_ascii_lowercase()));
        p += 1;
    }
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

// ---------------------------------------------------------------------------------------------
// Terminals

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

/// Writes one line to standard output (or error) through the gate; a closed pipe is not an
/// error.
#[doc(hidden)]
pub fn emit_line(to_stderr: bool, text: &str) {
    let clean = scrub(text);
    let shown = terminal_lines(&clean, false);
    let _ = if to_stderr {
        writeln!(io::stderr().lock(), "{shown}")
    } else {
        writeln!(io::stdout().lock(), "{shown}")
    };
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// Characters a terminal would obey rather than show: C0 and C1 controls, DEL, and the
/// bidirectional overrides that reorder what is shown.
pub fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A value as a terminal should show it: control characters (newlines and escapes included)
/// written as `\n`, `\u{1b}`…, so a name cannot forge lines or drive the terminal. JSON output
/// keeps values exact; this is for human output.
pub fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control(c) {
            escape_char(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `terminal` for text made of lines: newlines (and tabs) kept, other controls escaped, except
/// colour codes (`ESC [ digits ; m`) when `keep_colour`.
pub fn terminal_lines(text: &str, keep_colour: bool) -> Cow<'_, str> {
    let needs = text
        .chars()
        .any(|c| is_control(c) && c != '\n' && c != '\t');
    if !needs {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' || c == '\t' || !is_control(c) {
            out.push(c);
            continue;
        }
        if c == '\x1b' && keep_colour {
            if let Some(len) = sgr_len(&text[i..]) {
                out.push_str(&text[i..i + len]);
                while chars.peek().is_some_and(|(j, _)| *j < i + len) {
                    chars.next();
                }
                continue;
            }
        }
        escape_char(c, &mut out);
    }
    Cow::Owned(out)
}

/// Length of a colour code (`ESC [ 0-9; m`) at the start of `s`.
fn sgr_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 3 || b[0] != 0x1b || b[1] != b'[' {
        return None;
    }
    let mut i = 2;
    while i < b.len() && i < 32 && (b[i].is_ascii_digit() || b[i] == b';') {
        i += 1;
    }
    (i < b.len() && b[i] == b'm').then_some(i + 1)
}

/// A writer that scrubs what goes through it, one `write` call at a time (a log event, a
/// rendered report), and shows control characters escaped when writing for a terminal.
pub struct Scrubbing<W: Write> {
    inner: W,
    /// Escape control characters (but newlines, tabs and, if set, colour codes).
    escape: Option<bool>,
}

impl<W: Write> Scrubbing<W> {
    /// Scrubs only (files, pipes read by programs: JSON, SARIF).
    pub fn new(inner: W) -> Self {
        Scrubbing {
            inner,
            escape: None,
        }
    }

    /// Scrubs and escapes controls, keeping colour codes when `colour` (logs, human output).
    pub fn for_terminal(inner: W, colour: bool) -> Self {
        Scrubbing {
            inner,
            escape: Some(colour),
        }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Scrubbing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let clean = scrub_bytes(buf);
        match self.escape {
            None => self.inner.write_all(&clean)?,
            Some(colour) => {
                let text = String::from_utf8_lossy(&clean);
                self.inner
                    .write_all(terminal_lines(&text, colour).as_bytes())?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> String {
        let d = sha2::Sha384::digest([seed]);
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn long_hex_runs_go_commit_ids_stay() {
        let k = key(1);
        let s = format!("key {k} here");
        let out = scrub(&s);
        assert!(!out.contains(&k[..41]), "{out}");
        assert!(out.contains(&placeholder(&k)), "{out}");
        let commit = &k[..40];
        assert_eq!(
            scrub(&format!("commit {commit}")),
            format!("commit {commit}")
        );
        assert_eq!(scrub("id 0123456789abcdef ok"), "id 0123456789abcdef ok");
        // Upper case: the fingerprint is the key's (lower case) one.
        let up = scrub(&k.to_uppercase()).into_owned();
        assert_eq!(up, placeholder(&k));
    }

    #[test]
    fn wrapped_and_split_keys() {
        let k = key(2);
        for s in [
            format!("{} {}", &k[..48], &k[48..]),
            format!("{}\n{}", &k[..64], &k[64..]),
            format!("{}\\n{}", &k[..64], &k[64..]),
            format!("{} {} {}", &k[..32], &k[32..64], &k[64..]),
            format!("{} {}", &k[..30], &k[30..]),
        ] {
            let out = scrub(&s);
            assert_eq!(out, placeholder(&k), "{s}");
        }
        // Two commit ids side by side stay.
        let two = format!("{} {}", &k[..40], &k[40..80]);
        assert_eq!(scrub(&two), two);
    }

    #[test]
    fn bearer_jwt_and_key_values() {
        let s = "Authorization: Bearer abcDEF123456ghiJKL789";
        let out = scrub(s);
        assert!(
            out.starts_with("Authorization: Bearer [redacted abcD…L789 sha256:"),
            "{out}"
        );
        assert_eq!(
            scrub("uses Bearer authentication"),
            "uses Bearer authentication"
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let out = scrub(&format!("token {jwt}!")).into_owned();
        assert!(!out.contains("eyJzdWIi"), "{out}");
        assert!(out.ends_with("]!"), "{out}");
        let out = scrub(r#"{"password": "s3cretValue12345678", "n": 1}"#);
        assert!(!out.contains("s3cretValue"), "{out}");
        assert_eq!(
            scrub(r#""token": "2026-11-20T10:15:00Z""#),
            r#""token": "2026-11-20T10:15:00Z""#
        );
        assert_eq!(
            scrub("max_token=abcdefgh12345678"),
            "max_token=abcdefgh12345678"
        );
        // Any ASCII case and Unicode spacing still match (the byte checks before the patterns
        // only skip text that cannot match).
        for s in [
            "BASIC\u{a0}QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "X-API-KEY\u{2003}= Zm9vYmFyYmF6cXV4MTIzNDU2",
            "Client_Secret:'abcdefgh12345678'",
            "PASSWD =abcdefgh12345678",
        ] {
            let out = scrub(s);
            assert!(out.contains("[redacted "), "{s}: {out}");
        }
    }

    #[test]
    fn held_secrets_are_found_by_any_window_case_and_base64() {
        let secret = "Zq9-not-hex-at-all_but_a_password_1234567890";
        hold(secret);
        let label = placeholder(secret);
        let window = &secret[7..7 + MIN_WINDOW];
        let out = scrub(&format!("x {window} y")).into_owned();
        assert_eq!(out, format!("x {label} y"));
        let out = scrub(&secret.to_uppercase()).into_owned();
        assert_eq!(out, label);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("pw={secret}"));
        let out = scrub(&b64);
        assert!(out.contains("[redacted"), "{out}");
        assert!(!out.contains(&b64[8..40]), "{out}");
        // A 40-hex window of a held key (not a hex run over 40) is found by memory.
        let k = key(3);
        hold(&k);
        let w = &k[20..60];
        assert_eq!(scrub(&format!("[{w}]")), format!("[{}]", placeholder(&k)));
        assert!(held_count() >= 2);
    }

    #[test]
    fn holds_key_sees_keys_in_any_form() {
        let k = key(4);
        for v in [
            k.clone(),
            format!("Bearer {k}"),
            format!("{} {}", &k[..48], &k[48..]),
            format!("{}-{}-{}", &k[..20], &k[20..50], &k[50..]),
            format!(" {}\n{} ", &k[..10], &k[10..]),
            "Bearer sometokenvalue".to_string(),
        ] {
            assert!(holds_key(&v), "{v}");
        }
        for v in [
            "payvy-ap",
            "sha256:0123456789abcdef",
            "reporting key 2026",
            "",
        ] {
            assert!(!holds_key(v), "{v}");
        }
    }

    #[test]
    fn terminal_escapes_controls() {
        assert_eq!(terminal("a\nb\x1b[2Jc"), "a\\nb\\u{1b}[2Jc");
        assert_eq!(terminal("plain"), "plain");
        assert_eq!(
            terminal_lines("\x1b[31mred\x1b[0m\x1b]0;title\x07\n", true),
            "\x1b[31mred\x1b[0m\\u{1b}]0;title\\u{7}\n"
        );
        assert_eq!(terminal_lines("\x1b[31m", false), "\\u{1b}[31m");
    }

    #[test]
    fn json_values_are_scrubbed_in_place() {
        let k = key(5);
        let mut v = serde_json::json!({"a": [k.clone()], k.clone(): 1, "n": 2});
        scrub_json(&mut v);
        let s = v.to_string();
        assert!(!s.contains(&k[..41]), "{s}");
    }

    #[test]
    fn writer_scrubs() {
        let k = key(6);
        let mut w = Scrubbing::for_terminal(Vec::new(), false);
        w.write_all(format!("key={k}\x1b[2J\n").as_bytes()).unwrap();
        let s = String::from_utf8(w.into_inner()).unwrap();
        assert!(!s.contains(&k[..41]));
        assert!(s.ends_with("\\u{1b}[2J\n"), "{s}");
    }

    #[test]
    fn scrub_is_idempotent_and_borrows_clean_text() {
        let k = key(7);
        let once = scrub(&format!("a {k} Bearer xyzXYZ1234567890 b")).into_owned();
        assert_eq!(scrub(&once), once);
        let big = "lorem ipsum dolor sit amet 0123 ".repeat(200_000);
        // Speed is measured by bench scripts, not asserted by a timed test.
        assert!(matches!(scrub(&big), Cow::Borrowed(_)));
    }
}
