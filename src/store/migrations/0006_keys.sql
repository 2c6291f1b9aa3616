-- 0006: the keys as the last audit saw them (issue 14). The report is read-only and never logs
-- in, so what a login observed (the token's effective permissions, live or revoked), where the
-- secret is stored and when the key was last used are kept here by the audit that observed
-- them: one row per key, replaced by each audit. Never the secret: the row is the inventory's
-- listing of the key (fingerprint and preview only).

CREATE TABLE IF NOT EXISTS key_records (
    -- The inventory name (a shadow key's fingerprint).
    name         TEXT PRIMARY KEY,
    fingerprint  TEXT,
    -- Which job observed it ("audit").
    source       TEXT NOT NULL,
    -- When it was observed (RFC 3339).
    observed_at  TEXT NOT NULL,
    -- The key as the inventory lists it (JSON).
    row          TEXT NOT NULL
) STRICT;
