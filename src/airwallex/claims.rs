//! What a login token says about its key. Claims are read without checking the signature (the
//! signing key is Airwallex's); they tell what the key can really do.

use serde::{Deserialize, Serialize};

/// The claims of an Airwallex access token, as far as they are known (FACTS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub dc: Option<String>,
    #[serde(default)]
    pub data_center_region: Option<String>,
    #[serde(default)]
    pub issdc: Option<String>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// Full access, as a full-access (admin) key's token shows it.
pub const ADMIN_PERMISSIONS: [&str; 2] = ["r:awx:*:*", "w:awx:*:*"];

impl Claims {
    /// Decodes the claims of a JWT; `None` when the token is not a readable JWT.
    pub fn decode(token: &str) -> Option<Claims> {
        let v = super::model::jwt_claims(token)?;
        serde_json::from_value(v).ok()
    }

    /// Whether the permissions grant full access (read and write on everything).
    pub fn is_admin(&self) -> bool {
        ADMIN_PERMISSIONS
            .iter()
            .all(|p| self.permissions.iter().any(|q| q == p))
    }
}
