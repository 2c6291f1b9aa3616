//! The `[[key]]` tables (the declared Airwallex keys): raw forms that reject unknown fields,
//! validated into `KeyDecl` with every problem named by file, line, key and field. How each
//! field's value is read (environment, kind, secret reference, dates, whitelist entries, scope
//! suggestions) is `fields`.

mod fields;

pub use fields::{is_api_key_shape, parse_cidr, suggest_scope};

use super::{line_at, ConfigProblem};
use crate::airwallex::{Catalog, Environment, KeyKind};
use crate::secret::Secret;
use chrono::NaiveDate;
use fields::{parse_date, parse_environment, parse_kind, parse_secret};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// One `[[key]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    /// `env:VAR` or `file:PATH`. A literal key is accepted too, and is a finding
    /// (`privilege.secret-literal`).
    pub api_key: Option<Spanned<String>>,
    /// The literal `api_key` is accepted: its finding is reported acknowledged (by the config).
    #[serde(default)]
    pub allow_literal: bool,
    pub environment: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub scopes: Option<Spanned<Vec<Spanned<String>>>>,
    pub owner: Option<String>,
    pub purpose: Option<String>,
    pub integration: Option<String>,
    pub created: Option<Spanned<toml::Value>>,
    pub rotated: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub ip_whitelist: Vec<Spanned<String>>,
    #[serde(default)]
    pub consumers: Vec<String>,
}

/// Where a key's secret is to be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSpec {
    /// `env:VAR`
    Env(String),
    /// `file:PATH`, resolved against the config file's directory.
    File(PathBuf),
    /// A literal key in the config file: a finding, acknowledged when the table says
    /// `allow_literal = true` (`accepted`).
    Literal { key: Secret<String>, accepted: bool },
}

/// The one description of a key: what its declaration says (for a shadow key, what discovery
/// observed), everything but the secret. The config's `KeyDecl`, the inventory's `KeyFacts` and
/// the listing's `KeyRow` each hold one. Serialized as the inventory lists it (the client ID
/// is left out of reports, as findings show it only redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDescription {
    /// Inventory name (for a shadow key, its fingerprint).
    pub name: String,
    #[serde(skip)]
    pub client_id: String,
    pub environment: Environment,
    pub kind: KeyKind,
    /// The listed scopes of a custom key (catalog ids); empty for the other tiers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub owner: Option<String>,
    pub purpose: Option<String>,
    pub integration: Option<String>,
    pub created: Option<NaiveDate>,
    pub rotated: Option<NaiveDate>,
    /// Normalised IPv4 CIDRs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_whitelist: Vec<String>,
    /// Hosts or services that use the key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<String>,
    /// `awxguard.toml:12`; empty for a key nobody declared.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub declared_at: String,
    /// Problems with a value of this key that do not make the whole config untrustworthy
    /// (unknown or repeated scope ids, bad whitelist entries, bad dates), each as
    /// `file:line: field: what is wrong`. The key stays in the inventory without the bad values;
    /// the audit reports them (`privilege.key-misconfigured`) and judges the rest, never proven
    /// least-privilege.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_problems: Vec<String>,
}

/// A validated `[[key]]`: the key's description and where its secret is read from.
#[derive(Debug, Clone)]
pub struct KeyDecl {
    pub key: KeyDescription,
    pub secret: SecretSpec,
}

impl std::ops::Deref for KeyDecl {
    type Target = KeyDescription;
    fn deref(&self) -> &KeyDescription {
        &self.key
    }
}

/// Validates every `[[key]]`, pushing each problem; returns the keys that validated.
pub(super) fn validate_keys(
    path: &Path,
    text: &str,
    raw: &[Spanned<RawKey>],
    catalog: &Catalog,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<KeyDecl> {
    let base = path.parent().unwrap_or(Path::new("."));
    let file = path.display().to_string();
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut refs: HashMap<(String, String), String> = HashMap::new();
    for (index, spanned) in raw.iter().enumerate() {
        let k = spanned.get_ref();
        let table_line = line_at(text, spanned.span().start);
        let label = match &k.name {
            Some(n) => format!("key {:?}", n.get_ref()),
            None => format!("key #{}", index + 1),
        };
        let before = problems.len();
        let mut push = |line: usize, field: &str, message: String| {
            problems.push(ConfigProblem {
                path: path.to_path_buf(),
                line,
                field: format!("{label}: {field}"),
                message,
            })
        };
        // Per-key value problems: the key is still audited (see `KeyDecl::config_problems`),
        // unless it has a problem that makes it unusable, when they join the fatal list.
        let mut soft: Vec<(usize, &'static str, String)> = Vec::new();
        let at = |s: &std::ops::Range<usize>| line_at(text, s.start);
        let missing = |field: &str, example: &str| format!("missing; add {field} = {example}");

        let name = match &k.name {
            Some(n) if n.get_ref().trim().is_empty() => {
                push(at(&n.span()), "name", "must not be empty".into());
                None
            }
            Some(n) => {
                if let Some(first) = names.insert(n.get_ref().clone(), at(&n.span())) {
                    push(
                        at(&n.span()),
                        "name",
                        format!("duplicate key name; first declared at {file}:{first}"),
                    );
                }
                Some(n.get_ref().clone())
            }
            None => {
                push(table_line, "name", missing("name", "\"payvy-ap\""));
                None
            }
        };
        let client_id = match &k.client_id {
            Some(c) if c.get_ref().trim().is_empty() => {
                push(at(&c.span()), "client_id", "must not be empty".into());
                None
            }
            Some(c) => Some(c.get_ref().trim().to_string()),
            None => {
                push(
                    table_line,
                    "client_id",
                    missing("client_id", "\"<22-character client ID>\""),
                );
                None
            }
        };
        let secret = match &k.api_key {
            Some(s) => match parse_secret(s.get_ref(), k.allow_literal, base) {
                Ok(spec) => Some(spec),
                Err(m) => {
                    push(at(&s.span()), "api_key", m);
                    None
                }
            },
            None => {
                push(
                    table_line,
                    "api_key",
                    missing("api_key", "\"env:AIRWALLEX_API_KEY\""),
                );
                None
            }
        };
        if let (Some(c), Some(s)) = (&client_id, &k.api_key) {
            // The same credential twice: the same client ID and the same reference.
            let reference = match parse_secret(s.get_ref(), true, base) {
                Ok(SecretSpec::Literal { key, .. }) => key.fingerprint(),
                Ok(SecretSpec::File(p)) => format!("file:{}", p.display()),
                _ => s.get_ref().clone(),
            };
            let this = name.clone().unwrap_or_else(|| label.clone());
            if let Some(other) = refs.insert((c.clone(), reference), this) {
                push(
                    at(&s.span()),
                    "api_key",
                    format!(
                        "the same client_id and api_key as key {other:?}; declare each key once"
                    ),
                );
            }
        }
        let environment = match &k.environment {
            Some(e) => match parse_environment(e.get_ref()) {
                Ok(v) => Some(v),
                Err(m) => {
                    push(at(&e.span()), "environment", m);
                    None
                }
            },
            None => {
                push(
                    table_line,
                    "environment",
                    missing("environment", "\"production\" or \"sandbox\""),
                );
                None
            }
        };
        let kind = match &k.kind {
            Some(e) => match parse_kind(e.get_ref()) {
                Ok(v) => Some(v),
                Err(m) => {
                    push(at(&e.span()), "kind", m);
                    None
                }
            },
            None => {
                push(
                    table_line,
                    "kind",
                    missing(
                        "kind",
                        "\"admin\", \"read_only\", \"read_write\" or \"custom\"",
                    ),
                );
                None
            }
        };
        let mut scopes = Vec::new();
        match (&kind, &k.scopes) {
            (Some(KeyKind::Custom), None) => push(
                table_line,
                "scopes",
                "a custom key lists its scopes, e.g. scopes = [\"transfer:read\", \
                 \"beneficiary:read\"]"
                    .into(),
            ),
            (Some(KeyKind::Custom), Some(list)) if list.get_ref().is_empty() => push(
                at(&list.span()),
                "scopes",
                "a custom key needs at least one scope".into(),
            ),
            (Some(other), Some(list)) if *other != KeyKind::Custom => push(
                at(&list.span()),
                "scopes",
                format!(
                    "only a custom key lists scopes; this key is {}, which implies its scopes \
                     (set kind = \"custom\" to list them)",
                    other.as_str()
                ),
            ),
            _ => {}
        }
        if let Some(list) = &k.scopes {
            for s in list.get_ref() {
                let id = s.get_ref();
                if catalog.scope(id).is_none() {
                    let hint = suggest_scope(id, catalog)
                        .map(|g| format!("; did you mean {g:?}?"))
                        .unwrap_or_else(|| "; `awxguard rules` lists the scope catalog".into());
                    soft.push((
                        at(&s.span()),
                        "scopes",
                        format!("unknown scope {id:?}{hint}"),
                    ));
                } else if scopes.contains(id) {
                    soft.push((
                        at(&s.span()),
                        "scopes",
                        format!("scope {id:?} is listed twice"),
                    ));
                } else {
                    scopes.push(id.clone());
                }
            }
        }
        let mut date = |v: &Option<Spanned<toml::Value>>, field: &'static str| match v {
            Some(d) => match parse_date(d.get_ref()) {
                Ok(x) => Some(x),
                Err(m) => {
                    soft.push((at(&d.span()), field, m));
                    None
                }
            },
            None => None,
        };
        let mut created = date(&k.created, "created");
        let mut rotated = date(&k.rotated, "rotated");
        if let (Some(c), Some(r), Some(rs)) = (created, rotated, &k.rotated) {
            if r < c {
                soft.push((
                    at(&rs.span()),
                    "rotated",
                    format!("{r} is before the key was created ({c})"),
                ));
                // which one is wrong is not known: judge the key's age from neither
                created = None;
                rotated = None;
            }
        }
        let mut ip_whitelist = Vec::new();
        for cidr in &k.ip_whitelist {
            match parse_cidr(cidr.get_ref()) {
                Ok(n) => ip_whitelist.push(n),
                Err(m) => soft.push((at(&cidr.span()), "ip_whitelist", m)),
            }
        }
        if problems.len() != before {
            // the key is not usable anyway: every problem in the one list
            for (line, field, message) in soft {
                problems.push(ConfigProblem {
                    path: path.to_path_buf(),
                    line,
                    field: format!("{label}: {field}"),
                    message,
                });
            }
            continue;
        }
        let config_problems: Vec<String> = soft
            .into_iter()
            .map(|(line, field, message)| format!("{file}:{line}: {field}: {message}"))
            .collect();
        let (Some(name), Some(client_id), Some(secret), Some(environment), Some(kind)) =
            (name, client_id, secret, environment, kind)
        else {
            continue;
        };
        out.push(KeyDecl {
            key: KeyDescription {
                name,
                client_id,
                environment,
                kind,
                scopes,
                owner: nonempty(&k.owner),
                purpose: nonempty(&k.purpose),
                integration: nonempty(&k.integration),
                created,
                rotated,
                ip_whitelist,
                consumers: k.consumers.clone(),
                declared_at: format!("{file}:{table_line}"),
                config_problems,
            },
            secret,
        });
    }
    out
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/cfg/awxguard.toml"), text).map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
[[key]]
name = "payvy-ap"
client_id = "AbCdEfGhIjKlMnOpQrStUv"
api_key = "env:PAYVY_KEY"
environment = "production"
kind = "custom"
scopes = ["transfer:write", "beneficiary:read"]
owner = "finance-platform"
created = 2026-01-10
rotated = "2026-06-01"
ip_whitelist = ["203.0.113.0/24", "198.51.100.7"]

[[key]]
name = "reporting"
client_id = "ZyXwVuTsRqPoNmLkJiHgFe"
api_key = "file:secrets/reporting.key"
environment = "sandbox"
kind = "read_only"
"#;

    #[test]
    fn keys_validate() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.keys.len(), 2);
        let k = &c.keys[0];
        assert_eq!(k.secret, SecretSpec::Env("PAYVY_KEY".into()));
        assert_eq!(k.scopes, vec!["transfer:write", "beneficiary:read"]);
        assert_eq!(k.ip_whitelist, vec!["203.0.113.0/24", "198.51.100.7/32"]);
        assert_eq!(k.created, NaiveDate::from_ymd_opt(2026, 1, 10));
        assert_eq!(k.rotated, NaiveDate::from_ymd_opt(2026, 6, 1));
        assert_eq!(k.declared_at, "/cfg/awxguard.toml:2");
        assert_eq!(
            c.keys[1].secret,
            SecretSpec::File(PathBuf::from("/cfg/secrets/reporting.key"))
        );
    }

    #[test]
    fn unknown_scope_is_a_problem_of_that_key_with_a_suggestion() {
        let text = GOOD.replace("\"transfer:write\"", "\"transfers:write\"");
        let c = parse(&text).unwrap();
        assert_eq!(c.keys.len(), 2, "the key stays in the inventory");
        let k = &c.keys[0];
        assert_eq!(
            k.config_problems,
            vec![
                "/cfg/awxguard.toml:8: scopes: unknown scope \"transfers:write\"; did you mean \
                 \"transfer:write\"?"
            ]
        );
        assert_eq!(
            k.scopes,
            vec!["beneficiary:read"],
            "the unknown id is left out"
        );
        assert!(c.keys[1].config_problems.is_empty());
    }

    #[test]
    fn bad_whitelist_entries_and_dates_are_problems_of_that_key() {
        let text = GOOD
            .replace("\"198.51.100.7\"", "\"10.0.0.0/16\"")
            .replace("created = 2026-01-10", "created = \"10/01/2026\"");
        let c = parse(&text).unwrap();
        let k = &c.keys[0];
        assert_eq!(k.ip_whitelist, vec!["203.0.113.0/24"]);
        assert_eq!(k.created, None);
        assert_eq!(k.config_problems.len(), 2, "{:?}", k.config_problems);
        assert!(k.config_problems[0].starts_with("/cfg/awxguard.toml:10: created: "));
        assert!(k.config_problems[1]
            .starts_with("/cfg/awxguard.toml:12: ip_whitelist: 10.0.0.0/16 is wider"));
        // rotated before created: neither date is trusted
        let text = GOOD.replace("rotated = \"2026-06-01\"", "rotated = 2025-06-01");
        let k = &parse(&text).unwrap().keys[0];
        assert_eq!((k.created, k.rotated), (None, None));
        assert!(k.config_problems[0].contains("rotated: 2025-06-01 is before the key was created"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
[[key]]
name = "a"
client_id = "AbCdEfGhIjKlMnOpQrStUv"
api_key = "vault:secret/a"
environment = "prod"
kind = "readonly"
created = "10/01/2026"
ip_whitelist = ["10.0.0.0/16", "::1"]

[[key]]
name = "a"
client_id = "AbCdEfGhIjKlMnOpQrStUv"
environment = "sandbox"
kind = "admin"
scopes = ["transfer:read"]
"#;
        let msg = parse(text).unwrap_err();
        for want in [
            "awxguard.toml:5: key \"a\": api_key: unknown secret reference \"vault:\"",
            "awxguard.toml:6: key \"a\": environment: \"prod\" is not an environment; write \
             \"production\"",
            "awxguard.toml:7: key \"a\": kind: \"readonly\" is not a key kind (did you mean \
             \"read_only\"?)",
            "awxguard.toml:8: key \"a\": created: \"10/01/2026\" is not a date",
            "awxguard.toml:9: key \"a\": ip_whitelist: 10.0.0.0/16 is wider than Airwallex allows",
            "awxguard.toml:9: key \"a\": ip_whitelist: \"::1\" is IPv6",
            "awxguard.toml:12: key \"a\": name: duplicate key name; first declared at \
             /cfg/awxguard.toml:3",
            "awxguard.toml:11: key \"a\": api_key: missing; add api_key = \"env:AIRWALLEX_API_KEY\"",
            "awxguard.toml:16: key \"a\": scopes: only a custom key lists scopes",
        ] {
            assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
        }
    }

    #[test]
    fn a_literal_key_is_accepted_and_allow_literal_records_its_acceptance() {
        // Issue 16: a literal no longer stops the config (the audit reports it and audits every
        // key); `allow_literal = true` only says it is accepted.
        let key = "3f9a".to_string() + &"7b1c".repeat(22) + "c21e";
        assert!(is_api_key_shape(&key));
        let text = format!(
            "[[key]]\nname = \"x\"\nclient_id = \"c\"\napi_key = \"{key}\"\nenvironment = \
             \"sandbox\"\nkind = \"admin\"\n"
        );
        let ok = parse(&text).unwrap();
        assert!(matches!(
            ok.keys[0].secret,
            SecretSpec::Literal {
                accepted: false,
                ..
            }
        ));
        let ok = parse(&text.replace("kind", "allow_literal = true\nkind")).unwrap();
        assert!(matches!(
            ok.keys[0].secret,
            SecretSpec::Literal { accepted: true, .. }
        ));
        // Something that is neither a reference nor a key is refused, and never echoed.
        let almost = format!("{}Z", &key[..95]);
        let msg = parse(&text.replace(&key, &almost)).unwrap_err();
        assert!(msg.contains(":4: key \"x\": api_key: is neither"), "{msg}");
        assert!(!msg.contains(&key[4..92]), "{msg}");
    }

    #[test]
    fn unknown_key_field_names_line_and_field() {
        let text = GOOD.replace("owner =", "ownr =");
        let msg = parse(&text).unwrap_err();
        assert!(
            msg.contains("awxguard.toml:9: ownr: unknown field"),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_credential_is_reported() {
        let text = format!(
            "{GOOD}\n[[key]]\nname = \"again\"\nclient_id = \"AbCdEfGhIjKlMnOpQrStUv\"\napi_key \
             = \"env:PAYVY_KEY\"\nenvironment = \"production\"\nkind = \"admin\"\n"
        );
        let msg = parse(&text).unwrap_err();
        assert!(
            msg.contains(
                "key \"again\": api_key: the same client_id and api_key as key \"payvy-ap\""
            ),
            "{msg}"
        );
    }
}
