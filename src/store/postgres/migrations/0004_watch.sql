-- 0004 (PostgreSQL): the watch's cursors and objects, as SQLite's step 0004 (the area's queries
-- are not ported to PostgreSQL yet).

CREATE TABLE IF NOT EXISTS watch_cursors (
    watcher      TEXT NOT NULL,
    list         TEXT NOT NULL,
    high_water   TEXT,
    pending_from TEXT,
    pending_to   TEXT,
    pending_page TEXT,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (watcher, list)
);

CREATE TABLE IF NOT EXISTS watch_objects (
    watcher      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    id           TEXT NOT NULL,
    version      TEXT NOT NULL,
    at           TEXT NOT NULL,
    changed_at   TEXT,
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    judged       BIGINT NOT NULL DEFAULT 0,
    data         TEXT NOT NULL,
    previous     TEXT,
    PRIMARY KEY (watcher, kind, id)
);

CREATE INDEX IF NOT EXISTS watch_objects_at ON watch_objects (watcher, kind, at);
CREATE INDEX IF NOT EXISTS watch_objects_unjudged ON watch_objects (watcher, judged)
    WHERE judged = 0;
