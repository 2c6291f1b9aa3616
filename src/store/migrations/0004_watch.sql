-- 0004: the money-movement watch's state (issue 11). Per watcher (the inventory name of the key
-- the watch reads with) and list: how far the list has been read completely, and the window a
-- poll was reading when it stopped (429, 5xx, a crash), so the next poll resumes there. And the
-- objects seen, with the fields the detectors need (never a secret; bank details only as a
-- fingerprint and the last four digits), so an object is judged once: `judged` is 0 until the
-- findings of the poll that saw it (new, or with changed fields) are recorded.

CREATE TABLE IF NOT EXISTS watch_cursors (
    watcher      TEXT NOT NULL,
    list         TEXT NOT NULL,
    -- Every item with a time at or before this was read (RFC 3339); NULL before the first
    -- complete read.
    high_water   TEXT,
    -- The window being read and the page to read next (a cursor, or a page number).
    pending_from TEXT,
    pending_to   TEXT,
    pending_page TEXT,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (watcher, list)
) STRICT;

CREATE TABLE IF NOT EXISTS watch_objects (
    watcher      TEXT NOT NULL,
    -- transfer, beneficiary, webhook, financial_transaction, balance
    kind         TEXT NOT NULL,
    id           TEXT NOT NULL,
    -- A hash of the fields whose change matters (a beneficiary's bank details, a webhook's URL).
    version      TEXT NOT NULL,
    -- The object's own time (created_at; posted_at for balance history), RFC 3339.
    at           TEXT NOT NULL,
    -- When the current version appeared (the object's updated_at, else when first seen so).
    changed_at   TEXT,
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    judged       INTEGER NOT NULL DEFAULT 0,
    -- The fields the detectors read (JSON), and the previous version's when it changed.
    data         TEXT NOT NULL,
    previous     TEXT,
    PRIMARY KEY (watcher, kind, id)
) STRICT;

CREATE INDEX IF NOT EXISTS watch_objects_at ON watch_objects (watcher, kind, at);
CREATE INDEX IF NOT EXISTS watch_objects_unjudged ON watch_objects (watcher, judged)
    WHERE judged = 0;
