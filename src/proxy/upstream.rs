//! The upstream: one URL obeying the Airwallex client's host rule (HTTPS to a documented
//! Airwallex host, loopback for tests and the simulator, or a host named in
//! `[airwallex] allow_hosts`), and the connector that opens connections to it (TCP_NODELAY,
//! keep-alive; rustls with the ring provider and the webpki roots plus any CA the config adds;
//! the connections themselves are the lanes', `lane`).

use http::uri::{Authority, Scheme};
use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::PathBuf;
use std::time::Duration;

/// Why the upstream cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("upstream CA file {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
}

/// A validated upstream URL.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path prefix (`""` for `https://api.airwallex.com`).
    pub prefix: String,
    /// `host[:port]` as events record it.
    pub host: String,
    /// The `Host` header sent upstream.
    pub host_header: http::HeaderValue,
}

impl Upstream {
    /// Parses and checks `url` against the host rule: `https://` to a documented Airwallex host
    /// or a host in `allow_hosts`; `http://` or `https://` to loopback; nothing else, since the
    /// integration's keys and tokens go there.
    pub fn parse(url: &str, allow_hosts: &[String]) -> Result<Upstream, UpstreamError> {
        let bad = |reason: String| UpstreamError::Url {
            url: url.to_string(),
            reason,
        };
        let uri: Uri = url
            .trim_end_matches('/')
            .parse()
            .map_err(|e| bad(format!("not a URL: {e}")))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| bad("no scheme; write https://api.airwallex.com".into()))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| bad("no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not allowed".into()));
        }
        if uri.query().is_some() {
            return Err(bad("a query string is not allowed".into()));
        }
        // The one transport and host rule every caller that sends keys obeys.
        crate::airwallex::transport::check(url.trim_end_matches('/'), allow_hosts)
            .map_err(|e| bad(e.to_string()))?;
        let host_header = http::HeaderValue::from_str(authority.as_str())
            .map_err(|e| bad(format!("host: {e}")))?;
        Ok(Upstream {
            host_header,
            url: url.trim_end_matches('/').to_string(),
            host: authority.as_str().to_string(),
            prefix: uri.path().trim_end_matches('/').to_string(),
            scheme,
            authority,
        })
    }

    /// The upstream URI of a request's path and query.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let pq = if self.prefix.is_empty() {
            path_and_query.to_string()
        } else {
            format!("{}{path_and_query}", self.prefix)
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }

    /// The request target upstream of a request's target (origin form, the upstream's path
    /// prefix first). Without a prefix an origin-form target is sent as it came.
    pub fn origin(&self, target: &Uri) -> Result<Uri, http::Error> {
        if self.prefix.is_empty() && target.scheme().is_none() && target.authority().is_none() {
            return Ok(target.clone());
        }
        let pq = target.path_and_query().map_or("/", |pq| pq.as_str());
        Uri::builder()
            .path_and_query(format!("{}{pq}", self.prefix))
            .build()
    }

    /// The URI a connector dials (scheme and authority).
    pub fn dial_target(&self) -> Uri {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .expect("a validated upstream")
    }

    /// `host:port` to connect to (for the egress-address check).
    pub fn socket_target(&self) -> String {
        let port = self
            .authority
            .port_u16()
            .unwrap_or(if self.scheme == Scheme::HTTPS {
                443
            } else {
                80
            });
        let host = self.authority.host();
        format!("{host}:{port}")
    }
}

/// Opens connections to the upstream: TCP, then TLS for `https`.
pub type Connector = HttpsConnector<HttpConnector>;

/// Builds the connector: TLS with rustls (ring), the webpki roots and the PEM certificates of
/// `extra_ca` (a private CA, or a test's self-signed certificate), HTTP/1.1 (ALPN).
pub fn connector(
    extra_ca: &[PathBuf],
    connect_timeout: Duration,
) -> Result<Connector, UpstreamError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_ca {
        let ca = |reason: String| UpstreamError::Ca {
            path: path.clone(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca("no PEM certificate in it".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| ca(e.to_string()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Url {
            url: String::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_rule() {
        assert!(Upstream::parse("https://api.airwallex.com", &[]).is_ok());
        assert!(Upstream::parse("https://api-demo.airwallex.com/", &[]).is_ok());
        assert!(Upstream::parse("http://127.0.0.1:8787", &[]).is_ok());
        assert!(Upstream::parse("https://localhost:8443", &[]).is_ok());
        assert!(Upstream::parse("http://[::1]:80", &[]).is_ok());
        let e = Upstream::parse("http://api.airwallex.com", &[]).unwrap_err();
        assert!(e.to_string().contains("plain HTTP"), "{e}");
        let e = Upstream::parse("https://gateway.example.com", &[]).unwrap_err();
        assert!(e.to_string().contains("allow_hosts"), "{e}");
        assert!(Upstream::parse(
            "https://gateway.example.com",
            &["gateway.example.com".into()]
        )
        .is_ok());
        assert!(Upstream::parse(
            "http://gateway.example.com",
            &["gateway.example.com".into()]
        )
        .is_err());
        assert!(Upstream::parse("https://api.airwallex.com.evil.example", &[]).is_err());
        assert!(Upstream::parse("ftp://127.0.0.1", &[]).is_err());
        let u = Upstream::parse(
            "https://gw.example.com/airwallex/",
            &["gw.example.com".into()],
        )
        .unwrap();
        assert_eq!(
            u.uri("/api/v1/transfers?page=2").unwrap().to_string(),
            "https://gw.example.com/airwallex/api/v1/transfers?page=2"
        );
        assert_eq!(u.socket_target(), "gw.example.com:443");
    }
}
