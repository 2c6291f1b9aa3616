//! Leak rules: what an Airwallex credential looks like in text, as data.

use super::{line_of, read_rule_files, toml_error, unique_ids, RuleError, BUILTIN_LEAK_RULES};
use crate::finding::Severity;
use regex::bytes::Regex;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    name: String,
    severity: Severity,
    description: String,
    keywords: Vec<String>,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    validate: Option<String>,
    #[serde(default)]
    allowlist: Vec<String>,
    #[serde(default)]
    prefilter: Option<String>,
    #[serde(default)]
    pattern: Vec<RawPattern>,
    #[serde(default)]
    examples: Vec<RawExample>,
    #[serde(default)]
    negative_examples: Vec<RawExample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    name: String,
    regex: String,
    #[serde(default)]
    requires: Option<String>,
    #[serde(default)]
    deny: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    near: Option<String>,
    #[serde(default)]
    near_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawExample {
    Text(String),
    File { path: String, text: String },
}

/// A built-in check a candidate secret must pass, beyond its regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// 96 lowercase hex digits that are not a placeholder (repeated or sequential characters).
    AirwallexApiKey,
    /// A JWT whose header says HS256 and whose claims have Airwallex's shape.
    AirwallexJwt,
}

/// How the secret group is encoded in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Base64,
}

/// A regex compiled on first use. The built-in rules' regexes take milliseconds to compile, which
/// a pre-commit hook scanning three files (or none with a keyword in them) should not pay; they
/// are tested to compile. Regexes from user rule files are compiled at load time, so their errors
/// name the file.
pub struct LazyRegex<R = Regex> {
    source: String,
    cell: OnceLock<R>,
}

/// The regex types rules use: over bytes (patterns) and over text (allowlists).
pub trait CompileRegex: Sized {
    fn compile(source: &str) -> Result<Self, regex::Error>;
}

impl CompileRegex for Regex {
    fn compile(source: &str) -> Result<Self, regex::Error> {
        Regex::new(source)
    }
}

impl CompileRegex for regex::Regex {
    fn compile(source: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(source)
    }
}

impl<R: CompileRegex> LazyRegex<R> {
    /// Compiled on first use (built-in rules); `eager` compiles now and reports errors.
    fn new(source: &str, eager: bool) -> Result<LazyRegex<R>, regex::Error> {
        let cell = OnceLock::new();
        if eager {
            let _ = cell.set(R::compile(source)?);
        }
        Ok(LazyRegex {
            source: source.to_string(),
            cell,
        })
    }
}

impl<R: CompileRegex> std::ops::Deref for LazyRegex<R> {
    type Target = R;
    fn deref(&self) -> &R {
        self.cell.get_or_init(|| {
            R::compile(&self.source).expect("built-in rule regexes compile (tested)")
        })
    }
}

impl<R> std::fmt::Debug for LazyRegex<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LazyRegex").field(&self.source).finish()
    }
}

/// Index of the capture group named `name` in `re`, read from the pattern text without
/// compiling it (escapes and character classes are skipped). None when not found.
fn capture_index(re: &str, name: &str) -> Option<usize> {
    let b = re.as_bytes();
    let (mut i, mut index, mut class) = (0, 0, 0usize);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' => {
                class += 1;
                // `[]...]` and `[^]...]` hold a literal `]`.
                if b.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b']' if class > 0 => class -= 1,
            b'(' if class == 0 => {
                let rest = &re[i + 1..];
                let named = rest
                    .strip_prefix("?P<")
                    .or_else(|| rest.strip_prefix("?<"))
                    .filter(|r| !r.starts_with('=') && !r.starts_with('!'));
                if let Some(r) = named {
                    index += 1;
                    if r.split('>').next() == Some(name) {
                        return Some(index);
                    }
                } else if !rest.starts_with('?') {
                    index += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// One dialect of a rule.
#[derive(Debug)]
pub struct Pattern {
    pub name: String,
    pub regex: LazyRegex,
    pub requires: Option<LazyRegex>,
    pub deny: Option<LazyRegex>,
    /// A regex that must match within `near_bytes` of the match (before or after it), or the
    /// path: context nearby, where `requires` asks for it anywhere in the file.
    pub near: Option<LazyRegex>,
    pub near_bytes: usize,
    pub encoding: Encoding,
    pub secret_group: usize,
}

/// How far `near` looks when a pattern does not say.
pub const DEFAULT_NEAR_BYTES: usize = 256;

/// An input a rule must (or must not) report.
#[derive(Debug, Clone)]
pub struct RuleExample {
    pub path: String,
    pub text: String,
}

/// One compiled leak rule.
#[derive(Debug)]
pub struct LeakRule {
    pub id: String,
    pub name: String,
    pub severity: Severity,
    pub description: String,
    pub keywords: Vec<String>,
    pub entropy: Option<f64>,
    pub validate: Option<Validator>,
    pub allowlist: Vec<LazyRegex<regex::Regex>>,
    /// A regex the text must match somewhere (after a keyword hit) before any pattern runs: the
    /// raw shape of the secret, cheap to look for, so text that names the vendor but holds
    /// nothing of the secret's shape costs one pass and no pattern.
    pub prefilter: Option<LazyRegex>,
    pub patterns: Vec<Pattern>,
    pub examples: Vec<RuleExample>,
    pub negative_examples: Vec<RuleExample>,
    /// Where the rule came from (`rules/leak/airwallex.toml` for built-ins).
    pub source: PathBuf,
}

/// The leak rules in force.
#[derive(Debug)]
pub struct LeakRules {
    pub rules: Vec<LeakRule>,
}

impl LeakRules {
    /// The built-in rules, plus every `.toml` in `extra_dirs`, less the ids in `disabled`.
    pub fn load(extra_dirs: &[PathBuf], disabled: &[String]) -> Result<LeakRules, RuleError> {
        let mut rules = Vec::new();
        for (name, text) in BUILTIN_LEAK_RULES {
            rules.extend(parse_file(Path::new(name), text, true)?);
        }
        for (path, text) in read_rule_files(extra_dirs)? {
            rules.extend(parse_file(&path, &text, false)?);
        }
        let seen = unique_ids(rules.iter().map(|r| (r.id.as_str(), r.source.as_path())))?;
        for id in disabled {
            if !seen.contains_key(id) {
                let mut known: Vec<&str> = seen.keys().map(|s| s.as_str()).collect();
                known.sort();
                return Err(RuleError::UnknownDisabled {
                    id: id.clone(),
                    known: known.join(", "),
                });
            }
        }
        rules.retain(|r| !disabled.contains(&r.id));
        Ok(LeakRules { rules })
    }

    /// Only the built-in rules.
    pub fn builtin() -> LeakRules {
        LeakRules::load(&[], &[]).expect("built-in leak rules are valid (tested)")
    }

    pub fn get(&self, id: &str) -> Option<&LeakRule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

/// Parses a rule file; `builtin` rules (tested) compile their regexes on first use.
fn parse_file(path: &Path, text: &str, builtin: bool) -> Result<Vec<LeakRule>, RuleError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    raw.rule
        .into_iter()
        .map(|r| compile(path, text, r, builtin))
        .collect()
}

fn compile(path: &Path, text: &str, raw: RawRule, builtin: bool) -> Result<LeakRule, RuleError> {
    let invalid = |message: String| RuleError::Invalid {
        path: path.to_path_buf(),
        id: raw.id.clone(),
        message,
    };
    if !valid_rule_id(&raw.id) {
        return Err(RuleError::Parse {
            path: path.to_path_buf(),
            line: text.find(&raw.id).map(|o| line_of(text, o)).unwrap_or(1),
            message: format!(
                "rule id {:?} must be dotted lowercase words such as leak.vendor.kind",
                raw.id
            ),
        });
    }
    if raw.keywords.is_empty() || raw.keywords.iter().any(|k| k.len() < 3 || !k.is_ascii()) {
        return Err(invalid(
            "keywords: give at least one ASCII keyword of three or more characters; the shared \
             prefilter runs a rule only on input that holds one"
                .into(),
        ));
    }
    if raw.pattern.is_empty() {
        return Err(invalid("give at least one [[rule.pattern]]".into()));
    }
    let validate = match raw.validate.as_deref() {
        None => None,
        Some("airwallex-api-key") => Some(Validator::AirwallexApiKey),
        Some("airwallex-jwt") => Some(Validator::AirwallexJwt),
        Some(other) => {
            return Err(invalid(format!(
                "validate: unknown check {other:?}; expected airwallex-api-key or airwallex-jwt"
            )))
        }
    };
    let mut patterns = Vec::new();
    for p in raw.pattern {
        let re = |field: &str, src: &str| -> Result<LazyRegex, RuleError> {
            LazyRegex::new(src, !builtin)
                .map_err(|e| invalid(format!("pattern {}: {field}: {e}", p.name)))
        };
        let regex = re("regex", &p.regex)?;
        let group = match builtin {
            true => capture_index(&p.regex, "secret"),
            false => regex.capture_names().position(|n| n == Some("secret")),
        };
        let Some(secret_group) = group else {
            return Err(invalid(format!(
                "pattern {}: regex has no (?P<secret>...) group",
                p.name
            )));
        };
        let encoding = match p.encoding.as_deref() {
            None | Some("plain") => Encoding::Plain,
            Some("base64") => Encoding::Base64,
            Some(other) => {
                return Err(invalid(format!(
                    "pattern {}: encoding: unknown {other:?}; expected plain or base64",
                    p.name
                )))
            }
        };
        patterns.push(Pattern {
            requires: p
                .requires
                .as_deref()
                .map(|s| re("requires", s))
                .transpose()?,
            deny: p.deny.as_deref().map(|s| re("deny", s)).transpose()?,
            near: p.near.as_deref().map(|s| re("near", s)).transpose()?,
            near_bytes: p.near_bytes.unwrap_or(DEFAULT_NEAR_BYTES),
            name: p.name,
            regex,
            encoding,
            secret_group,
        });
    }
    let prefilter = raw
        .prefilter
        .as_deref()
        .map(|s| LazyRegex::new(s, !builtin).map_err(|e| invalid(format!("prefilter: {e}"))))
        .transpose()?;
    let allowlist = raw
        .allowlist
        .iter()
        .map(|s| LazyRegex::new(s, !builtin).map_err(|e| invalid(format!("allowlist: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let example = |e: RawExample| match e {
        RawExample::Text(text) => RuleExample {
            path: "example.txt".into(),
            text,
        },
        RawExample::File { path, text } => RuleExample { path, text },
    };
    Ok(LeakRule {
        id: raw.id,
        name: raw.name,
        severity: raw.severity,
        description: raw.description,
        keywords: raw
            .keywords
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect(),
        entropy: raw.entropy,
        validate,
        allowlist,
        prefilter,
        patterns,
        examples: raw.examples.into_iter().map(example).collect(),
        negative_examples: raw.negative_examples.into_iter().map(example).collect(),
        source: path.to_path_buf(),
    })
}

/// Rule ids are dotted lowercase words: `leak.airwallex.api-key`.
pub fn valid_rule_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_regexes_compile_and_their_secret_groups_are_found_without_compiling() {
        for rule in LeakRules::builtin().rules {
            for p in &rule.patterns {
                let compiled = Regex::new(p.regex.as_str()).expect("compiles");
                let want = compiled.capture_names().position(|n| n == Some("secret"));
                assert_eq!(Some(p.secret_group), want, "{} {}", rule.id, p.name);
                for r in p.requires.iter().chain(&p.deny).chain(&p.near) {
                    Regex::new(r.as_str()).expect("compiles");
                }
            }
            if let Some(p) = &rule.prefilter {
                Regex::new(p.as_str()).expect("compiles");
            }
            for a in &rule.allowlist {
                regex::Regex::new(a.as_str()).expect("compiles");
            }
        }
    }

    #[test]
    fn capture_index_skips_escapes_classes_and_non_capturing_groups() {
        assert_eq!(capture_index(r"(a)(?P<secret>b)", "secret"), Some(2));
        assert_eq!(capture_index(r"\((?:x)[(](?<secret>b)", "secret"), Some(1));
        assert_eq!(
            capture_index(r"[]()](?i:a)((b))(?P<secret>c)", "secret"),
            Some(3)
        );
        assert_eq!(capture_index(r"(a)", "secret"), None);
    }
}
