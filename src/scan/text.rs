//! What text an input holds. UTF-8 (and other ASCII-compatible bytes) is scanned as it is; UTF-16
//! (a byte-order mark, or NUL-interleaved ASCII without one: Windows `.reg` exports, PowerShell
//! `Out-File`, some editors) is decoded to UTF-8 first, so its keys are found and their lines and
//! columns counted in characters as a reader sees them; anything else with a NUL byte in its
//! first 8 KiB is binary and skipped. Only inputs that look binary pay for the UTF-16 test.

use std::borrow::Cow;

/// How many leading bytes decide whether an input is binary (a NUL byte among them).
const SNIFF: usize = 8192;

/// Is this buffer binary? A NUL byte in the first 8 KiB, as git and ripgrep decide.
pub fn is_binary(data: &[u8]) -> bool {
    memchr::memchr(0, &data[..data.len().min(SNIFF)]).is_some()
}

/// The text to scan in `data`: the bytes themselves, UTF-16 decoded to UTF-8, or None for
/// binary data.
pub fn text_of(data: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !is_binary(data) {
        return Some(Cow::Borrowed(data));
    }
    utf16_order(data).map(|little| Cow::Owned(decode_utf16(data, little)))
}

/// The byte order of UTF-16 text (true: little-endian), or None when `data` is not UTF-16 text.
fn utf16_order(data: &[u8]) -> Option<bool> {
    // A UTF-32 little-endian mark starts like UTF-16's; it is not UTF-16.
    if data.starts_with(&[0xFF, 0xFE, 0, 0]) {
        return None;
    }
    let (little, body) = match data {
        [0xFF, 0xFE, rest @ ..] => (true, rest),
        [0xFE, 0xFF, rest @ ..] => (false, rest),
        _ => {
            // No mark: NUL-interleaved text, the high bytes of ASCII characters.
            let head = &data[..data.len().min(SNIFF) & !1];
            if head.len() < 4 {
                return None;
            }
            let zeros = |parity: usize| {
                head.iter()
                    .skip(parity)
                    .step_by(2)
                    .filter(|&&b| b == 0)
                    .count()
            };
            let (even, odd, pairs) = (zeros(0), zeros(1), head.len() / 2);
            if odd * 10 >= pairs * 9 && even * 100 <= pairs {
                (true, data)
            } else if even * 10 >= pairs * 9 && odd * 100 <= pairs {
                (false, data)
            } else {
                return None;
            }
        }
    };
    looks_like_text(body, little).then_some(little)
}

/// Few control characters (other than tab, line feed, carriage return, form feed) and few
/// unpaired surrogates among the first 4 Ki characters: text, not binary data that happens to
/// start with a byte-order mark or to hold many NUL bytes.
fn looks_like_text(body: &[u8], little: bool) -> bool {
    let units = body[..body.len().min(SNIFF) & !1]
        .chunks_exact(2)
        .map(|p| unit(p, little));
    let (mut n, mut bad) = (0usize, 0usize);
    for c in char::decode_utf16(units) {
        n += 1;
        match c {
            Ok(c) if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r' | '\x0c') => bad += 1,
            Ok(_) => {}
            Err(_) => bad += 1,
        }
    }
    bad * 100 <= n
}

fn unit(pair: &[u8], little: bool) -> u16 {
    if little {
        u16::from_le_bytes([pair[0], pair[1]])
    } else {
        u16::from_be_bytes([pair[0], pair[1]])
    }
}

/// UTF-16 to UTF-8, without a byte-order mark; unpaired surrogates become U+FFFD.
fn decode_utf16(data: &[u8], little: bool) -> Vec<u8> {
    let body = match data {
        [0xFF, 0xFE, rest @ ..] | [0xFE, 0xFF, rest @ ..] => rest,
        _ => data,
    };
    let units = body.chunks_exact(2).map(|p| unit(p, little));
    let mut out = String::with_capacity(body.len() / 2 + 16);
    out.extend(char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str, little: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if little { [0xFF, 0xFE] } else { [0xFE, 0xFF] });
        }
        for u in s.encode_utf16() {
            out.extend(if little {
                u.to_le_bytes()
            } else {
                u.to_be_bytes()
            });
        }
        out
    }

    #[test]
    fn utf8_is_scanned_as_it_is() {
        let t = text_of(b"a = 1\n").unwrap();
        assert!(matches!(t, Cow::Borrowed(_)));
    }

    #[test]
    fn utf16_with_and_without_a_mark_is_decoded() {
        let s = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_CURRENT_USER\\Environment]\r\n\"AIRWALLEX_API_KEY\"=\"x\"\r\nnaïve €\r\n";
        for little in [true, false] {
            for bom in [true, false] {
                let data = utf16(s, little, bom);
                let t = text_of(&data).expect("text");
                assert_eq!(std::str::from_utf8(&t).unwrap(), s, "{little} {bom}");
            }
        }
    }

    #[test]
    fn binary_stays_binary() {
        assert!(text_of(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0\x01\0\0\0").is_none());
        // A byte-order mark followed by binary data.
        let mut d = vec![0xFF, 0xFE];
        d.extend((0..400u32).flat_map(|i| [(i * 7) as u8, (i % 5) as u8]));
        assert!(text_of(&d).is_none());
        // UTF-32 little-endian.
        assert!(text_of(&[0xFF, 0xFE, 0, 0, b'a', 0, 0, 0]).is_none());
        // Mostly zeros.
        assert!(text_of(&[0u8; 64]).is_none());
    }
}
