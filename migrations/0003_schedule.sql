-- Durable schedule state: slots that did not run, and jobs an operator paused.
-- Runs keep their own rows (with the unique slot index of 0001); these tables hold what a
-- run row cannot: slots recorded as missed or skipped, and the pause switch.

CREATE TABLE schedule_slots (
    id            INTEGER PRIMARY KEY,
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    -- The oldest slot of the group; a single slot has first = last and slot_count 1.
    logical_time  TEXT NOT NULL,
    last_time     TEXT NOT NULL,
    -- Exact up to 10000; `count_is_lower_bound` says when counting stopped there.
    slot_count    INTEGER NOT NULL,
    count_is_lower_bound INTEGER NOT NULL DEFAULT 0,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'backfill', 'manual')),
    -- missed: nothing was there to run it in time (downtime, deadline, catch-up policy);
    -- skipped: a policy or an operator decided not to (overlap, pause).
    status        TEXT NOT NULL CHECK (status IN ('missed', 'skipped')),
    reason        TEXT NOT NULL,
    recorded_at   TEXT NOT NULL
);

-- A slot is recorded at most once, as a run or as one of these.
CREATE UNIQUE INDEX schedule_slots_once ON schedule_slots (job_id, logical_time);
CREATE INDEX schedule_slots_by_job_last ON schedule_slots (job_id, last_time);

CREATE TABLE job_state (
    job_id     INTEGER PRIMARY KEY REFERENCES jobs (id),
    paused     INTEGER NOT NULL DEFAULT 0,
    changed_at TEXT NOT NULL
);
