-- 0009: a delivery can give up (issue 12). Retries back off exponentially up to [alerts]
-- retry_max; after [alerts] give_up_after (since the message was sealed) or max_attempts a
-- delivery is `dead`: never retried, shown by `awxguard alerts list`, counted in the daemon's
-- /metrics, logged as an error. SQLite cannot widen a CHECK in place: the table is rebuilt.

CREATE TABLE alert_deliveries_new (
    message_id      TEXT NOT NULL REFERENCES alert_messages (id),
    -- email, webhook, file
    sink            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    -- What the server said when it accepted the message.
    reply           TEXT,
    sent_at         TEXT,
    -- The process sending it right now (host:pid) and until when that claim holds.
    claimed_by      TEXT,
    claimed_until   TEXT,
    -- When delivery gave up (state dead).
    dead_at         TEXT,
    PRIMARY KEY (message_id, sink)
) STRICT;

INSERT INTO alert_deliveries_new (message_id, sink, state, attempts, next_attempt_at, last_error,
    reply, sent_at, claimed_by, claimed_until)
SELECT message_id, sink, state, attempts, next_attempt_at, last_error, reply, sent_at,
    claimed_by, claimed_until FROM alert_deliveries;

DROP TABLE alert_deliveries;
ALTER TABLE alert_deliveries_new RENAME TO alert_deliveries;

CREATE INDEX alert_deliveries_pending ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
