//! The schema as an ordered list of steps. Step N (`migrations/NNNN_name.sql`) takes a database
//! from `PRAGMA user_version` N-1 to N, inside one transaction; a database newer than the last
//! step is refused. To change the schema, add the next file and one line below (take the next
//! free number when you land; renumber if someone landed one first). Never edit a landed step:
//! databases out there already ran it.

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The `user_version` the database has after this step.
    pub version: i64,
    /// The file's name after its number (`initial` for `0001_initial.sql`).
    pub name: &'static str,
    pub sql: &'static str,
    /// Work SQL cannot do, run in the step's transaction before `sql` (moving rows whose new
    /// form is computed in Rust).
    pub before: Option<fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>>,
}

/// Every step, in order; `MIGRATIONS[i].version == i + 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
        before: None,
    },
    Migration {
        version: 2,
        name: "outbox",
        sql: include_str!("migrations/0002_outbox.sql"),
        before: None,
    },
    Migration {
        version: 3,
        name: "proxy",
        sql: include_str!("migrations/0003_proxy.sql"),
        before: None,
    },
    Migration {
        version: 4,
        name: "watch",
        sql: include_str!("migrations/0004_watch.sql"),
        before: None,
    },
    Migration {
        version: 5,
        name: "daemon",
        sql: include_str!("migrations/0005_daemon.sql"),
        before: None,
    },
    Migration {
        version: 6,
        name: "keys",
        sql: include_str!("migrations/0006_keys.sql"),
        before: None,
    },
    Migration {
        version: 7,
        name: "observed",
        sql: include_str!("migrations/0007_observed.sql"),
        before: None,
    },
    Migration {
        version: 8,
        name: "usage",
        sql: include_str!("migrations/0008_usage.sql"),
        before: None,
    },
    Migration {
        version: 9,
        name: "outbox_dead",
        sql: include_str!("migrations/0009_outbox_dead.sql"),
        before: None,
    },
    Migration {
        version: 10,
        name: "proxy_events",
        sql: include_str!("migrations/0010_proxy_events.sql"),
        before: Some(super::proxy::move_interim_events),
    },
];

/// The schema version this build writes (`PRAGMA user_version`): the last step's.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_a_step_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed, "src/store/migrations/ and MIGRATIONS differ");
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "steps are numbered 1, 2, 3...");
            let text = std::fs::read_to_string(dir.join(&listed[i])).unwrap();
            assert_eq!(text, m.sql, "{} is the file's text", listed[i]);
        }
    }
}
