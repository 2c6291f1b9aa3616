//! One section per key: the inventory's declaration joined with what the last audit observed
//! (`store::keys`), and each finding as the key's section shows it.

use super::*;

/// The key row the audit stored (`inventory::KeyRow` as JSON), read tolerantly: what the
/// report shows and nothing it does not.
#[derive(Debug, Clone, Default, Deserialize)]
struct ObservedKey {
    #[serde(default)]
    declared: bool,
    environment: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    scope_count: usize,
    owner: Option<String>,
    purpose: Option<String>,
    integration: Option<String>,
    created: Option<NaiveDate>,
    rotated: Option<NaiveDate>,
    #[serde(default)]
    ip_whitelist: Vec<String>,
    last_used: Option<DateTime<Utc>>,
    status: Option<String>,
    permissions: Option<Vec<String>>,
    effective: Option<String>,
    login_detail: Option<String>,
    fingerprint: Option<String>,
    storage: Option<ObservedStorage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ObservedStorage {
    /// `"env"`, or the inventory's `{"type": "file", "path": ...}` / `{"type": "env", "var": ...}`.
    source: Option<serde_json::Value>,
}

impl ObservedStorage {
    /// Where the secret is kept, in words: `file /etc/payvy.key`, `env PAYVY_KEY`.
    fn describe(&self) -> Option<String> {
        match self.source.as_ref()? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => {
                let kind = o.get("type").and_then(|v| v.as_str()).unwrap_or("stored");
                let at = ["path", "var", "name"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(|v| v.as_str()));
                Some(match at {
                    Some(at) => format!("{kind} {at}"),
                    None => kind.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// A key that only findings name.
pub(super) fn bare_key(name: &str) -> KeySection {
    KeySection {
        name: name.into(),
        declared: false,
        environment: None,
        kind: None,
        scopes_declared: Vec::new(),
        scopes_summary: "unknown (not in the inventory)".into(),
        permissions: None,
        effective: None,
        owner: None,
        purpose: None,
        integration: None,
        created: None,
        age_days: None,
        rotated: None,
        rotated_days_ago: None,
        ip_whitelist: Vec::new(),
        last_used: None,
        verification: None,
        fingerprint: name.starts_with("sha256:").then(|| name.to_string()),
        storage: None,
        risk: None,
        leaked: false,
        findings: Vec::new(),
        usage: None,
    }
}

fn scopes_summary(kind: Option<&str>, scopes: &[String], count: usize) -> String {
    match kind {
        Some("custom") => match scopes.len() {
            1 => "custom: 1 scope".into(),
            n => format!("custom: {n} scopes"),
        },
        Some("admin") => format!("admin: every scope ({count})"),
        Some("read_write") => format!("read_write: every scope ({count})"),
        Some("read_only") => format!("read_only: every read scope ({count})"),
        Some(other) => other.to_string(),
        None => "unknown".into(),
    }
}

/// The key sections: the declared keys (config), with what the last audit observed; then the
/// keys only the audit saw (undeclared).
pub(super) fn key_sections(
    config: &Config,
    records: &[KeyRecord],
    now: DateTime<Utc>,
) -> Vec<KeySection> {
    let today = now.date_naive();
    let observed: HashMap<&str, (ObservedKey, &KeyRecord)> = records
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                (serde_json::from_value(r.row.clone()).unwrap_or_default(), r),
            )
        })
        .collect();
    let catalog = crate::airwallex::Catalog::builtin_ref();
    let mut out = Vec::new();
    let section = |name: &str,
                   o: Option<&(ObservedKey, &KeyRecord)>,
                   decl: Option<&crate::config::KeyDecl>| {
        let ob = o.map(|(ob, _)| ob.clone()).unwrap_or_default();
        let environment = decl
            .map(|d| d.environment.as_str().to_string())
            .or(ob.environment.clone());
        let kind = decl
            .map(|d| d.kind.as_str().to_string())
            .or(ob.kind.clone());
        let scopes: Vec<String> = decl.map(|d| d.scopes.clone()).unwrap_or(ob.scopes.clone());
        let count = match decl {
            Some(d) => crate::airwallex::tier_scopes(d.kind, &d.scopes, catalog).len(),
            None => ob.scope_count,
        };
        let created = decl.and_then(|d| d.created).or(ob.created);
        let rotated = decl.and_then(|d| d.rotated).or(ob.rotated);
        KeySection {
            name: name.to_string(),
            declared: decl.is_some() || ob.declared,
            scopes_summary: scopes_summary(kind.as_deref(), &scopes, count),
            environment,
            kind,
            scopes_declared: scopes,
            permissions: ob.permissions.clone(),
            effective: ob.effective.clone(),
            owner: decl.and_then(|d| d.owner.clone()).or(ob.owner.clone()),
            purpose: decl.and_then(|d| d.purpose.clone()).or(ob.purpose.clone()),
            integration: decl
                .and_then(|d| d.integration.clone())
                .or(ob.integration.clone()),
            created,
            age_days: created.map(|c| (today - c).num_days()),
            rotated,
            rotated_days_ago: rotated.map(|r| (today - r).num_days()),
            ip_whitelist: decl
                .map(|d| d.ip_whitelist.clone())
                .unwrap_or(ob.ip_whitelist.clone()),
            last_used: ob.last_used.map(crate::store::ts),
            verification: o.map(|(ob, r)| KeyVerification {
                status: ob.status.clone().unwrap_or_else(|| "unverified".into()),
                observed_at: r.observed_at.clone(),
                by: r.source.clone(),
                detail: ob.login_detail.clone(),
            }),
            fingerprint: o.and_then(|(ob, r)| ob.fingerprint.clone().or(r.fingerprint.clone())),
            storage: ob.storage.as_ref().and_then(ObservedStorage::describe),
            risk: None,
            leaked: false,
            findings: Vec::new(),
            usage: None,
        }
    };
    for d in &config.keys {
        out.push(section(&d.name, observed.get(d.name.as_str()), Some(d)));
    }
    for r in records {
        if !config.keys.iter().any(|d| d.name == r.name) {
            out.push(section(&r.name, observed.get(r.name.as_str()), None));
        }
    }
    out
}

pub(super) fn key_finding(s: &StoredFinding) -> KeyFinding {
    let f = &s.finding;
    let rec = f.recommendation.as_ref();
    KeyFinding {
        id: f.id.clone(),
        rule: f.rule.clone(),
        severity: f.severity,
        status: f.status.unwrap_or(Status::Open),
        message: f.message.clone(),
        first_seen: s.first_seen.clone(),
        last_seen: s.last_seen.clone(),
        action: rec.map(|r| r.action),
        steps: rec.map(|r| r.steps.clone()).unwrap_or_default(),
        replacement: rec
            .and_then(|r| r.replacement.clone())
            .and_then(|v| serde_json::from_value(v).ok()),
        also: f.also.clone(),
    }
}
