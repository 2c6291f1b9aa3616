//! Values named by reference in the config (`env:VAR`, `file:PATH`) rather than written into it:
//! API keys and the alert sinks' credentials read them the same way.

use std::path::{Path, PathBuf};

/// Where a referenced value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference {
    Env(String),
    /// Relative paths are taken from the config file's folder.
    File(PathBuf),
}

/// `value` as a reference; `None` when it has neither prefix. `example` names a variable and a
/// file for the error texts (e.g. `("SMTP_PASSWORD", "secrets/smtp-password")`). An error never
/// holds more of `value` than what follows `env:`, which must be a variable's name.
pub(crate) fn parse_reference(
    value: &str,
    base: &Path,
    example: (&str, &str),
) -> Option<Result<Reference, String>> {
    if let Some(var) = value.strip_prefix("env:") {
        let ok = !var.is_empty()
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !var.as_bytes()[0].is_ascii_digit();
        return Some(if ok {
            Ok(Reference::Env(var.to_string()))
        } else {
            Err(format!(
                "env:{var} is not an environment variable name; e.g. \"env:{}\"",
                example.0
            ))
        });
    }
    let file = value.strip_prefix("file:")?;
    Some(if file.is_empty() {
        Err(format!("file: needs a path, e.g. \"file:{}\"", example.1))
    } else {
        Ok(Reference::File(base.join(file)))
    })
}
