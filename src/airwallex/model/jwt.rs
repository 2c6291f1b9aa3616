//! Reading a JWT's claims without checking its signature (the signing key is Airwallex's): the
//! scanner uses it to recognise Airwallex access tokens, the client to read what a login token
//! allows.

use base64::Engine;

/// The claims of an HS256 JWT as JSON; `None` when `token` is not one.
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(h).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    serde_json::from_slice(&b64.decode(p).ok()?).ok()
}
