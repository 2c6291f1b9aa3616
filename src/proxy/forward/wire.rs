//! HTTP plumbing of the forwarding: hop-by-hop headers, header lookups, the proxy's own
//! Airwallex-style answers, and error texts with their causes.

use crate::proxy::body::Body;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use serde_json::json;

pub(super) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, and those the `Connection` header names.
pub(super) fn strip_hop_by_hop(h: &mut HeaderMap) {
    // one pass over the names present (most messages carry none of them) instead of a hashed
    // removal per name
    if !h.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    if let Some(c) = h.get(header::CONNECTION) {
        if let Ok(list) = c.to_str() {
            let named: Vec<HeaderName> = list
                .split(',')
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect();
            for n in named {
                h.remove(n);
            }
        }
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
}

pub(super) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub(super) const X_ON_BEHALF_OF: HeaderName = HeaderName::from_static("x-on-behalf-of");
pub(super) const X_LOGIN_AS: HeaderName = HeaderName::from_static("x-login-as");

/// A header's value as text (names as constants: a `&str` name is parsed on every lookup).
pub(super) fn header_str<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// An Airwallex-style JSON answer made by the proxy itself.
pub(super) fn answer(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = json!({"code": code, "message": message}).to_string();
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An error with its causes (hyper's client errors say little on their own).
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-api-version", HeaderValue::from_static("2025-02-14"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-api-version"));
    }
}
