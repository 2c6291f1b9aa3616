-- 0009 (PostgreSQL): a delivery can give up (`dead`), as SQLite's step 0009: the state's CHECK
-- widened in place and the time delivery gave up.

ALTER TABLE alert_deliveries DROP CONSTRAINT IF EXISTS alert_deliveries_state_check;

ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_state_check
    CHECK (state IN ('pending', 'sent', 'dead'));

ALTER TABLE alert_deliveries ADD COLUMN dead_at TEXT;
