//! Secrets found by shape: long or wrapped hex runs, `Authorization` header values,
//! credential-looking `key=value` pairs and JWTs.

use super::{placeholder, Span, MAX_HEX_RUN};
use regex::Regex;
use std::sync::LazyLock;

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

pub(super) fn hex_spans(text: &str, out: &mut Vec<Span>) {
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

pub(super) fn regex_spans(text: &str, out: &mut Vec<Span>) {
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
