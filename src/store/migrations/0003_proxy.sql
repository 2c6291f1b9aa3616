-- 0003: the recording proxy's area (issue 10). Which key a login token belongs to, by
-- fingerprints only (neither the key nor the token is ever stored), kept until the token
-- expires, so a restarted proxy or a second proxy on this database still attributes calls; and
-- the objects (beneficiaries, transfers, webhooks) a proxied call created or changed, for the
-- money guard.

CREATE TABLE IF NOT EXISTS proxy_token_attributions (
    token_fingerprint TEXT PRIMARY KEY,
    key_fingerprint   TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    learned_at        TEXT NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS proxy_token_attributions_expiry
    ON proxy_token_attributions (expires_at);

CREATE TABLE IF NOT EXISTS proxy_objects (
    object_id   TEXT NOT NULL,
    ts          TEXT NOT NULL,
    key         TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    PRIMARY KEY (object_id, ts, path)
) STRICT;
