-- The runner's history: jobs, their runs, and every attempt of every step.
-- Times are RFC 3339 UTC text with milliseconds, so they sort and compare as text.

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    schedule    TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    -- The job's definition as last seen, as JSON, so history explains itself.
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    -- The schedule slot (or, for a manual run, the moment it was asked for).
    logical_time  TEXT NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'backfill', 'retry')),
    status        TEXT NOT NULL CHECK (status IN
                      ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    queued_at     TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    -- Why a run failed: the step and the reason, in words.
    error         TEXT,
    failed_step   TEXT,
    -- Where the last step wrote its output (the report, for report jobs).
    output_dir    TEXT
);

-- A scheduled slot runs at most once, across restarts included.
CREATE UNIQUE INDEX runs_one_per_slot ON runs (job_id, logical_time)
    WHERE trigger IN ('schedule', 'backfill');
CREATE INDEX runs_by_job ON runs (job_id, id);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE steps (
    id             INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL REFERENCES runs (id),
    -- Position of the step in the job, from 0.
    idx            INTEGER NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 1,
    name           TEXT NOT NULL,
    plugin         TEXT NOT NULL,
    plugin_sha256  TEXT,
    status         TEXT NOT NULL CHECK (status IN
                       ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    -- How the step ended: succeeded, guest-error, trap, timeout, memory-limit, ...
    outcome        TEXT,
    started_at     TEXT,
    finished_at    TEXT,
    duration_ms    REAL,
    rows_in        INTEGER,
    rows_out       INTEGER,
    -- Named figures from the step's summary, as a JSON object.
    metrics        TEXT,
    error          TEXT,
    -- stdout, stderr and log-import messages of the step, bounded.
    log            TEXT NOT NULL DEFAULT '',
    log_truncated  INTEGER NOT NULL DEFAULT 0,
    output_dir     TEXT,
    output_bytes   INTEGER,
    -- The largest linear memory the guest grew to.
    memory_peak_bytes INTEGER,
    UNIQUE (run_id, idx, attempt)
);
