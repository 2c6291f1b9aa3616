//! Where an API key may be sent: the one transport and host rule every login and API call obeys.
//! HTTPS to Airwallex's documented hosts; loopback over HTTP or HTTPS (tests, the simulator, a
//! local awxguard proxy); any other host only over HTTPS and only when `[airwallex] allow_hosts`
//! lists it, and then every report that used it names it. `Client::new` applies the rule, so no
//! request can be built for a URL that breaks it.

use super::model::host::{PRODUCTION_URL, SANDBOX_URLS};

/// What kind of place a base URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// One of Airwallex's documented API hosts, over HTTPS.
    Airwallex,
    /// This machine (127.0.0.0/8, ::1, localhost).
    Loopback,
    /// A host the config lists in `[airwallex] allow_hosts` (the entry that matched).
    Allowed(String),
}

/// Why a URL may not receive a key. Nothing has been sent when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("{url} is not an http(s) URL; e.g. https://api.airwallex.com")]
    BadUrl { url: String },
    #[error(
        "refusing to send API keys over plain HTTP to {url}: use an https:// base URL (plain \
         http is accepted only for a test server on loopback)"
    )]
    PlainHttp { url: String },
    #[error(
        "refusing to send API keys to {host} ({url}): it is neither an Airwallex API host \
         (api.airwallex.com, api-demo.airwallex.com, api.sandbox.airwallex.com) nor loopback; if \
         it is your gateway or proxy, add \"{host}\" to [airwallex] allow_hosts"
    )]
    UnlistedHost { url: String, host: String },
}

/// The documented Airwallex API host names.
fn airwallex_hosts() -> impl Iterator<Item = &'static str> {
    std::iter::once(PRODUCTION_URL)
        .chain(SANDBOX_URLS.iter().copied())
        .map(|u| u.trim_start_matches("https://"))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Applies the rule to `base_url`: where it points, or why no key may go there.
/// `allow_hosts` entries are `host` (any port) or `host:port`, lower case.
pub fn check(base_url: &str, allow_hosts: &[String]) -> Result<Destination, TransportError> {
    let bad = || TransportError::BadUrl {
        url: base_url.to_string(),
    };
    let url = reqwest::Url::parse(base_url).map_err(|_| bad())?;
    let host = url.host_str().ok_or_else(bad)?.to_ascii_lowercase();
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(bad()),
    };
    if is_loopback(&host) {
        return Ok(Destination::Loopback);
    }
    if !https {
        return Err(TransportError::PlainHttp {
            url: base_url.to_string(),
        });
    }
    if url.port().is_none() && airwallex_hosts().any(|h| h == host) {
        return Ok(Destination::Airwallex);
    }
    let with_port = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    match allow_hosts
        .iter()
        .find(|a| a.as_str() == host || a.as_str() == with_port)
    {
        Some(a) => Ok(Destination::Allowed(a.clone())),
        None => Err(TransportError::UnlistedHost {
            url: base_url.to_string(),
            host: with_port,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_over_https_to_airwallex_loopback_or_a_listed_host_only() {
        let none: &[String] = &[];
        let listed = [
            "gw.example.com".to_string(),
            "proxy.example.com:8443".to_string(),
        ];
        assert_eq!(
            check("https://api.airwallex.com", none),
            Ok(Destination::Airwallex)
        );
        assert_eq!(
            check("https://api-demo.airwallex.com/", none),
            Ok(Destination::Airwallex)
        );
        for u in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
            "https://127.0.0.2",
        ] {
            assert_eq!(check(u, none), Ok(Destination::Loopback), "{u}");
        }
        assert!(matches!(
            check("http://api.airwallex.com", none),
            Err(TransportError::PlainHttp { .. })
        ));
        assert!(matches!(
            check("http://gw.example.com", &listed),
            Err(TransportError::PlainHttp { .. })
        ));
        assert!(matches!(
            check("https://example.invalid", none),
            Err(TransportError::UnlistedHost { .. })
        ));
        assert!(matches!(
            check("https://api.airwallex.com.evil.example", none),
            Err(TransportError::UnlistedHost { .. })
        ));
        assert_eq!(
            check("https://GW.example.com:444/x", &listed),
            Ok(Destination::Allowed("gw.example.com".into()))
        );
        assert_eq!(
            check("https://proxy.example.com:8443", &listed),
            Ok(Destination::Allowed("proxy.example.com:8443".into()))
        );
        assert!(check("https://proxy.example.com", &listed).is_err());
        assert!(matches!(
            check("ftp://api.airwallex.com", none),
            Err(TransportError::BadUrl { .. })
        ));
        let msg = check("https://example.invalid", none)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("allow_hosts"), "{msg}");
    }

    #[test]
    fn keys_go_over_plain_http_only_to_loopback() {
        // moved from scan::verify (check_transport), with the host rule's allow list empty
        let check_transport = |hosts: &[String]| -> Result<(), TransportError> {
            hosts.iter().try_for_each(|u| check(u, &[]).map(|_| ()))
        };
        let h = |u: &str| vec![u.to_string()];
        assert!(check_transport(&h("https://api.airwallex.com")).is_ok());
        assert!(check_transport(&h("http://127.0.0.1:8080")).is_ok());
        assert!(check_transport(&h("http://localhost:8080")).is_ok());
        assert!(check_transport(&h("http://[::1]:8080")).is_ok());
        assert!(check_transport(&h("http://api.airwallex.com")).is_err());
        assert!(check_transport(&h("http://10.0.0.5")).is_err());
        assert!(check_transport(&[
            "https://api.airwallex.com".into(),
            "https://api-demo.airwallex.com".into(),
            "https://api.sandbox.airwallex.com".into()
        ])
        .is_ok());
    }
}
