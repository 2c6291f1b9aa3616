-- 0001: findings with their lifecycle, acknowledgements, and the runs that judged them: the
-- schema every database made before ordered migrations has (user_version 1). Findings never hold
-- a secret (only previews and fingerprints), so neither does the database.

CREATE TABLE IF NOT EXISTS findings (
    id           TEXT PRIMARY KEY,
    -- Which kind of run judges this finding ("audit", "scan"): only a run of the same scope
    -- can resolve it.
    scope        TEXT NOT NULL,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    key          TEXT,
    path         TEXT,
    message      TEXT NOT NULL,
    -- The finding as last reported (JSON of the findings contract).
    finding      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('new', 'open', 'resolved')),
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    resolved_at  TEXT,
    times_seen   INTEGER NOT NULL DEFAULT 1
) STRICT;

CREATE INDEX IF NOT EXISTS findings_scope_status ON findings (scope, status);

CREATE TABLE IF NOT EXISTS acknowledgements (
    finding_id   TEXT PRIMARY KEY,
    reason       TEXT NOT NULL,
    acked_by     TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT
) STRICT;

CREATE TABLE IF NOT EXISTS runs (
    id           INTEGER PRIMARY KEY,
    scope        TEXT NOT NULL,
    at           TEXT NOT NULL,
    findings     INTEGER NOT NULL,
    new          INTEGER NOT NULL,
    resolved     INTEGER NOT NULL
) STRICT;
