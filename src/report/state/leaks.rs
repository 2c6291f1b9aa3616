//! The leaks by repository, with the commit that introduced each.

use super::*;

/// The repository a scan scope names (`scan:git:/srv/app` → `/srv/app`).
fn repository_of(scope: &str) -> (String, String) {
    if let Some(r) = scope.strip_prefix("scan:git:") {
        // A range scan: `scan:git:/srv/app:main..HEAD`.
        let repo = match r.rfind(':') {
            Some(i) if r[i + 1..].contains("..") => &r[..i],
            _ => r,
        };
        (repo.to_string(), "git history".into())
    } else if let Some(r) = scope.strip_prefix("scan:tree:") {
        (r.to_string(), "working tree".into())
    } else {
        (scope.to_string(), scope.to_string())
    }
}

pub(super) fn leaks_by_repository(
    stored: &[StoredFinding],
    key_of: &dyn Fn(&Finding) -> Option<String>,
) -> Vec<RepositoryLeaks> {
    let mut repos: BTreeMap<(String, String), Vec<LeakEntry>> = BTreeMap::new();
    for s in stored
        .iter()
        .filter(|s| s.finding.rule.starts_with("leak."))
    {
        let f = &s.finding;
        let (repo, scanned) = repository_of(&s.scope);
        repos.entry((repo, scanned)).or_default().push(LeakEntry {
            finding: f.id.clone(),
            rule: f.rule.clone(),
            severity: f.severity,
            status: f.status.unwrap_or(Status::Open),
            path: f.path.clone().unwrap_or_default(),
            line: f.line,
            key: key_of(f),
            preview: f.secret.as_ref().map(|s| s.preview.clone()),
            fingerprint: f.secret.as_ref().map(|s| s.fingerprint.clone()),
            commit: f.commit.clone(),
            verification: f.verification,
            first_seen: s.first_seen.clone(),
        });
    }
    repos
        .into_iter()
        .map(|((repository, scanned), mut leaks)| {
            leaks.sort_by(|a, b| {
                (
                    std::cmp::Reverse(a.severity),
                    a.commit.as_ref().map(|c| c.date.clone()),
                    &a.path,
                    a.line,
                )
                    .cmp(&(
                        std::cmp::Reverse(b.severity),
                        b.commit.as_ref().map(|c| c.date.clone()),
                        &b.path,
                        b.line,
                    ))
            });
            RepositoryLeaks {
                repository,
                scanned,
                leaks,
            }
        })
        .collect()
}
