//! The scope catalog (`rules/scopes.toml`, built from the shared Airwallex catalog) and a matcher
//! from a request (method + path with IDs in it) to the narrowest scope that allows it. Routes
//! the catalog does not know are reported as unknown, never silently mapped.

use serde::Deserialize;
use std::collections::HashMap;

/// The embedded catalog.
pub const BUILTIN_CATALOG: &str = include_str!("../../../rules/scopes.toml");

#[derive(Debug, Deserialize)]
struct RawCatalog {
    scope: Vec<RawScope>,
}

#[derive(Debug, Deserialize)]
struct RawScope {
    id: String,
    product: String,
    access: String,
    #[serde(default)]
    api_key_label_guess: Option<String>,
    risk: String,
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default)]
    endpoints_unverified: Vec<String>,
    #[serde(default)]
    notes: Option<String>,
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

/// One scope of the catalog.
#[derive(Debug, Clone)]
pub struct Scope {
    pub id: String,
    pub product: String,
    pub access: Access,
    /// How the web app labels the permission ("Payouts > Transfers > Write"); inferred.
    pub label: Option<String>,
    /// This project's triage label: low, medium, high.
    pub risk: String,
    /// `METHOD /path/{param}` templates, verified against Airwallex's API spec.
    pub endpoints: Vec<String>,
    /// Templates taken from third parties or inferred.
    pub endpoints_unverified: Vec<String>,
    pub notes: Option<String>,
}

impl Scope {
    /// The resource part of the id: `transfer` for `transfer:write`.
    pub fn resource(&self) -> &str {
        self.id.split(':').next().unwrap_or(&self.id)
    }
}

/// A request matched to a catalog route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// `METHOD /api/v1/transfers/{id}`.
    pub template: String,
    /// The narrowest scope allowing it; `None` for the login call, which needs no scope.
    pub scope: Option<String>,
    /// Whether the template is verified against Airwallex's spec.
    pub verified: bool,
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    segments: Vec<Option<String>>,
    template: String,
    scope: Option<String>,
    access: Option<Access>,
    verified: bool,
}

impl Route {
    fn literal_count(&self) -> usize {
        self.segments.iter().filter(|s| s.is_some()).count()
    }
}

/// The catalog with its route index.
#[derive(Debug, Clone)]
pub struct Catalog {
    scopes: Vec<Scope>,
    by_id: HashMap<String, usize>,
    /// (method, segment count, first three segments joined) -> routes.
    index: HashMap<(String, usize, String), Vec<Route>>,
    /// Method -> segment count -> third segment (`transfers` in `/api/v1/transfers/...`; empty
    /// for shorter paths) -> routes: the same routes, for lookups without allocation.
    by_shape: HashMap<String, Vec<ByThird>, FxBuild>,
}

/// Routes of one method and segment count, by their third segment.
type ByThird = HashMap<String, Vec<Route>, FxBuild>;

/// FxHash (rustc's hasher): fast for short keys we choose ourselves (route segments, key names).
/// Not for keys an attacker picks to collide.
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }
    fn write_u128(&mut self, v: u128) {
        self.write(&v.to_le_bytes());
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds `Fx` hashers.
pub type FxBuild = std::hash::BuildHasherDefault<Fx>;

/// A request matched to a catalog route, borrowed from the catalog (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRef<'a> {
    /// `METHOD /api/v1/transfers/{id}`.
    pub template: &'a str,
    /// The narrowest scope allowing it; `None` for the login call.
    pub scope: Option<&'a str>,
    pub verified: bool,
}

/// Why the catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("scope catalog {path}: {message}")]
pub struct CatalogError {
    pub path: String,
    pub message: String,
}

fn split_path(path: &str) -> Vec<&str> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

fn bucket(method: &str, segments: &[&str]) -> (String, usize, String) {
    (
        method.to_ascii_uppercase(),
        segments.len(),
        segments
            .iter()
            .take(3)
            .copied()
            .collect::<Vec<_>>()
            .join("/"),
    )
}

impl Catalog {
    /// The built-in catalog.
    pub fn builtin() -> Catalog {
        Catalog::builtin_ref().clone()
    }

    /// The built-in catalog, parsed once per process.
    pub fn builtin_ref() -> &'static Catalog {
        static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::parse("rules/scopes.toml", BUILTIN_CATALOG)
                .expect("built-in catalog is valid (tested)")
        })
    }

    pub fn parse(path: &str, text: &str) -> Result<Catalog, CatalogError> {
        let err = |message: String| CatalogError {
            path: path.to_string(),
            message,
        };
        let raw: RawCatalog = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut scopes = Vec::new();
        let mut by_id = HashMap::new();
        let mut index: HashMap<(String, usize, String), Vec<Route>> = HashMap::new();
        for r in raw.scope {
            let access = match r.access.as_str() {
                "read" => Access::Read,
                "write" => Access::Write,
                other => {
                    return Err(err(format!(
                        "scope {}: access {other:?} is not read or write",
                        r.id
                    )))
                }
            };
            if by_id.insert(r.id.clone(), scopes.len()).is_some() {
                return Err(err(format!("scope {} is listed twice", r.id)));
            }
            for (list, verified) in [(&r.endpoints, true), (&r.endpoints_unverified, false)] {
                for e in list {
                    let (method, p) = e.split_once(' ').ok_or_else(|| {
                        err(format!(
                            "scope {}: endpoint {e:?} is not `METHOD /path`",
                            r.id
                        ))
                    })?;
                    let segs = split_path(p);
                    let route = Route {
                        method: method.to_string(),
                        segments: segs
                            .iter()
                            .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                            .collect(),
                        template: format!("{method} /{}", segs.join("/")),
                        scope: Some(r.id.clone()),
                        access: Some(access),
                        verified,
                    };
                    index.entry(bucket(method, &segs)).or_default().push(route);
                }
            }
            scopes.push(Scope {
                id: r.id,
                product: r.product,
                access,
                label: r.api_key_label_guess,
                risk: r.risk,
                endpoints: r.endpoints,
                endpoints_unverified: r.endpoints_unverified,
                notes: r.notes,
            });
        }
        let login = split_path(crate::airwallex::LOGIN_PATH);
        index
            .entry(bucket("POST", &login))
            .or_default()
            .push(Route {
                method: "POST".into(),
                segments: login.iter().map(|s| Some(s.to_string())).collect(),
                template: format!("POST {}", crate::airwallex::LOGIN_PATH),
                scope: None,
                access: None,
                verified: true,
            });
        let mut by_shape: HashMap<String, Vec<ByThird>, FxBuild> = HashMap::default();
        for routes in index.values() {
            for r in routes {
                let by_len = by_shape.entry(r.method.to_ascii_uppercase()).or_default();
                if by_len.len() <= r.segments.len() {
                    by_len.resize(r.segments.len() + 1, HashMap::default());
                }
                // a parameter among the first three segments never matches (see `bucket`)
                let third = match r.segments.get(2) {
                    Some(Some(s)) => s.clone(),
                    Some(None) => continue,
                    None => String::new(),
                };
                by_len[r.segments.len()]
                    .entry(third)
                    .or_default()
                    .push(r.clone());
            }
        }
        Ok(Catalog {
            scopes,
            by_id,
            index,
            by_shape,
        })
    }

    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    pub fn scope(&self, id: &str) -> Option<&Scope> {
        self.by_id.get(id).map(|&i| &self.scopes[i])
    }

    /// Every scope id.
    pub fn all_ids(&self) -> Vec<String> {
        self.scopes.iter().map(|s| s.id.clone()).collect()
    }

    /// Every read scope id.
    pub fn read_ids(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|s| s.access == Access::Read)
            .map(|s| s.id.clone())
            .collect()
    }

    /// `route` without allocating, for hot loops (the usage reader): the same answer, borrowed.
    pub fn route_ref(&self, method: &str, path: &str) -> Option<RouteRef<'_>> {
        let path = match path.bytes().position(|b| b == b'?' || b == b'#') {
            Some(i) => &path[..i],
            None => path,
        };
        let mut buf: [&str; 24] = [""; 24];
        let mut n = 0;
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if n == buf.len() {
                return None;
            }
            buf[n] = seg;
            n += 1;
        }
        let segs = &buf[..n];
        let by_len = match self.by_shape.get(method) {
            Some(v) => v,
            None => self.by_shape.get(&method.to_ascii_uppercase())?,
        };
        by_len
            .get(n)?
            .get(segs.get(2).copied().unwrap_or(""))?
            .iter()
            .filter(|r| {
                r.segments
                    .iter()
                    .zip(segs)
                    .enumerate()
                    .all(|(i, (t, s))| match t {
                        Some(lit) => lit == s,
                        // the index buckets by the first three segments as written
                        None => i >= 3,
                    })
            })
            .min_by(|a, b| {
                b.literal_count()
                    .cmp(&a.literal_count())
                    .then(a.access.cmp(&b.access))
                    .then(b.verified.cmp(&a.verified))
                    .then(a.scope.cmp(&b.scope))
            })
            .map(|r| RouteRef {
                template: &r.template,
                scope: r.scope.as_deref(),
                verified: r.verified,
            })
    }

    /// The route a request matches and the narrowest scope that allows it: a template with more
    /// literal segments wins; among equals, a read scope before a write scope, a verified
    /// template before an unverified one, then the scope id for a stable answer. `None`: the
    /// catalog does not know this route.
    pub fn route(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let segs = split_path(path);
        let key = bucket(method, &segs);
        let candidates = self.index.get(&key)?;
        candidates
            .iter()
            .filter(|r| {
                r.method.eq_ignore_ascii_case(method)
                    && r.segments
                        .iter()
                        .zip(&segs)
                        .all(|(t, s)| t.as_deref().is_none_or(|lit| lit == *s))
            })
            .min_by(|a, b| {
                b.literal_count()
                    .cmp(&a.literal_count())
                    .then(a.access.cmp(&b.access))
                    .then(b.verified.cmp(&a.verified))
                    .then(a.scope.cmp(&b.scope))
            })
            .map(|r| RouteMatch {
                template: r.template.clone(),
                scope: r.scope.clone(),
                verified: r.verified,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_loads_with_api_key_only_scopes() {
        let c = Catalog::builtin();
        assert!(c.scopes().len() >= 69, "{}", c.scopes().len());
        assert!(c.scope("webhook:write").is_some());
        assert!(c.scope("transfer:write").is_some());
        assert_eq!(c.scope("transfer:write").unwrap().access, Access::Write);
    }

    #[test]
    fn routes_map_to_the_narrowest_scope() {
        let c = Catalog::builtin();
        let get = c
            .route(
                "GET",
                "/api/v1/transfers/3f2a9c1e-0000-4000-8000-1234567890ab",
            )
            .unwrap();
        assert_eq!(get.scope.as_deref(), Some("transfer:read"));
        assert_eq!(get.template, "GET /api/v1/transfers/{id}");
        let create = c.route("post", "/api/v1/transfers/create?x=1").unwrap();
        assert_eq!(create.scope.as_deref(), Some("transfer:write"));
        let ben = c.route("POST", "/api/v1/beneficiaries/create").unwrap();
        assert_eq!(ben.scope.as_deref(), Some("beneficiary:write"));
        let login = c.route("POST", "/api/v1/authentication/login").unwrap();
        assert_eq!(login.scope, None);
        assert!(c.route("GET", "/api/v1/no_such_thing").is_none());
        assert!(c.route("DELETE", "/api/v1/transfers/abc").is_none());
        for (m, p) in [
            ("GET", "/api/v1/transfers/3f2a"),
            ("post", "/api/v1/transfers/create?x=1"),
            ("POST", "/api/v1/beneficiaries/create"),
            ("POST", "/api/v1/authentication/login"),
            ("GET", "/api/v1/no_such_thing"),
            ("DELETE", "/api/v1/transfers/abc"),
            ("GET", "/api/v1/balances/history"),
            ("GET", "/api/v1/webhooks/wh_1"),
            ("GET", "/"),
        ] {
            let a = c.route(m, p);
            let b = c.route_ref(m, p).map(|r| RouteMatch {
                template: r.template.to_string(),
                scope: r.scope.map(str::to_string),
                verified: r.verified,
            });
            assert_eq!(a, b, "{m} {p}");
        }
        for s in c.scopes() {
            for e in s.endpoints.iter().chain(&s.endpoints_unverified) {
                let (m, p) = e.split_once(' ').unwrap();
                let p = p.replace('{', "x").replace('}', "");
                let a = c.route(m, &p);
                let b = c.route_ref(m, &p).map(|r| RouteMatch {
                    template: r.template.to_string(),
                    scope: r.scope.map(str::to_string),
                    verified: r.verified,
                });
                assert_eq!(a, b, "{m} {p}");
            }
        }
        let hook = c.route("POST", "/api/v1/webhooks/wh_123/update").unwrap();
        assert_eq!(hook.scope.as_deref(), Some("webhook:write"));
    }
}
