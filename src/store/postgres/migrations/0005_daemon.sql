-- 0005 (PostgreSQL): the daemon's job runs and scanned refs, as SQLite's step 0005 (the area's
-- queries are not ported to PostgreSQL yet). daemon_lock is SQLite's one-daemon lock; on
-- PostgreSQL, daemons are to share the work under an advisory lock per job instead.

CREATE TABLE daemon_lock (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    pid           BIGINT NOT NULL,
    host          TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    version       TEXT NOT NULL
);

CREATE TABLE daemon_job_runs (
    id            BIGSERIAL PRIMARY KEY,
    job           TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    outcome       TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'interrupted')),
    duration_ms   BIGINT,
    findings      BIGINT NOT NULL DEFAULT 0,
    new           BIGINT NOT NULL DEFAULT 0,
    resolved      BIGINT NOT NULL DEFAULT 0,
    items         BIGINT NOT NULL DEFAULT 0,
    detail        TEXT
);

CREATE INDEX daemon_job_runs_job ON daemon_job_runs (job, id);
CREATE INDEX daemon_job_runs_running ON daemon_job_runs (outcome) WHERE outcome = 'running';

CREATE TABLE daemon_repo_refs (
    repo          TEXT NOT NULL,
    ref           TEXT NOT NULL,
    commit_id     TEXT NOT NULL,
    scanned_at    TEXT NOT NULL,
    PRIMARY KEY (repo, ref)
);
