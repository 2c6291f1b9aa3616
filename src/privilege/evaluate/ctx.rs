//! What every check gets: one key with its facts, its usage evidence (what is evidence of need
//! and what was screened out), its scopes, the replacement key, the template values, and what
//! whoever holds the key can do with it (`Reach`).

use super::*;

/// One key with what every evaluator needs.
pub(super) struct KeyCtx<'a> {
    pub(super) f: &'a KeyFacts,
    /// The key's calls that are evidence of need (allowed and expected).
    pub(super) usage: Option<KeyUsage>,
    /// The key's calls that are not (`usage::screen`): reported, never learnt from.
    pub(super) screened: Option<Screened>,
    pub(super) evidence: Option<&'a Evidence>,
    pub(super) catalog: &'a Catalog,
    pub(super) now: DateTime<Utc>,
    pub(super) scopes: Vec<String>,
    pub(super) replacement: Replacement,
}

pub(super) fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// A list for a sentence, cut after `max` items.
pub(super) fn short_list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        list(items)
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

/// What whoever holds a key can do with it: it decides how a leak is told and cleaned up
/// (a key that can only read is not "can move money", issue 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reach {
    /// Admin, or a write scope the catalog marks high risk (transfers, payees, conversions, ...).
    Money,
    /// Write scopes, none of them moving money.
    Write(Vec<String>),
    /// Only reads.
    Read(Vec<String>),
    /// A key nobody declared, whose token did not say: what it can do is not known.
    Unknown,
}

/// What a login said, for a sentence (`; it logs in live: ...`), empty when not verified.
pub(super) fn login_state(verification: Option<Verification>, reach: &Reach) -> String {
    match verification {
        Some(Verification::Live) => match reach {
            Reach::Money => "; it logs in live: whoever finds it can move money with it now".into(),
            Reach::Write(w) => format!(
                "; it logs in live: whoever finds it can write with it now ({})",
                short_list(w, 5)
            ),
            Reach::Read(r) => format!(
                "; it logs in live: whoever finds it can read with it now ({})",
                short_list(r, 5)
            ),
            Reach::Unknown => {
                "; it logs in live: whoever finds it can use it now (what it may do is \
                 declared nowhere)"
                    .into()
            }
        },
        Some(Verification::Revoked) => "; its login answered 401 (revoked or regenerated)".into(),
        Some(Verification::Forbidden) => {
            "; its login answered 403 (it exists, but an IP whitelist or permission refused the call)"
                .into()
        }
        Some(Verification::Unknown) => "; whether it still logs in is unknown".into(),
        None => String::new(),
    }
}

/// What to check after a leak, by what the key could do.
pub(super) fn leak_check(reach: &Reach) -> String {
    match reach {
        Reach::Money | Reach::Unknown => "Check money movement since the leak: run `awxguard \
            watch` (with a read-only key) or list GET /api/v1/transfers, /api/v1/beneficiaries \
            and /api/v1/webhooks, and look for anything you did not do"
            .into(),
        Reach::Write(w) => format!(
            "Check what its write scopes ({}) could have changed since the leak, in the \
             Airwallex web app or through the API (webhooks: GET /api/v1/webhooks), and undo \
             anything you did not do",
            short_list(w, 5)
        ),
        Reach::Read(r) => format!(
            "It could only read ({}): treat what those scopes show as seen by whoever found it",
            short_list(r, 5)
        ),
    }
}

/// A window for people, as the anomaly findings write it (`2026-11-20 10:15-10:40 UTC`).
pub(super) fn human_window(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    crate::usage::detect::human_window(start.timestamp(), end.timestamp())
}

pub(super) fn is_admin_perms(p: &[String]) -> bool {
    ADMIN_PERMISSIONS.iter().all(|a| p.iter().any(|q| q == a))
}

impl<'a> KeyCtx<'a> {
    pub(super) fn new(
        f: &'a KeyFacts,
        evidence: Option<&'a Evidence>,
        catalog: &'a Catalog,
        now: DateTime<Utc>,
    ) -> KeyCtx<'a> {
        let usage = evidence.and_then(|e| e.usage_of(&f.name, f.fingerprint.as_deref()));
        let screened = evidence
            .and_then(|e| e.screened_of(&f.name, f.fingerprint.as_deref()))
            .filter(|s| s.calls > 0);
        let scopes = if f.declared_scopes.is_empty() {
            tier_scopes(f.kind, &[], catalog)
        } else {
            f.declared_scopes.clone()
        };
        let mut replacement = recommend::replacement(f, usage.as_ref(), catalog);
        if let Some(s) = &screened {
            replacement.basis.push_str(&format!(
                "; {} call(s) screened out (outside the IP whitelist, needing undeclared \
                 scopes or inside open anomalies): reported, not evidence of need",
                s.calls
            ));
        }
        KeyCtx {
            f,
            usage,
            screened,
            evidence,
            catalog,
            now,
            scopes,
            replacement,
        }
    }

    pub(super) fn permissions(&self) -> Option<&[String]> {
        self.f.login.as_ref()?.permissions.as_deref()
    }

    /// Declared admin, or a token with the admin strings on a key not declared read_write
    /// (a read_write key has read and write on everything; how its token looks is not
    /// documented, so the same strings prove nothing there: privilege.declared-mismatch says so).
    pub(super) fn is_admin(&self) -> bool {
        self.f.kind == KeyKind::Admin
            || (self.f.kind != KeyKind::ReadWrite && self.permissions().is_some_and(is_admin_perms))
    }

    pub(super) fn access(&self, scope: &str) -> Option<Access> {
        self.catalog.scope(scope).map(|s| s.access)
    }

    pub(super) fn write_scopes(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|s| self.access(s) == Some(Access::Write))
            .cloned()
            .collect()
    }

    pub(super) fn has_scope(&self, s: &str) -> bool {
        self.is_admin() || self.scopes.iter().any(|x| x == s)
    }

    /// The common template values.
    pub(super) fn vars(&self) -> BTreeMap<&'static str, String> {
        let f = self.f;
        let mut v = BTreeMap::new();
        v.insert("key", f.name.clone());
        v.insert("environment", f.environment.as_str().to_string());
        v.insert("kind", f.kind.as_str().to_string());
        v.insert(
            "owner",
            f.owner
                .clone()
                .unwrap_or_else(|| "the key's owner".to_string()),
        );
        v.insert(
            "integration",
            f.integration
                .clone()
                .unwrap_or_else(|| "the integration".to_string()),
        );
        v.insert("integration_place", recommend::integration_place(f));
        let scopes = if f.kind == KeyKind::Custom {
            short_list(&self.scopes, 12)
        } else {
            format!("all {} scopes of the {} tier", self.scopes.len(), v["kind"])
        };
        v.insert("scopes", scopes);
        v.insert("replacement_name", self.replacement.name.clone());
        v.insert(
            "replacement_scopes",
            if self.usage.is_some() {
                if self.replacement.scopes.is_empty() {
                    "no scope (the evidence shows only calls that need none)".to_string()
                } else {
                    self.replacement.scopes.join(", ")
                }
            } else {
                "not known: no usage evidence for this key; collect its calls and run `awxguard audit --usage FILE` first".to_string()
            },
        );
        v.insert(
            "replacement_ips",
            if self.replacement.ip_whitelist.is_empty() {
                "the addresses the integration calls from (none observed or declared)".to_string()
            } else {
                self.replacement.ip_whitelist.join(", ")
            },
        );
        v.insert(
            "permissions",
            self.permissions()
                .map(list)
                .unwrap_or_else(|| "not known".to_string()),
        );
        v.insert(
            "declared_at",
            f.declaration().unwrap_or("the config").to_string(),
        );
        if let Some(u) = &self.usage {
            v.insert("coverage_start", day(u.coverage_start));
            v.insert("first_seen", day(u.first_seen));
            v.insert("last_seen", day(u.last_seen));
            v.insert("events", u.events.to_string());
        } else if let Some(s) = &self.screened {
            v.insert(
                "last_seen",
                format!(
                    "never, besides {} call(s) that are not evidence of need, reported separately",
                    s.calls
                ),
            );
        } else {
            v.insert("last_seen", "never".to_string());
        }
        let reach = self.reach();
        v.insert(
            "login_state",
            login_state(f.login.as_ref().map(|l| l.verification), &reach),
        );
        v.insert("revoke_now", self.revoke_now());
        v.insert("leak_check", leak_check(&reach));
        v
    }

    /// What whoever holds the key can do with it: from its token when that says admin, else
    /// from its declared scopes (a key nobody declared: not known).
    pub(super) fn reach(&self) -> Reach {
        if self.is_admin() {
            return Reach::Money;
        }
        if !self.f.declared {
            return Reach::Unknown;
        }
        let writes = self.write_scopes();
        let money = writes.iter().any(|s| {
            self.catalog
                .scope(s)
                .is_some_and(|c| c.risk == "high" && c.access == Access::Write)
        });
        match (money, writes.is_empty()) {
            (true, _) => Reach::Money,
            (false, false) => Reach::Write(writes),
            (false, true) => Reach::Read(self.scopes.clone()),
        }
    }

    /// How to kill the key now: regenerating is documented for admin keys (it kills the old key
    /// at once); any other key is deleted and replaced.
    pub(super) fn revoke_now(&self) -> String {
        let (key, env) = (&self.f.name, self.f.environment.as_str());
        if self.is_admin() {
            format!(
                "revoke or regenerate {key} in Settings > Developer > API keys ({env}); \
                 regenerating an admin key kills the old one at once"
            )
        } else {
            format!(
                "delete {key} in Settings > Developer > API keys ({env}) and create the key \
                 that replaces it there"
            )
        }
    }

    /// The start of a `days` window, when the key existed for all of it and the evidence covers
    /// it; else why it cannot be judged.
    pub(super) fn window(&self, days: i64) -> Result<DateTime<Utc>, String> {
        let start = self.now - crate::clock::days(days);
        if let Some(c) = self.f.created {
            if c > start.date_naive() {
                return Err(format!(
                    "the key was created {c}, less than {days} days ago"
                ));
            }
        }
        match (&self.usage, self.evidence) {
            (_, None) => Err("no usage evidence for this key".to_string()),
            (Some(u), _) if u.coverage_start <= start => Ok(start),
            (Some(u), _) => Err(format!(
                "usage evidence for this key starts {}, less than {days} days ago",
                day(u.coverage_start)
            )),
            (None, Some(_)) => Err("no usage evidence for this key".to_string()),
        }
    }

    pub(super) fn narrow_evidence(&self) -> Value {
        let u = self.usage.as_ref();
        json!({
            "declared_scopes": self.scopes.len(),
            "used_scopes": u.map(|u| u.scopes_used.keys().cloned().collect::<Vec<_>>()),
            "events": u.map(|u| u.events),
            "sample_routes": u.map(|u| u.routes.keys().take(10).cloned().collect::<Vec<_>>()),
            "window": u.map(|u| json!({"coverage_start": u.coverage_start, "last_seen": u.last_seen})),
        })
    }
}
