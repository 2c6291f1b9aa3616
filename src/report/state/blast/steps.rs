//! What to do about a leaked key, in order: revoke, check the transfers and payees made since
//! the exposure, rotate the integration, clean the history.

use super::*;

fn list(ids: &[String]) -> String {
    ids.join(", ")
}

pub(super) fn steps(
    key: &KeySection,
    exposure: &Exposure,
    leaks: &[&StoredFinding],
    transfers: &[String],
    payees: &[String],
    webhooks: &[String],
    watched: bool,
) -> Vec<BlastStep> {
    let name = &key.name;
    let fp = key
        .fingerprint
        .as_deref()
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    let mut out = Vec::new();
    // 1. Revoke.
    let status = key.verification.as_ref().map(|v| v.status.as_str());
    out.push(BlastStep {
        action: "revoke".into(),
        text: match (status, &key.verification) {
            (Some("revoked"), Some(v)) => format!(
                "Confirm that {name}{fp} stays revoked (verified revoked on {}): Airwallex web \
                 app > Settings > Developer > API keys.",
                v.observed_at
            ),
            (_, Some(v)) => format!(
                "Revoke {name}{fp} now: Airwallex web app > Settings > Developer > API keys > \
                 {name} > Delete. Last verification: {} on {}.",
                v.status, v.observed_at
            ),
            _ => format!(
                "Revoke {name}{fp} now: Airwallex web app > Settings > Developer > API keys > \
                 {name} > Delete (never verified: assume it is live)."
            ),
        },
        ids: Vec::new(),
    });
    // 2. Check the money movement.
    let mut ids: Vec<String> = transfers.to_vec();
    ids.extend(payees.iter().cloned());
    ids.extend(webhooks.iter().cloned());
    let text = if ids.is_empty() {
        if watched {
            format!(
                "No transfer, beneficiary or webhook change made outside the proxy since {}: \
                 keep `awxguard watch` running until the key is revoked.",
                exposure.at
            )
        } else {
            format!(
                "Check the transfers, beneficiaries and webhooks created since {} (the watch \
                 is not configured: run `awxguard watch` with a read-only key to list them).",
                exposure.at
            )
        }
    } else {
        let mut parts = Vec::new();
        if !transfers.is_empty() {
            parts.push(format!(
                "these transfers, and cancel or recall any you did not make: {}",
                list(transfers)
            ));
        }
        if !payees.is_empty() {
            parts.push(format!(
                "these beneficiaries, and delete any you did not add: {}",
                list(payees)
            ));
        }
        if !webhooks.is_empty() {
            parts.push(format!(
                "these webhooks, and restore their URLs: {}",
                list(webhooks)
            ));
        }
        format!("Check {}.", parts.join("; "))
    };
    out.push(BlastStep {
        action: "check-transfers".into(),
        text,
        ids,
    });
    // 3. Rotate the integration.
    let replacement = key.findings.iter().find_map(|f| f.replacement.clone());
    let with = match &replacement {
        Some(r) if !r.scopes.is_empty() => format!(
            "a replacement key{} with only {}{}",
            if r.name.is_empty() {
                String::new()
            } else {
                format!(" {}", r.name)
            },
            r.scopes.join(", "),
            if r.ip_whitelist.is_empty() {
                String::new()
            } else {
                format!(", IP whitelist {}", r.ip_whitelist.join(", "))
            }
        ),
        _ => "a replacement key with only the scopes the integration uses".into(),
    };
    let integration = key
        .integration
        .clone()
        .or_else(|| key.owner.as_ref().map(|o| format!("{o}'s integration")))
        .unwrap_or_else(|| "the integration".into());
    out.push(BlastStep {
        action: "rotate".into(),
        text: format!(
            "Rotate {integration}: create {with}, deploy it from a secret store (not a file in a \
             repository), then delete {name}."
        ),
        ids: Vec::new(),
    });
    // 4. Clean the history.
    let mut paths: Vec<String> = leaks
        .iter()
        .filter_map(|s| s.finding.path.clone())
        .collect();
    if paths.is_empty() && !exposure.path.is_empty() {
        paths.push(exposure.path.clone());
    }
    paths.sort();
    paths.dedup();
    let commits: Vec<String> = leaks
        .iter()
        .filter_map(|s| s.finding.commit.as_ref())
        .map(|c| short_commit(&c.id).to_string())
        .collect();
    let repo = exposure
        .repository
        .clone()
        .unwrap_or_else(|| "the repository".into());
    let filter: Vec<String> = paths.iter().map(|p| format!("--path {p}")).collect();
    out.push(BlastStep {
        action: "clean-history".into(),
        text: if commits.is_empty() {
            format!(
                "Remove the key from {} in {repo} and keep it out (`awxguard hook install`); it \
                 has been there {} days.",
                paths.join(", "),
                exposure.days
            )
        } else {
            format!(
                "Clean the history of {repo} once the key is revoked (cleaning does not un-leak \
                 it): `git filter-repo --invert-paths {}`, force-push, and have every clone \
                 re-cloned; introduced by commit {} {} days ago.",
                filter.join(" "),
                commits.join(", "),
                exposure.days
            )
        },
        ids: commits,
    });
    out
}
