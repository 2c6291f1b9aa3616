//! `[store]`: where the database lives. `--db` and `AWXGUARD_DB` override it.

use super::{ConfigProblem, Source};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// The `[store]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// The SQLite database file, relative to the config file.
    pub path: Option<Spanned<String>>,
}

/// The validated `[store]` section.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// `None`: `$XDG_DATA_HOME/awxguard/awxguard.db`.
    pub path: Option<PathBuf>,
}

/// Validates `[store]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawStore,
    problems: &mut Vec<ConfigProblem>,
) -> StoreConfig {
    let path = raw.path.as_ref().map(|p| {
        if p.get_ref().trim().is_empty() {
            problems.push(src.problem(
                p.span(),
                "store.path",
                "is empty; give a database file, e.g. \"awxguard.db\"".into(),
            ));
        }
        src.base().join(p.get_ref())
    });
    StoreConfig { path }
}
