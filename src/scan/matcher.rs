//! The matcher: one shared keyword prefilter (Aho-Corasick, ASCII case-insensitive) decides which
//! rules can match an input at all; a rule's own `prefilter` (the raw shape of its secret) then
//! decides whether its patterns run; and each candidate secret passes its rule's checks (deny
//! and near context, decoding, validator, entropy, allowlist, allow comment).

use crate::airwallex::jwt_claims;
use crate::finding::Severity;
use crate::rules::leak::{Encoding, LeakRule, LeakRules, Validator};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use regex::bytes::Regex;
use std::sync::OnceLock;

/// The inline comment that suppresses a finding on its line.
pub const ALLOW_MARKER: &[u8] = b"awxguard:allow";

/// How far around an API key to look for its client ID, in bytes.
const CLIENT_ID_WINDOW: usize = 2048;

/// How much text the keyword prefilter lower-cases at a time (fits the L2 cache with the text).
const FOLD_CHUNK: usize = 64 * 1024;

thread_local! {
    /// The prefilter's lower-cased chunk, reused across files.
    static FOLDED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A candidate secret that passed every check of its rule. Its `Debug` shows the secret's
/// preview only, so a stray `{:?}` cannot print a key.
#[derive(Clone)]
pub struct Match {
    /// Index of the rule in the matcher's rule list.
    pub rule: usize,
    /// Name of the pattern (dialect) that found it.
    pub pattern: String,
    /// The secret as a user would paste it (decoded when the text held it encoded). Callers turn
    /// it into a preview and fingerprint at once; it never leaves the process.
    pub secret: String,
    /// Byte offset of the secret's first byte.
    pub offset: usize,
    /// 1-based line and column (in characters) of the secret.
    pub line: u64,
    pub column: u64,
    /// The client ID found next to an API key.
    pub client_id: Option<String>,
    /// The rule's severity, or lower where the candidate says so (an expired token).
    pub severity: Severity,
    /// A remark on the candidate worth showing (e.g. "expired 2025-11-24T10:30:00Z").
    pub note: Option<String>,
}

impl std::fmt::Debug for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Match")
            .field("rule", &self.rule)
            .field("pattern", &self.pattern)
            .field("secret", &crate::secret::preview(&self.secret))
            .field("offset", &self.offset)
            .field("line", &self.line)
            .field("column", &self.column)
            .field(
                "client_id",
                &self.client_id.as_deref().map(crate::secret::preview),
            )
            .field("severity", &self.severity)
            .field("note", &self.note)
            .finish()
    }
}

/// The compiled detectors.
pub struct Matcher {
    rules: LeakRules,
    prefilter: AhoCorasick,
    /// Keyword index -> rule index.
    keyword_rule: Vec<usize>,
    /// Length of the longest keyword: how far folded chunks overlap.
    max_keyword: usize,
    /// The keywords, lower-cased (index = keyword index).
    keywords: Vec<String>,
    /// The SIMD keyword search, where the CPU has it.
    teddy: Option<aho_corasick::packed::Searcher>,
    now_unix: i64,
}

fn client_id_regexes() -> &'static [Regex; 2] {
    static RE: OnceLock<[Regex; 2]> = OnceLock::new();
    RE.get_or_init(|| {
        [
            Regex::new(
                r#"(?i:client[_.-]?id)\\?["'`]?\]?\s{0,4}(?:=>|:=|[:=]|\s)\s{0,4}\\?["'`]?(?P<cid>[A-Za-z0-9_-]{22})(?:[^A-Za-z0-9_-]|$)"#,
            )
            .expect("client id regex"),
            Regex::new(
                r#"(?i:"(?:key|name)"\s*:\s*"[^"]{0,30}client[_.-]?id")\s*,\s*"value"\s*:\s*"(?P<cid>[A-Za-z0-9_-]{22})""#,
            )
            .expect("client id json regex"),
        ]
    })
}

impl Matcher {
    /// Builds the matcher. `now_unix` is the clock's time, used to tell expired tokens.
    pub fn new(rules: LeakRules, now_unix: i64) -> Matcher {
        let mut keywords = Vec::new();
        let mut keyword_rule = Vec::new();
        for (i, r) in rules.rules.iter().enumerate() {
            for k in &r.keywords {
                keywords.push(k.clone());
                keyword_rule.push(i);
            }
        }
        // Keywords are ASCII and compared in any case: the prefilter searches lower-cased text
        // for lower-cased keywords. (Aho-Corasick's own case-insensitive mode gets no SIMD
        // prefilter for keywords like these; folding a chunk first keeps its Teddy prefilter.)
        let max_keyword = keywords.iter().map(String::len).max().unwrap_or(1);
        let lowered: Vec<String> = keywords.iter().map(|k| k.to_ascii_lowercase()).collect();
        let prefilter = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&lowered)
            .expect("keywords are plain ASCII strings");
        // Teddy (SIMD) finds where a keyword may start; None where the CPU lacks it or there
        // are too many keywords, and then the automaton above does the work.
        let teddy = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&lowered)
            .build();
        Matcher {
            rules,
            prefilter,
            keyword_rule,
            max_keyword,
            keywords: lowered,
            teddy,
            now_unix,
        }
    }

    pub fn rules(&self) -> &LeakRules {
        &self.rules
    }

    pub fn rule(&self, index: usize) -> &LeakRule {
        &self.rules.rules[index]
    }

    /// Which rules have a keyword in `data` or `path`, as a bit set (rules from the 64th on
    /// share the last bit).
    fn active_rules(&self, path: &str, data: &[u8]) -> u64 {
        let all: u64 = if self.rules.rules.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.rules.rules.len()) - 1
        };
        FOLDED.with(|buf| {
            let mut buf = buf.borrow_mut();
            let mut active = 0u64;
            let mut mark = |folded: &[u8]| {
                match &self.teddy {
                    Some(teddy) => {
                        // Every position where a keyword starts: at each hit, test all keywords
                        // there (hits are rare), then go on from the next byte.
                        let mut at = 0;
                        while let Some(m) =
                            teddy.find_in(folded, aho_corasick::Span::from(at..folded.len()))
                        {
                            let rest = &folded[m.start()..];
                            for (ki, k) in self.keywords.iter().enumerate() {
                                if rest.starts_with(k.as_bytes()) {
                                    active |= 1 << self.keyword_rule[ki].min(63);
                                }
                            }
                            if active == all {
                                return true;
                            }
                            at = m.start() + 1;
                        }
                    }
                    None => {
                        for m in self.prefilter.find_overlapping_iter(folded) {
                            active |= 1 << self.keyword_rule[m.pattern().as_usize()].min(63);
                        }
                    }
                }
                active == all
            };
            buf.clear();
            buf.extend(path.bytes().map(|b| b.to_ascii_lowercase()));
            if mark(&buf) {
                return active;
            }
            // Fold and search the data a chunk at a time; consecutive chunks overlap by a
            // keyword's length so a keyword across a boundary is still seen whole.
            let overlap = self.max_keyword.saturating_sub(1);
            let mut start = 0;
            while start < data.len() {
                let end = (start + FOLD_CHUNK + overlap).min(data.len());
                let chunk = &data[start..end];
                buf.clear();
                buf.extend(chunk.iter().map(u8::to_ascii_lowercase));
                if mark(&buf) || end == data.len() {
                    break;
                }
                start += FOLD_CHUNK;
            }
            active
        })
    }

    /// Every secret in `data`; `path` is used for context (`requires`) and keyword hits.
    pub fn scan(&self, path: &str, data: &[u8]) -> Vec<Match> {
        let active = self.active_rules(path, data);
        if active == 0 {
            return Vec::new();
        }
        let mut out: Vec<Match> = Vec::new();
        // A pattern's `requires` (context elsewhere in the file) is looked for before its regex
        // runs (the context regexes have literals to skip ahead on; some patterns have none),
        // and once per file for patterns sharing the same context.
        let mut requires_met: Vec<(&str, bool)> = Vec::new();
        for (ri, rule) in self.rules.rules.iter().enumerate() {
            if active & (1 << ri.min(63)) == 0 {
                continue;
            }
            if rule.prefilter.as_ref().is_some_and(|p| !p.is_match(data)) {
                continue;
            }
            for pattern in &rule.patterns {
                if let Some(req) = &pattern.requires {
                    let met = match requires_met.iter().find(|(s, _)| *s == req.as_str()) {
                        Some(&(_, met)) => met,
                        None => {
                            let met = req.is_match(data) || req.is_match(path.as_bytes());
                            requires_met.push((req.as_str(), met));
                            met
                        }
                    };
                    if !met {
                        continue;
                    }
                }
                for caps in pattern.regex.captures_iter(data) {
                    let (Some(whole), Some(sec)) = (caps.get(0), caps.get(pattern.secret_group))
                    else {
                        continue;
                    };
                    if out.iter().any(|m| m.rule == ri && m.offset == sec.start()) {
                        continue;
                    }
                    // The context of the secret in the match (a variable name, the line
                    // around it), on either side of it.
                    if let Some(deny) = &pattern.deny {
                        if deny.is_match(&data[whole.start()..sec.start()])
                            || deny.is_match(&data[sec.end()..whole.end()])
                        {
                            continue;
                        }
                    }
                    if let Some(near) = &pattern.near {
                        let lo = whole.start().saturating_sub(pattern.near_bytes);
                        let hi = whole
                            .end()
                            .saturating_add(pattern.near_bytes)
                            .min(data.len());
                        if !near.is_match(&data[lo..hi]) && !near.is_match(path.as_bytes()) {
                            continue;
                        }
                    }
                    let Some(mut secret) = decode(pattern.encoding, sec.as_bytes()) else {
                        continue;
                    };
                    let mut severity = rule.severity;
                    let mut note = None;
                    match rule.validate {
                        Some(Validator::AirwallexApiKey) => match canonical_api_key(&secret) {
                            Some(key) if !looks_like_placeholder(&key) => secret = key,
                            _ => continue,
                        },
                        Some(Validator::AirwallexJwt) => match airwallex_jwt(&secret) {
                            Some(exp) => {
                                if let Some(exp) = exp {
                                    if exp < self.now_unix {
                                        severity = Severity::Low;
                                        note = Some(format!("expired {}", format_unix(exp)));
                                    }
                                }
                            }
                            None => continue,
                        },
                        None => {}
                    }
                    if let Some(floor) = rule.entropy {
                        if shannon_entropy(secret.as_bytes()) < floor {
                            continue;
                        }
                    }
                    if rule.allowlist.iter().any(|a| a.is_match(&secret)) {
                        continue;
                    }
                    if line_has_allow_marker(data, sec.start(), sec.end()) {
                        continue;
                    }
                    let client_id = (rule.validate == Some(Validator::AirwallexApiKey))
                        .then(|| find_client_id(data, sec.start(), sec.end()))
                        .flatten();
                    let (line, column) = line_column(data, sec.start());
                    out.push(Match {
                        rule: ri,
                        pattern: pattern.name.clone(),
                        secret,
                        offset: sec.start(),
                        line,
                        column,
                        client_id,
                        severity,
                        note,
                    });
                }
            }
        }
        out.sort_by_key(|m| (m.offset, m.rule));
        out
    }
}

fn decode(encoding: Encoding, raw: &[u8]) -> Option<String> {
    match encoding {
        Encoding::Plain => std::str::from_utf8(raw).ok().map(str::to_string),
        Encoding::Base64 => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
            let text = String::from_utf8(bytes).ok()?;
            // `echo key | base64` keeps the newline; the key is what precedes it.
            Some(text.trim_end().to_string())
        }
    }
}

/// 96 lowercase hex digits.
pub fn is_api_key_shape(s: &str) -> bool {
    s.len() == 96
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The API key as Airwallex issued it (96 lowercase hex digits) from its text: lowercase, or the
/// same key in upper case (copied from a form or a spreadsheet that upper-cased it). Mixed case
/// is no key. The finding's fingerprint, preview and verification all use this form, so an
/// upper-cased copy meets the key in the inventory and elsewhere.
pub fn canonical_api_key(s: &str) -> Option<String> {
    if is_api_key_shape(s) {
        return Some(s.to_string());
    }
    let upper = s.len() == 96
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    upper.then(|| s.to_ascii_lowercase())
}

/// Documentation placeholders: long runs of one character, ascending runs (`01234567`), a short
/// pattern repeated, or too few distinct characters for 48 random bytes.
pub fn looks_like_placeholder(s: &str) -> bool {
    let b = s.as_bytes();
    let mut run = 1;
    let mut asc = 1;
    for w in b.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        asc = if hex_value(w[1]) == hex_value(w[0]).map(|v| v + 1) {
            asc + 1
        } else {
            1
        };
        if run >= 8 || asc >= 8 {
            return true;
        }
    }
    for period in 1..=32 {
        if period < b.len() && b.iter().zip(&b[period..]).all(|(x, y)| x == y) {
            return true;
        }
    }
    let mut seen = [false; 256];
    b.iter().for_each(|&c| seen[c as usize] = true);
    seen.iter().filter(|&&x| x).count() < 10
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Decodes a JWT and says whether it is Airwallex's: header `alg` HS256 and claims with a data
/// centre (`data_center_region`, `dc` or `issdc`) and an account (`account_id` or
/// `permissions`). Returns `Some(exp)` for an Airwallex token, `None` for anything else.
pub fn airwallex_jwt(token: &str) -> Option<Option<i64>> {
    let claims = jwt_claims(token)?;
    let obj = claims.as_object()?;
    let has = |k: &str| obj.contains_key(k);
    let data_centre = has("data_center_region") || has("dc") || has("issdc");
    let account = has("account_id") || has("permissions");
    (data_centre && account).then(|| obj.get("exp").and_then(|v| v.as_i64()))
}

fn format_unix(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn line_bounds(data: &[u8], start: usize, end: usize) -> (usize, usize) {
    let ls = memchr::memrchr(b'\n', &data[..start]).map_or(0, |i| i + 1);
    let le = memchr::memchr(b'\n', &data[end..]).map_or(data.len(), |i| end + i);
    (ls, le)
}

fn line_has_allow_marker(data: &[u8], start: usize, end: usize) -> bool {
    let (ls, le) = line_bounds(data, start, end);
    memchr::memmem::find(&data[ls..le], ALLOW_MARKER).is_some()
}

/// 1-based line and character column of a byte offset.
pub fn line_column(data: &[u8], offset: usize) -> (u64, u64) {
    let line = memchr::memchr_iter(b'\n', &data[..offset]).count() as u64 + 1;
    let ls = memchr::memrchr(b'\n', &data[..offset]).map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&data[ls..offset]).chars().count() as u64 + 1;
    (line, column)
}

/// The client ID nearest to the key, within a window around it.
fn find_client_id(data: &[u8], start: usize, end: usize) -> Option<String> {
    let lo = start.saturating_sub(CLIENT_ID_WINDOW);
    let hi = (end + CLIENT_ID_WINDOW).min(data.len());
    let window = &data[lo..hi];
    let mut best: Option<(usize, String)> = None;
    for re in client_id_regexes() {
        for caps in re.captures_iter(window) {
            let Some(c) = caps.name("cid") else { continue };
            let at = lo + c.start();
            let dist = at.abs_diff(start);
            if best.as_ref().is_none_or(|(d, _)| dist < *d) {
                if let Ok(s) = std::str::from_utf8(c.as_bytes()) {
                    best = Some((dist, s.to_string()));
                }
            }
        }
    }
    best.map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised() {
        assert!(looks_like_placeholder(&"0".repeat(96)));
        assert!(looks_like_placeholder(&"0123456789abcdef".repeat(6)));
        assert!(looks_like_placeholder(&"deadbeef".repeat(12)));
        assert!(!looks_like_placeholder(
            "4762b969f3eae1dbc41ea17e7c842e144135a804af4c6cfdf0c77e737aed73772f8352470c890116f7aeaa1666570b2a" // awxguard:allow
        ));
    }

    #[test]
    fn entropy_of_random_hex_is_high() {
        let e = shannon_entropy(
            b"4762b969f3eae1dbc41ea17e7c842e144135a804af4c6cfdf0c77e737aed73772f8352470c890116f7aeaa1666570b2a", // awxguard:allow
        );
        assert!(e > 3.6, "{e}");
        assert!(shannon_entropy(b"aaaa") < 0.1);
    }

    /// A random-looking key made at run time (SHA-384 of a seed), so none sits in the source.
    fn test_key(seed: &str) -> String {
        use sha2::Digest;
        sha2::Sha384::digest(seed.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn keywords_are_found_in_any_case_and_across_fold_chunks() {
        let m = Matcher::new(LeakRules::builtin(), 0);
        let k = test_key("chunk");
        for at in [
            0,
            FOLD_CHUNK - 4,
            FOLD_CHUNK - 1,
            FOLD_CHUNK,
            3 * FOLD_CHUNK + 17,
        ] {
            let mut data = vec![b'.'; at];
            data.extend_from_slice(format!("\nAirWallex_Api_Key={k}\n").as_bytes());
            data.extend(std::iter::repeat_n(b'-', 100));
            let found = m.scan("config.txt", &data);
            assert_eq!(found.len(), 1, "keyword at {at}");
            assert_eq!(found[0].secret, k);
            assert_eq!(found[0].offset, at + 19);
        }
    }

    #[test]
    fn a_keyword_in_the_path_activates_its_rule() {
        let m = Matcher::new(LeakRules::builtin(), 0);
        let k = test_key("path");
        // No keyword in the text; the `requires` of the field pattern is met by the path.
        let text = format!("api_key: {k}\n");
        assert_eq!(m.scan("config/airwallex.yaml", text.as_bytes()).len(), 1);
        assert_eq!(m.scan("config/stripe.yaml", text.as_bytes()).len(), 0);
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\nxé=k".as_bytes(), 7), (2, 4));
    }
}
