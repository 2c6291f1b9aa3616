-- 0007 (PostgreSQL): the inputs that observed each finding, how a resolved finding was resolved,
-- and where an acknowledgement came from, as SQLite's step 0007.

ALTER TABLE findings ADD COLUMN observed_by TEXT;

ALTER TABLE findings ADD COLUMN resolution TEXT CHECK (resolution IN ('fixed', 'aged-out'));

ALTER TABLE acknowledgements ADD COLUMN origin TEXT NOT NULL DEFAULT 'person'
    CHECK (origin IN ('person', 'config'));
