-- 0003 (PostgreSQL): the recording proxy's tables, as SQLite's step 0003 (the area's queries
-- are not ported to PostgreSQL yet: the proxy refuses a PostgreSQL store).

CREATE TABLE IF NOT EXISTS proxy_token_attributions (
    token_fingerprint TEXT PRIMARY KEY,
    key_fingerprint   TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    learned_at        TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS proxy_token_attributions_expiry
    ON proxy_token_attributions (expires_at);

CREATE TABLE IF NOT EXISTS proxy_objects (
    object_id   TEXT NOT NULL,
    ts          TEXT NOT NULL,
    key         TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    PRIMARY KEY (object_id, ts, path)
);
