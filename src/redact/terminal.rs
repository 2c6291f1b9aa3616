//! What a terminal is shown: lines through the gate (`say!`/`tell!`), control characters and
//! escapes written out instead of obeyed, colour codes kept where asked.

use super::scrub;
use std::borrow::Cow;
use std::io::{self, Write};

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
