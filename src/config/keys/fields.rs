//! How each `[[key]]` field's value is read: environment, kind, secret reference, dates,
//! IP whitelist entries, and "did you mean" for scope ids.

use super::SecretSpec;
use crate::airwallex::{Catalog, Environment, KeyKind};
use crate::config::reference::{parse_reference, Reference};
use crate::secret::Secret;
use chrono::NaiveDate;
use std::path::Path;

/// Whether `s` is shaped like an Airwallex API key (96 lowercase hex digits).
pub fn is_api_key_shape(s: &str) -> bool {
    s.len() == 96 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(super) fn parse_environment(s: &str) -> Result<Environment, String> {
    match s {
        "production" => Ok(Environment::Production),
        "sandbox" => Ok(Environment::Sandbox),
        "prod" | "live" => Err(format!("{s:?} is not an environment; write \"production\"")),
        "demo" | "test" | "staging" => {
            Err(format!("{s:?} is not an environment; write \"sandbox\""))
        }
        _ => Err(format!(
            "{s:?} is not an environment; expected \"production\" or \"sandbox\""
        )),
    }
}

pub(super) fn parse_kind(s: &str) -> Result<KeyKind, String> {
    match s {
        "admin" => Ok(KeyKind::Admin),
        "read_only" => Ok(KeyKind::ReadOnly),
        "read_write" => Ok(KeyKind::ReadWrite),
        "custom" => Ok(KeyKind::Custom),
        _ => {
            let norm = s.to_ascii_lowercase().replace(['-', ' '], "_");
            let hint = match norm.as_str() {
                "read_only" | "readonly" | "read" => " (did you mean \"read_only\"?)",
                "read_write" | "readwrite" | "read_and_write" => " (did you mean \"read_write\"?)",
                "scoped" | "restricted" => " (a scoped key is \"custom\" with its `scopes` listed)",
                "full" | "full_access" => " (did you mean \"admin\"?)",
                _ => "",
            };
            Err(format!(
                "{s:?} is not a key kind{hint}; expected admin, read_only, read_write or custom"
            ))
        }
    }
}

/// Parses a secret reference. Never puts the value itself in an error message.
pub(super) fn parse_secret(
    value: &str,
    allow_literal: bool,
    base: &Path,
) -> Result<SecretSpec, String> {
    match parse_reference(value, base, ("AIRWALLEX_API_KEY", "secrets/payvy.key")) {
        Some(Ok(Reference::Env(var))) => return Ok(SecretSpec::Env(var)),
        Some(Ok(Reference::File(path))) => return Ok(SecretSpec::File(path)),
        Some(Err(e)) => return Err(e),
        None => {}
    }
    let trimmed = value.trim();
    if is_api_key_shape(trimmed) {
        // Never a reason to stop: the audit reports it (privilege.secret-literal) and audits
        // every key; `allow_literal = true` records that the literal is accepted.
        return Ok(SecretSpec::Literal {
            key: Secret::new(trimmed.to_string()),
            accepted: allow_literal,
        });
    }
    let scheme = value
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| s.len() <= 12 && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    match scheme {
        Some(s) => Err(format!(
            "unknown secret reference \"{s}:\"; expected \"env:VAR\" or \"file:PATH\""
        )),
        None => Err(
            "is neither a secret reference nor an API key; expected \"env:VAR\" or \"file:PATH\""
                .into(),
        ),
    }
}

pub(super) fn parse_date(v: &toml::Value) -> Result<NaiveDate, String> {
    let text = match v {
        toml::Value::Datetime(d) => match (&d.date, &d.time) {
            (Some(date), None) => {
                return NaiveDate::from_ymd_opt(
                    date.year as i32,
                    date.month as u32,
                    date.day as u32,
                )
                .ok_or_else(|| format!("{d} is not a valid date"))
            }
            _ => return Err(format!("{d} is not a date; write a date like 2026-03-01")),
        },
        toml::Value::String(s) => s.clone(),
        other => {
            return Err(format!(
                "{other} is not a date; write a date like 2026-03-01"
            ))
        }
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date; write YYYY-MM-DD, e.g. 2026-03-01"))
}

/// Parses an IPv4 address or CIDR the way Airwallex accepts it (/24 to /32); returns it
/// normalised (`10.0.0.0/24`, `203.0.113.7/32`).
pub fn parse_cidr(s: &str) -> Result<String, String> {
    let s = s.trim();
    let net: ipnet::Ipv4Net = if s.contains('/') {
        match s.parse::<ipnet::Ipv4Net>() {
            Ok(n) => n,
            Err(_) if s.parse::<ipnet::Ipv6Net>().is_ok() => {
                return Err(format!(
                    "{s:?} is IPv6; Airwallex whitelists IPv4 addresses only"
                ))
            }
            Err(_) => return Err(format!("{s:?} is not an IPv4 CIDR, e.g. 203.0.113.0/24")),
        }
    } else {
        match s.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => ipnet::Ipv4Net::new(a, 32).expect("/32 is valid"),
            Ok(std::net::IpAddr::V6(_)) => {
                return Err(format!(
                    "{s:?} is IPv6; Airwallex whitelists IPv4 addresses only"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "{s:?} is not an IPv4 address or CIDR, e.g. 203.0.113.7 or 203.0.113.0/24"
                ))
            }
        }
    };
    if net.prefix_len() < 24 {
        return Err(format!(
            "{s} is wider than Airwallex allows: a whitelist entry is one address or a CIDR from \
             /24 to /32; split it into /24 ranges"
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "{s} has host bits set; the network is {}",
            net.trunc()
        ));
    }
    Ok(net.to_string())
}

/// The catalog id closest to `id`, if it is close enough to be a typo.
pub fn suggest_scope(id: &str, catalog: &Catalog) -> Option<String> {
    catalog
        .scopes()
        .iter()
        .map(|s| (strsim::levenshtein(id, &s.id), &s.id))
        .filter(|(d, _)| *d <= 3.max(id.len() / 4))
        .min()
        .map(|(_, s)| s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.1.2.0/24").unwrap(), "10.1.2.0/24");
        assert!(parse_cidr("10.1.2.3/24").unwrap_err().contains("host bits"));
        assert!(parse_cidr("10.1.0.0/23")
            .unwrap_err()
            .contains("/24 to /32"));
        assert!(parse_cidr("hello").is_err());
    }
}
