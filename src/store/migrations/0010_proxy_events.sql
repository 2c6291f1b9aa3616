-- 0010: one store for usage events. Builds before this step kept the recording proxy's events
-- in an interim table, proxy_usage_events (created on first use, never a step of its own).
-- Before this SQL runs, store::proxy::move_interim_events (named by this step in migrations.rs)
-- reads each of its events and appends it to the usage evidence store (usage_events and the
-- rollups, deduplicated on the whole event, as `usage ingest` would); then the table goes.
DROP TABLE IF EXISTS proxy_usage_events;
