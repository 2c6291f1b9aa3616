-- 0006 (PostgreSQL): the keys each job observed, as SQLite's step 0006.

CREATE TABLE IF NOT EXISTS key_records (
    name         TEXT PRIMARY KEY,
    fingerprint  TEXT,
    source       TEXT NOT NULL,
    observed_at  TEXT NOT NULL,
    row          TEXT NOT NULL
);
