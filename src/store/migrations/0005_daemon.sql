-- 0005: the daemon's area (issue 13). daemon_lock: the one daemon working on this database (one
-- row while a daemon runs: who, since when, its last heartbeat). daemon_job_runs: every
-- scheduled run (start, end, outcome, counts, what went wrong), 'running' while it runs, so a
-- run cut short by a crash is found and marked 'interrupted' by the next daemon.
-- daemon_repo_refs: for each repository the daemon scans, the commit each ref pointed at when it
-- was last scanned; the next scan takes only the blobs introduced since.

CREATE TABLE daemon_lock (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    pid           INTEGER NOT NULL,
    host          TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    version       TEXT NOT NULL
) STRICT;

CREATE TABLE daemon_job_runs (
    id            INTEGER PRIMARY KEY,
    job           TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    outcome       TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'interrupted')),
    duration_ms   INTEGER,
    -- Findings reported, new and resolved; items is the job's own count (blobs scanned, ...).
    findings      INTEGER NOT NULL DEFAULT 0,
    new           INTEGER NOT NULL DEFAULT 0,
    resolved      INTEGER NOT NULL DEFAULT 0,
    items         INTEGER NOT NULL DEFAULT 0,
    -- What the run did, or why it failed.
    detail        TEXT
) STRICT;

CREATE INDEX daemon_job_runs_job ON daemon_job_runs (job, id);
CREATE INDEX daemon_job_runs_running ON daemon_job_runs (outcome) WHERE outcome = 'running';

CREATE TABLE daemon_repo_refs (
    -- The repository's canonical path.
    repo          TEXT NOT NULL,
    ref           TEXT NOT NULL,
    commit_id     TEXT NOT NULL,
    scanned_at    TEXT NOT NULL,
    PRIMARY KEY (repo, ref)
) STRICT;
