//! Secrets stay wrapped: nothing here can print a key in clear, only its preview and fingerprint.

use sha2::{Digest, Sha256};
use std::fmt;

/// `sha256:` + the first 16 lowercase hex digits of SHA-256 over the secret's text.
///
/// The usage-event contract uses the same function, so a leaked key, an inventory entry and a
/// usage event meet on it.
pub fn fingerprint(text: &[u8]) -> String {
    let digest = Sha256::digest(text);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(23);
    out.push_str("sha256:");
    for b in &digest[..8] {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// A redacted preview: the first and last four characters around an ellipsis (`3f9a…c21e`).
///
/// Short values (under 12 characters) show nothing but the ellipsis, since four plus four of them
/// would reveal most of the value.
pub fn preview(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 12 {
        return "…".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// A value that must never be printed in clear. `Debug` and `Display` show the preview only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret<T: AsRef<str>>(T);

impl<T: AsRef<str>> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that must send it (a login) or hash it.
    pub fn expose(&self) -> &str {
        self.0.as_ref()
    }

    pub fn preview(&self) -> String {
        preview(self.0.as_ref())
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_ref().as_bytes())
    }
}

impl<T: AsRef<str>> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.preview())
    }
}

impl<T: AsRef<str>> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.preview())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256_prefix() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(fingerprint(b"abc"), "sha256:ba7816bf8f01cfea");
    }

    #[test]
    fn preview_hides_the_middle() {
        assert_eq!(preview("3f9a0000000000000000c21e"), "3f9a…c21e");
        assert_eq!(preview("short"), "…");
        let s = Secret::new("3f9a0000000000000000c21e".to_string());
        assert_eq!(format!("{s:?}"), "Secret(3f9a…c21e)");
        assert_eq!(format!("{s}"), "3f9a…c21e");
    }
}
