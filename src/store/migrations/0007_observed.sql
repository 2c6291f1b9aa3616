-- 0007: resolution by observation (issue 16). Each finding keeps the inputs that observed it
-- (scan roots, the key's secret reference, logins, usage sources, ...; a JSON array of input ids)
-- so that only a run that looked at all of them can resolve it; a run that looked elsewhere
-- leaves it open and says it was not re-checked. NULL: recorded before this step, resolved as
-- before (by any run of its scope). `resolution` says why a resolved finding is resolved
-- (`fixed`, `aged-out`: findings contract). Acknowledgements say where they come from: a person
-- (`findings ack`) or the config (`allow_literal = true` accepts a literal key), which the run
-- that judges the finding keeps in step with the config.

ALTER TABLE findings ADD COLUMN observed_by TEXT;

ALTER TABLE findings ADD COLUMN resolution TEXT CHECK (resolution IN ('fixed', 'aged-out'));

ALTER TABLE acknowledgements ADD COLUMN origin TEXT NOT NULL DEFAULT 'person'
    CHECK (origin IN ('person', 'config'));
