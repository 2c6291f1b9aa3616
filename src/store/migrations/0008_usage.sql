-- 0008: the usage evidence store (issue 9). Raw usage events for the raw retention (default 35
-- days), per key rollups for the rollup retention (default 400 days): hourly buckets (an encoded
-- usage_series::HourBucket), hourly calls by route, status class, source network and agent, and
-- first appearances (an encoded usage_series::AttrStats per address, agent, route, scope, host,
-- account, status). Events hold key names or fingerprints, never keys; every text is bound
-- through the redaction gate.

CREATE TABLE IF NOT EXISTS usage_keys (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE IF NOT EXISTS usage_routes (
    id      INTEGER PRIMARY KEY,
    -- `METHOD /template` (catalog) or `METHOD /path/{id}` (unknown)
    route   TEXT NOT NULL UNIQUE,
    scope   TEXT,
    -- 0 read, 1 write, 2 sensitive write
    access  INTEGER NOT NULL
) STRICT;

-- user agents (kind 1) and source networks (kind 2: "198.51.100.0/24", "proxy 10.0.3.0/24")
CREATE TABLE IF NOT EXISTS usage_names (
    id    INTEGER PRIMARY KEY,
    kind  INTEGER NOT NULL,
    name  TEXT NOT NULL,
    UNIQUE (kind, name)
) STRICT;

-- one row per distinct event; (ts, hash) is the whole normalized event
CREATE TABLE IF NOT EXISTS usage_events (
    ts       INTEGER NOT NULL,   -- Unix milliseconds
    hash     INTEGER NOT NULL,
    key      INTEGER NOT NULL,
    route    INTEGER NOT NULL,
    path     TEXT NOT NULL,
    status   INTEGER NOT NULL,
    ip       TEXT,
    agent    INTEGER NOT NULL,   -- 0: none
    host     TEXT,
    account  TEXT,
    latency  REAL,
    via      INTEGER NOT NULL,   -- 1: recorded by awxguard's proxy
    objects  TEXT,               -- JSON array of object ids
    PRIMARY KEY (ts, hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS usage_hours (
    key     INTEGER NOT NULL,
    hour    INTEGER NOT NULL,    -- Unix seconds / 3600
    bucket  BLOB NOT NULL,
    PRIMARY KEY (key, hour)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS usage_hour_calls (
    key      INTEGER NOT NULL,
    hour     INTEGER NOT NULL,
    route    INTEGER NOT NULL,
    class    INTEGER NOT NULL,   -- 200, 300, 400, 401, 403, 429, 500
    network  INTEGER NOT NULL,   -- usage_names id, 0: no address
    agent    INTEGER NOT NULL,   -- usage_names id, 0: none
    calls    INTEGER NOT NULL,
    PRIMARY KEY (key, hour, route, class, network, agent)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS usage_attrs (
    key    INTEGER NOT NULL,
    kind   INTEGER NOT NULL,     -- 1 address, 2 proxy client, 3 agent, 4 route, 5 scope, 6 host, 7 account, 8 status
    value  TEXT NOT NULL,
    stats  BLOB NOT NULL,
    PRIMARY KEY (key, kind, value)
) STRICT, WITHOUT ROWID;

-- days with at least one event of any key: a day without is a gap in the evidence
CREATE TABLE IF NOT EXISTS usage_days (
    day     INTEGER PRIMARY KEY, -- Unix seconds / 86400
    events  INTEGER NOT NULL
) STRICT;

-- file sources: how far each was read and how to know it again
CREATE TABLE IF NOT EXISTS usage_sources (
    source    TEXT PRIMARY KEY,
    dev       INTEGER NOT NULL,
    ino       INTEGER NOT NULL,
    offset    INTEGER NOT NULL,
    lines     INTEGER NOT NULL,
    head      INTEGER NOT NULL,  -- the first 8 bytes of the SHA-256 of the first head_len bytes
    head_len  INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    updated   INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS usage_sources_head ON usage_sources (head, head_len);

-- `newest`: the newest event stored (Unix seconds); retention counts back from it
CREATE TABLE IF NOT EXISTS usage_meta (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) STRICT;
