-- 0002 (PostgreSQL): the alert outbox, as SQLite's step 0002. Two daemons on one database
-- claim a delivery with SELECT ... FOR UPDATE SKIP LOCKED and seal a queued alert only while it
-- is still waiting (its row locked), so no alert goes out twice.

CREATE TABLE alert_queue (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('immediate', 'digest', 'repeat', 'resolved')),
    key          TEXT NOT NULL,
    finding_ids  TEXT NOT NULL,
    severity     TEXT NOT NULL,
    queued_at    TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    message_id   TEXT
);

CREATE INDEX alert_queue_waiting ON alert_queue (due_at) WHERE message_id IS NULL;

CREATE TABLE alert_messages (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    document     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE alert_deliveries (
    message_id      TEXT NOT NULL REFERENCES alert_messages (id),
    sink            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    reply           TEXT,
    sent_at         TEXT,
    claimed_by      TEXT,
    claimed_until   TEXT,
    PRIMARY KEY (message_id, sink)
);

CREATE INDEX alert_deliveries_pending ON alert_deliveries (next_attempt_at) WHERE state = 'pending';

CREATE TABLE alert_state (
    finding_id       TEXT PRIMARY KEY,
    first_alerted_at TEXT NOT NULL,
    last_alerted_at  TEXT NOT NULL,
    last_alert_id    TEXT NOT NULL
);
