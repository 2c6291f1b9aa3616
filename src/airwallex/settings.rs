//! How to reach Airwallex (`[airwallex]` in the config, validated there): the base URL, the
//! extra hosts a key may be sent to, timeouts and retries. It lives here, beside the client that
//! obeys it, so the client never needs the config module.

/// How to reach Airwallex.
#[derive(Debug, Clone)]
pub struct AirwallexConfig {
    /// Set by config or `AWXGUARD_AIRWALLEX_URL`; `None` means the documented hosts.
    pub base_url: Option<String>,
    /// Hosts other than Airwallex's documented ones (and loopback) that a key may be sent to,
    /// over HTTPS: a forward proxy, an API gateway. Every report that used one names it.
    pub allow_hosts: Vec<String>,
    pub timeout_ms: u64,
    pub retries: u32,
    pub retry_base_ms: u64,
}

impl Default for AirwallexConfig {
    fn default() -> Self {
        AirwallexConfig {
            base_url: None,
            allow_hosts: Vec::new(),
            timeout_ms: 10_000,
            retries: 4,
            retry_base_ms: 1_000,
        }
    }
}
