//! Airwallex's API hosts and which environment each belongs to.

/// Production API host.
pub const PRODUCTION_URL: &str = "https://api.airwallex.com";
/// Sandbox API hosts (both appear in Airwallex's docs).
pub const SANDBOX_URLS: &[&str] = &[
    "https://api-demo.airwallex.com",
    "https://api.sandbox.airwallex.com",
];

/// `production` or `sandbox` for an Airwallex API host (with or without scheme and port);
/// `None` for any other host (a proxy, the local simulator).
pub fn host_environment(host: &str) -> Option<&'static str> {
    let h = host
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let h = h
        .split(['/', ':'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match h.as_str() {
        "api.airwallex.com" => Some("production"),
        "api-demo.airwallex.com" | "api.sandbox.airwallex.com" => Some("sandbox"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_tell_the_environment() {
        assert_eq!(host_environment("api.airwallex.com"), Some("production"));
        assert_eq!(
            host_environment("https://API-DEMO.airwallex.com/api/v1"),
            Some("sandbox")
        );
        assert_eq!(
            host_environment("api.sandbox.airwallex.com:443"),
            Some("sandbox")
        );
        assert_eq!(host_environment("127.0.0.1:8080"), None);
        assert_eq!(host_environment("api.airwallex.com.evil.example"), None);
    }
}
