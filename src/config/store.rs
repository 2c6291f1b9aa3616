//! `[store]`: where the database lives: a SQLite file (`path`) or a shared PostgreSQL database
//! (`url`). `--db` and `AWXGUARD_DB` override both.

use super::alerts::{parse_credential, CredentialRef};
use super::{ConfigProblem, Source};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// The `[store]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// The SQLite database file, relative to the config file.
    pub path: Option<Spanned<String>>,
    /// A PostgreSQL database: `postgres://user@host/db` (no password in it), or a reference to
    /// the whole URL, `env:VAR` / `file:PATH`, when it carries credentials.
    pub url: Option<Spanned<String>>,
}

/// Where `[store] url` is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// Written in the config file (without a password).
    Literal(String),
    /// Read when the store is opened.
    Ref(CredentialRef),
}

/// The validated `[store]` section.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// `None`: `$XDG_DATA_HOME/awxguard/awxguard.db`.
    pub path: Option<PathBuf>,
    /// A PostgreSQL database instead of the SQLite file.
    pub url: Option<StoreUrl>,
}

impl StoreConfig {
    /// The PostgreSQL URL of `[store] url`, credentials read from their reference; `None` without
    /// one. The error names the reference, never a value.
    pub fn resolve_url(&self) -> Result<Option<String>, String> {
        match &self.url {
            None => Ok(None),
            Some(StoreUrl::Literal(u)) => Ok(Some(u.clone())),
            Some(StoreUrl::Ref(r)) => {
                let url = r.resolve().map_err(|e| format!("[store] url: {e}"))?;
                let url = url.expose().to_string();
                if !is_pg_url(&url) {
                    return Err(format!(
                        "[store] url: {r} does not hold a postgres:// URL (it must start with \
                         postgres:// or postgresql://)"
                    ));
                }
                Ok(Some(url))
            }
        }
    }
}

fn is_pg_url(u: &str) -> bool {
    u.starts_with("postgres://") || u.starts_with("postgresql://")
}

/// Whether a literal URL carries a password (`user:pw@`, or `password=` in its options).
fn has_password(u: &str) -> bool {
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = base.split('/').next().unwrap_or("");
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
    userinfo.is_some_and(|u| u.contains(':'))
        || query.split('&').any(|kv| kv.starts_with("password="))
}

/// Validates `[store]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawStore,
    problems: &mut Vec<ConfigProblem>,
) -> StoreConfig {
    let path = raw.path.as_ref().map(|p| {
        if p.get_ref().trim().is_empty() {
            problems.push(src.problem(
                p.span(),
                "store.path",
                "is empty; give a database file, e.g. \"awxguard.db\"".into(),
            ));
        }
        src.base().join(p.get_ref())
    });
    let url =
        raw.url.as_ref().and_then(|u| {
            let v = u.get_ref();
            if raw.path.is_some() {
                problems.push(src.problem(
                    u.span(),
                    "store.url",
                    "give either path (SQLite) or url (PostgreSQL), not both".into(),
                ));
                return None;
            }
            if v.starts_with("env:") || v.starts_with("file:") {
                return match parse_credential(v, src.base()) {
                    Ok(r) => Some(StoreUrl::Ref(r)),
                    Err(m) => {
                        problems.push(src.problem(u.span(), "store.url", m));
                        None
                    }
                };
            }
            if !is_pg_url(v) {
                problems.push(src.problem(
                u.span(),
                "store.url",
                "must be a postgres:// URL (e.g. \"postgres://awxguard@db.internal/awxguard\") \
                 or a reference to one, \"env:VAR\" / \"file:PATH\""
                    .into(),
            ));
                return None;
            }
            if has_password(v) {
                problems.push(src.problem(
                u.span(),
                "store.url",
                "holds a password: keep credentials out of the config file; put the whole URL \
                 in an environment variable or a file and write url = \"env:VAR\" or \
                 \"file:PATH\""
                    .into(),
            ));
                return None;
            }
            Some(StoreUrl::Literal(v.clone()))
        });
    StoreConfig { path, url }
}

#[cfg(test)]
mod tests {
    use super::has_password;

    #[test]
    fn passwords_in_urls_are_seen() {
        assert!(has_password("postgres://a:b@h/db"));
        assert!(has_password("postgres://a@h/db?sslmode=disable&password=x"));
        assert!(!has_password("postgres://a@h:5432/db"));
        assert!(!has_password("postgres:///db?host=/tmp/x&user=u"));
    }
}
