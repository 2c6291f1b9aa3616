-- 0002: the alert outbox (issue 12). A run that records findings queues its alerts here in the
-- same transaction (alert_queue: one row per key per run, finding ids only); delivery seals due
-- rows into messages (alert_messages: the rendered alert, sent as is on every attempt, so a
-- resend carries the same Message-ID and content) with one delivery per sink
-- (alert_deliveries: pending until the sink accepted, then sent, never sent again).
-- alert_state remembers when each finding was last alerted (repeats, resolved notices).
-- No secret: findings hold none, the renderer scrubs key-shaped text, credentials stay in config.

CREATE TABLE alert_queue (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('immediate', 'digest', 'repeat', 'resolved')),
    key          TEXT NOT NULL,
    -- JSON array of finding ids.
    finding_ids  TEXT NOT NULL,
    severity     TEXT NOT NULL,
    queued_at    TEXT NOT NULL,
    -- Now for immediate alerts, the next digest time for the rest.
    due_at       TEXT NOT NULL,
    -- The message it went out in; NULL while waiting.
    message_id   TEXT
) STRICT;

CREATE INDEX alert_queue_waiting ON alert_queue (due_at) WHERE message_id IS NULL;

CREATE TABLE alert_messages (
    -- The alert id; the Message-ID derives from it.
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    -- The rendered alert document (JSON).
    document     TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;

CREATE TABLE alert_deliveries (
    message_id      TEXT NOT NULL REFERENCES alert_messages (id),
    -- email, webhook, file
    sink            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    -- What the server said when it accepted the message.
    reply           TEXT,
    sent_at         TEXT,
    -- The process sending it right now (host:pid) and until when that claim holds.
    claimed_by      TEXT,
    claimed_until   TEXT,
    PRIMARY KEY (message_id, sink)
) STRICT;

CREATE INDEX alert_deliveries_pending ON alert_deliveries (next_attempt_at) WHERE state = 'pending';

CREATE TABLE alert_state (
    finding_id       TEXT PRIMARY KEY,
    first_alerted_at TEXT NOT NULL,
    last_alerted_at  TEXT NOT NULL,
    last_alert_id    TEXT NOT NULL
) STRICT;
