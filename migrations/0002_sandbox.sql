-- Sandbox limits on the step record: what a step ran under and what it burned, so a
-- `timeout`, `fuel-exhausted` or `output-quota` outcome can be read against its limit.
-- New outcome names (fuel-exhausted, resource-limit, output-quota) need no change here:
-- `steps.outcome` is free text.

-- The effective limits of the attempt (defaults filled in), as a JSON object.
ALTER TABLE steps ADD COLUMN limits TEXT;
-- Fuel burned, when the step had a CPU budget.
ALTER TABLE steps ADD COLUMN fuel_consumed INTEGER;
