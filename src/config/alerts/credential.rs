//! Credentials named by reference (`env:VAR`, `file:PATH`), read when they are used.

use crate::config::reference::{parse_reference, Reference};
use crate::secret::Secret;
use std::path::{Path, PathBuf};

/// A credential named by reference, read when it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    Env(String),
    File(PathBuf),
}

impl CredentialRef {
    /// Reads the credential. The error names where it was looked for, never the value.
    pub fn resolve(&self) -> Result<Secret<String>, String> {
        let value = match self {
            CredentialRef::Env(var) => std::env::var(var)
                .map_err(|_| format!("environment variable {var} is not set (or not UTF-8)"))?,
            CredentialRef::File(p) => {
                crate::files::read_text_capped(p, crate::files::cap::SECRET_FILE, "secret files")
                    .map_err(|e| match e {
                        crate::files::FileError::Io { source, .. } => {
                            format!("cannot read {}: {source}", p.display())
                        }
                        e => e.to_string(),
                    })?
            }
        };
        let value = value.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(format!("{self} is empty"));
        }
        crate::redact::hold(&value);
        Ok(Secret::new(value))
    }
}

impl std::fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialRef::Env(v) => write!(f, "env:{v}"),
            CredentialRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

pub(crate) fn parse_credential(value: &str, base: &Path) -> Result<CredentialRef, String> {
    match parse_reference(value, base, ("SMTP_PASSWORD", "secrets/smtp-password")) {
        Some(Ok(Reference::Env(var))) => Ok(CredentialRef::Env(var)),
        Some(Ok(Reference::File(path))) => Ok(CredentialRef::File(path)),
        Some(Err(e)) => Err(e),
        None => {
            Err("must be a reference, \"env:VAR\" or \"file:PATH\", never the value itself".into())
        }
    }
}
