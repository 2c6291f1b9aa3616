//! Discovery: the leak scanner run over config directories and env files. Each Airwallex key it
//! finds is matched by fingerprint to the inventory: a declared key found in a plain-text file
//! gets that location in its storage facts; a key nobody declared becomes a shadow key.

use super::{Entry, Inventory};
use super::{KeyDescription, KeyFacts, LeakFact, SecretSource, Storage};
use crate::airwallex::{Environment, KeyKind};
use crate::scan::{self, Matcher, Problem, ScanOptions, ScanStats};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The leak rule whose findings are Airwallex API keys.
pub const API_KEY_RULE: &str = "leak.airwallex.api-key";

/// What discovery covered and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiscoverOutcome {
    pub stats: ScanStats,
    #[serde(skip)]
    pub problems: Vec<Problem>,
    /// Places where a declared key was found.
    pub declared_found: usize,
    /// Keys nobody declared.
    pub shadow_keys: usize,
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// The file a scan finding's path stands for: paths are relative to the scan's root
/// (`ScanStats::root`), or absolute for a file outside it.
fn locate(base: &Path, display: &str) -> Option<PathBuf> {
    let p = base.join(display);
    p.is_file().then(|| canonical(&p))
}

/// The input id of the root among `roots` that holds `abs` (the first root when none does).
fn source_of(roots: &[PathBuf], abs: Option<&Path>, mode: Found) -> String {
    let root = abs
        .and_then(|a| {
            roots
                .iter()
                .find(|r| a.starts_with(canonical(r)))
                .map(|r| r.as_path())
        })
        .or(roots.first().map(|r| r.as_path()))
        .unwrap_or(Path::new("."));
    match mode {
        Found::Stored => super::facts::input::discover(root),
        Found::Leaked => super::facts::input::scan_tree(root),
    }
}

/// What a place where a key was found means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Config directories and env files: where keys are stored (`storage.plaintext_locations`).
    /// Ignored files are searched too: env files are usually git-ignored.
    Stored,
    /// Source trees and repositories: a key there is leaked (`leaks`). Ignore files apply, as
    /// in `awxguard scan`.
    Leaked,
}

/// Runs the scanner over `roots` and folds what it finds into `inv`, matched by fingerprint:
/// declared keys get the places, keys nobody declared become shadow keys.
pub fn discover(
    inv: &mut Inventory,
    matcher: &Matcher,
    roots: &[PathBuf],
    opts: &ScanOptions,
    mode: Found,
) -> DiscoverOutcome {
    // The scanner keeps each API key it finds (in memory, wrapped), so shadow keys can be
    // verified.
    let kept = std::sync::Arc::new(scan::verify::Secrets::default());
    let opts = ScanOptions {
        respect_ignore: mode == Found::Leaked && opts.respect_ignore,
        keep_secrets: Some(kept.clone()),
        ..opts.clone()
    };
    let scanned = scan::scan_paths(matcher, roots, &opts);
    let base = PathBuf::from(scanned.stats.root.clone().unwrap_or_default());
    let mut out = DiscoverOutcome {
        stats: scanned.stats,
        problems: scanned.problems,
        ..DiscoverOutcome::default()
    };
    // fingerprint -> locations (`path:line`), and the files they are in.
    let mut found: BTreeMap<String, BTreeSet<(String, u64, String)>> = BTreeMap::new();
    for f in &scanned.findings {
        let (Some(secret), Some(path)) = (&f.secret, &f.path) else {
            continue;
        };
        if f.rule != API_KEY_RULE {
            continue;
        }
        found
            .entry(secret.fingerprint.clone())
            .or_default()
            .insert((path.clone(), f.line.unwrap_or(0), f.id.clone()));
    }
    for (fp, places) in found {
        let ids: Vec<String> = places.iter().map(|(_, _, id)| id.clone()).collect();
        let files: Vec<(String, u64, Option<PathBuf>)> = places
            .into_iter()
            .map(|(p, l, _)| {
                let abs = locate(&base, &p);
                (p, l, abs)
            })
            .collect();
        let sources: Vec<String> = files
            .iter()
            .map(|(_, _, abs)| source_of(roots, abs.as_deref(), mode))
            .collect();
        let leaks: Vec<LeakFact> = files
            .iter()
            .zip(&ids)
            .zip(&sources)
            .map(|(((p, l, _), id), source)| LeakFact {
                rule: API_KEY_RULE.to_string(),
                path: p.clone(),
                line: Some(*l),
                commit: None,
                finding_id: id.clone(),
                source: source.clone(),
            })
            .collect();
        if let Some(entry) = inv.by_fingerprint_mut(&fp) {
            // Where the config says the key lives is not a discovery.
            let own: Option<PathBuf> = match &entry.facts.storage.source {
                SecretSource::File { path } => Some(canonical(path)),
                SecretSource::Literal { .. } => entry
                    .facts
                    .declaration()
                    .and_then(|d| d.rsplit_once(':'))
                    .map(|(p, _)| canonical(Path::new(p))),
                SecretSource::Env { .. } => None,
            };
            for (((p, l, abs), leak), source) in files.into_iter().zip(leaks).zip(sources) {
                if abs.is_some() && abs == own {
                    continue;
                }
                if mode == Found::Leaked {
                    if !entry
                        .facts
                        .leaks
                        .iter()
                        .any(|x| x.finding_id == leak.finding_id)
                    {
                        entry.facts.leaks.push(leak);
                        out.declared_found += 1;
                    }
                    continue;
                }
                let loc = format!("{p}:{l}");
                entry.facts.found_by.insert(source);
                if !entry.facts.storage.plaintext_locations.contains(&loc) {
                    entry.facts.storage.plaintext_locations.push(loc);
                    out.declared_found += 1;
                }
            }
            continue;
        }
        // A shadow key: the key and the client ID found next to it, so it can be verified.
        let candidate = kept.get(&fp);
        let secret = candidate.as_ref().map(|c| c.key.clone());
        let client_id = candidate
            .and_then(|c| c.client_ids.into_iter().next())
            .unwrap_or_default();
        out.shadow_keys += 1;
        let first = files
            .first()
            .map(|(p, l, _)| format!("{p}:{l}"))
            .unwrap_or_default();
        tracing::info!(fingerprint = %fp, at = %first, "undeclared key found");
        let facts = KeyFacts {
            key: KeyDescription {
                name: fp.clone(),
                client_id,
                // Unknown; assume the worse case until someone declares it.
                environment: Environment::Production,
                kind: KeyKind::Custom,
                scopes: Vec::new(),
                owner: None,
                purpose: None,
                integration: None,
                created: None,
                rotated: None,
                ip_whitelist: Vec::new(),
                consumers: Vec::new(),
                declared_at: String::new(),
                config_problems: Vec::new(),
            },
            declared: false,
            fingerprint: Some(fp.clone()),
            declared_scopes: Vec::new(),
            storage: Storage {
                // Where discovery found it first: a plain-text file.
                source: SecretSource::File {
                    path: files
                        .iter()
                        .find_map(|(_, _, a)| a.clone())
                        .unwrap_or_else(|| {
                            PathBuf::from(first.rsplit_once(':').map_or("", |x| x.0))
                        }),
                },
                file_mode: None,
                world_readable: false,
                group_readable: false,
                in_git_work_tree: None,
                plaintext_locations: if mode == Found::Stored {
                    files.iter().map(|(p, l, _)| format!("{p}:{l}")).collect()
                } else {
                    Vec::new()
                },
            },
            secret_problem: None,
            login: None,
            leaks: if mode == Found::Leaked {
                leaks
            } else {
                Vec::new()
            },
            found_by: if mode == Found::Stored {
                sources.into_iter().collect()
            } else {
                Default::default()
            },
        };
        let mut facts = facts;
        if let Some((_, _, Some(abs))) = files.first() {
            super::storage::inspect(abs, &mut facts.storage);
        }
        inv.entries.push(Entry { facts, secret });
    }
    out
}

/// What linking a repository's history did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryLinks {
    /// Leaks added to known keys.
    pub linked: usize,
    /// Keys in the history that no inventory entry knows.
    pub unknown: usize,
}

/// Links the API keys a history scan of `repo` found (`findings`) to the inventory keys with the
/// same fingerprint, as leaks with their commit (a key committed once is leaked, whatever the
/// work tree holds now).
pub fn link_history(
    inv: &mut Inventory,
    repo: &Path,
    findings: &[crate::finding::Finding],
) -> HistoryLinks {
    let source = super::facts::input::scan_git(repo);
    let mut out = HistoryLinks::default();
    let mut unknown = BTreeSet::new();
    for f in findings {
        let (Some(secret), Some(path)) = (&f.secret, &f.path) else {
            continue;
        };
        if f.rule != API_KEY_RULE {
            continue;
        }
        match inv.by_fingerprint_mut(&secret.fingerprint) {
            Some(e) => {
                if e.facts.leaks.iter().any(|l| l.finding_id == f.id) {
                    continue;
                }
                e.facts.leaks.push(LeakFact {
                    rule: f.rule.clone(),
                    path: path.clone(),
                    line: f.line,
                    commit: f.commit.as_ref().map(|c| c.id.clone()),
                    finding_id: f.id.clone(),
                    source: source.clone(),
                });
                out.linked += 1;
            }
            None => {
                unknown.insert(secret.fingerprint.clone());
            }
        }
    }
    out.unknown = unknown.len();
    out
}
