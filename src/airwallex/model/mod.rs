//! The Airwallex model every capability shares: the scope catalog and route matching, key
//! environments and tiers, the API hosts, and token claims. It sits below its users (usage,
//! inventory, privilege, the proxy, the watch) so they all import it downwards.

pub mod catalog;
pub mod host;
pub mod jwt;
pub mod key;

pub use catalog::{Access, Catalog, CatalogError, RouteMatch, RouteRef, Scope};
pub use host::{host_environment, PRODUCTION_URL, SANDBOX_URLS};
pub use jwt::jwt_claims;
pub use key::{tier_scopes, Environment, KeyKind};
