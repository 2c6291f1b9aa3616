//! The keys as the last audit saw them: what a login observed (effective permissions, live or
//! revoked), where the secret is stored, when the key was last used. The audit replaces the
//! rows each run; the report, which is read-only and never logs in, reads them. A row is the
//! inventory's listing of one key as JSON (never the secret: its fingerprint only), so this area
//! does not depend on the inventory's types.

use super::params;
use super::{SqliteStore, StoreError};

/// One key as a job observed it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// The inventory name (a shadow key's fingerprint).
    pub name: String,
    pub fingerprint: Option<String>,
    /// Which job observed it (`audit`).
    pub source: String,
    /// When (RFC 3339).
    pub observed_at: String,
    /// The key as the inventory lists it.
    pub row: serde_json::Value,
}

/// The keys area of the store.
pub trait KeyRecords {
    /// Replaces every key `source` observed before with `keys`, in one transaction.
    fn save_keys(&self, source: &str, keys: &[KeyRecord]) -> Result<(), StoreError>;
    /// Every key observed, by name.
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
}

impl KeyRecords for SqliteStore {
    fn save_keys(&self, source: &str, keys: &[KeyRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.q("begin"))?;
        tx.execute("DELETE FROM key_records WHERE source = ?1", params![source])
            .map_err(self.q("forget keys"))?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO key_records (name, fingerprint, source, observed_at, row) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(self.q("prepare key"))?;
            for k in keys {
                put.execute(params![
                    k.name,
                    k.fingerprint,
                    source,
                    k.observed_at,
                    k.row.to_string()
                ])
                .map_err(self.q("save key"))?;
            }
        }
        tx.commit().map_err(self.q("commit"))
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, fingerprint, source, observed_at, row FROM key_records ORDER BY name",
            )
            .map_err(self.q("prepare keys"))?;
        let rows = stmt
            .query_map([], |r| {
                let row: String = r.get(4)?;
                Ok(KeyRecord {
                    name: r.get(0)?,
                    fingerprint: r.get(1)?,
                    source: r.get(2)?,
                    observed_at: r.get(3)?,
                    row: serde_json::from_str(&row).unwrap_or(serde_json::Value::Null),
                })
            })
            .map_err(self.q("list keys"))?;
        rows.collect::<Result<_, _>>().map_err(self.q("list keys"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_replaces_what_it_saw_before() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let rec = |name: &str| KeyRecord {
            name: name.into(),
            fingerprint: Some("sha256:0011223344556677".into()),
            source: "audit".into(),
            observed_at: "2026-11-24T12:00:00Z".into(),
            row: serde_json::json!({"name": name, "status": "live"}),
        };
        s.save_keys("audit", &[rec("a"), rec("b")]).unwrap();
        s.save_keys("audit", &[rec("b")]).unwrap();
        let keys = s.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, "b");
        assert_eq!(keys[0].row["status"], "live");
    }
}
