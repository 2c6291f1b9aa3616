-- 0008 (PostgreSQL): the usage evidence store, as SQLite's step 0008 (raw events for the raw
-- retention, per key rollups for the rollup retention, first appearances, covered days, file
-- cursors). Integers are BIGINT, encodings BYTEA; `offset` is quoted (a keyword here).

CREATE TABLE IF NOT EXISTS usage_keys (
    id    BIGSERIAL PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS usage_routes (
    id      BIGSERIAL PRIMARY KEY,
    route   TEXT NOT NULL UNIQUE,
    scope   TEXT,
    access  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS usage_names (
    id    BIGSERIAL PRIMARY KEY,
    kind  BIGINT NOT NULL,
    name  TEXT NOT NULL,
    UNIQUE (kind, name)
);

CREATE TABLE IF NOT EXISTS usage_events (
    ts       BIGINT NOT NULL,
    hash     BIGINT NOT NULL,
    key      BIGINT NOT NULL,
    route    BIGINT NOT NULL,
    path     TEXT NOT NULL,
    status   BIGINT NOT NULL,
    ip       TEXT,
    agent    BIGINT NOT NULL,
    host     TEXT,
    account  TEXT,
    latency  DOUBLE PRECISION,
    via      BIGINT NOT NULL,
    objects  TEXT,
    PRIMARY KEY (ts, hash)
);

CREATE TABLE IF NOT EXISTS usage_hours (
    key     BIGINT NOT NULL,
    hour    BIGINT NOT NULL,
    bucket  BYTEA NOT NULL,
    PRIMARY KEY (key, hour)
);

CREATE TABLE IF NOT EXISTS usage_hour_calls (
    key      BIGINT NOT NULL,
    hour     BIGINT NOT NULL,
    route    BIGINT NOT NULL,
    class    BIGINT NOT NULL,
    network  BIGINT NOT NULL,
    agent    BIGINT NOT NULL,
    calls    BIGINT NOT NULL,
    PRIMARY KEY (key, hour, route, class, network, agent)
);

CREATE TABLE IF NOT EXISTS usage_attrs (
    key    BIGINT NOT NULL,
    kind   BIGINT NOT NULL,
    value  TEXT NOT NULL,
    stats  BYTEA NOT NULL,
    PRIMARY KEY (key, kind, value)
);

CREATE TABLE IF NOT EXISTS usage_days (
    day     BIGINT PRIMARY KEY,
    events  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS usage_sources (
    source    TEXT PRIMARY KEY,
    dev       BIGINT NOT NULL,
    ino       BIGINT NOT NULL,
    "offset"  BIGINT NOT NULL,
    lines     BIGINT NOT NULL,
    head      BIGINT NOT NULL,
    head_len  BIGINT NOT NULL,
    size      BIGINT NOT NULL,
    updated   BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS usage_sources_head ON usage_sources (head, head_len);

CREATE TABLE IF NOT EXISTS usage_meta (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
