-- 0001 (PostgreSQL): findings with their lifecycle, acknowledgements, and the runs that judged
-- them. The same tables and columns as SQLite's step 0001; times are RFC 3339 text (seconds,
-- `Z`) on both backends, so they compare the same way and `store copy` moves them as they are.

CREATE TABLE IF NOT EXISTS findings (
    id           TEXT PRIMARY KEY,
    scope        TEXT NOT NULL,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    key          TEXT,
    path         TEXT,
    message      TEXT NOT NULL,
    finding      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('new', 'open', 'resolved')),
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    resolved_at  TEXT,
    times_seen   BIGINT NOT NULL DEFAULT 1
);

CREATE INDEX IF NOT EXISTS findings_scope_status ON findings (scope, status);

CREATE TABLE IF NOT EXISTS acknowledgements (
    finding_id   TEXT PRIMARY KEY,
    reason       TEXT NOT NULL,
    acked_by     TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT
);

CREATE TABLE IF NOT EXISTS runs (
    id           BIGSERIAL PRIMARY KEY,
    scope        TEXT NOT NULL,
    at           TEXT NOT NULL,
    findings     BIGINT NOT NULL,
    new          BIGINT NOT NULL,
    resolved     BIGINT NOT NULL
);
