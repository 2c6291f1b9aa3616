//! Talking to Airwallex: the model (scope catalog and route matching, environments, key tiers,
//! hosts, token claims), the HTTP client (base URL from config, timeouts, retries with
//! exponential backoff and jitter), the login call, and a local simulator that speaks the same
//! wire format for tests and the demo.

pub mod claims;
pub mod client;
pub mod login;
pub mod model;
pub mod settings;
pub mod simulator;
pub mod transport;

pub use claims::Claims;
pub use client::{Client, ClientSettings, Error, LoginOutcome, Token};
pub use model::{
    host_environment, jwt_claims, tier_scopes, Access, Catalog, Environment, KeyKind,
    PRODUCTION_URL, SANDBOX_URLS,
};
pub use settings::AirwallexConfig;
/// The login path.
pub const LOGIN_PATH: &str = "/api/v1/authentication/login";

/// Airwallex's timestamp format: `2021-10-26T06:38:13+0000` (offset without a colon).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%z";

/// Parses an Airwallex timestamp; accepts RFC 3339 too, since the API has used both.
pub fn parse_timestamp(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_str(s, TIMESTAMP_FORMAT)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
}

/// Formats a time the way Airwallex writes it.
pub fn format_timestamp<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.format(TIMESTAMP_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_without_colon_parse() {
        let t = parse_timestamp("2021-10-26T06:38:13+0000").unwrap();
        assert_eq!(t.timestamp(), 1635230293);
        assert_eq!(format_timestamp(&t), "2021-10-26T06:38:13+0000");
        assert!(parse_timestamp("2021-10-26T06:38:13Z").is_some());
        assert!(parse_timestamp("yesterday").is_none());
    }
}
