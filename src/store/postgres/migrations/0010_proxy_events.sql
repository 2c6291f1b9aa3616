-- 0010 (PostgreSQL): one store for usage events, as SQLite's step 0010. The recording proxy's
-- interim table (proxy_usage_events) goes; PostgreSQL support arrived with this step's build,
-- and the proxy has written its events to the usage evidence store since, so no PostgreSQL
-- database holds events there to move.
DROP TABLE IF EXISTS proxy_usage_events;
