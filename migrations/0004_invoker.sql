-- The federated invoker: an outbox of downstream triggers, written in the same transaction
-- that records a run's end, and an audit row for every attempt to deliver one.
-- No column ever holds a token: only ids that join the AWS side to the Azure side.

CREATE TABLE invoker_outbox (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs (id),
    -- Position of the target in the job's `[[job.target]]` list, and its name.
    target_idx       INTEGER NOT NULL,
    target_name      TEXT NOT NULL,
    -- The target's settings as JSON, as they were when the run ended.
    target           TEXT NOT NULL,
    -- The JSON body the function receives.
    payload          TEXT NOT NULL,
    -- Stable per (run, target): the function's dedupe key across retries and restarts.
    idempotency_key  TEXT NOT NULL UNIQUE,
    -- W3C trace id shared by every attempt of this trigger.
    trace_id         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    -- A worker holds the row until this time; a dead holder's claim is taken over sooner.
    claimed_until    TEXT,
    claimed_by       INTEGER,
    finished_at      TEXT,
    -- For a failed trigger: the code (AADSTS..., an STS error code, HTTP 4xx) and its meaning.
    error_code       TEXT,
    error            TEXT,
    UNIQUE (run_id, target_idx)
);
CREATE INDEX invoker_outbox_due ON invoker_outbox (state, next_attempt_at);

CREATE TABLE invoker_attempts (
    id                    INTEGER PRIMARY KEY,
    outbox_id             INTEGER NOT NULL REFERENCES invoker_outbox (id),
    run_id                INTEGER NOT NULL REFERENCES runs (id),
    target_name           TEXT NOT NULL,
    attempt               INTEGER NOT NULL,
    started_at            TEXT NOT NULL,
    duration_ms           REAL NOT NULL,
    -- retry, delivered or failed.
    outcome               TEXT NOT NULL CHECK (outcome IN ('retry', 'delivered', 'failed')),
    -- AWS side: the STS call that produced the assertion behind the access token used.
    sts_request_id        TEXT,
    jwt_sub               TEXT,
    jwt_jti               TEXT,
    jwt_exp               TEXT,
    -- Azure side: the token exchange, then the function call.
    entra_correlation_id  TEXT,
    entra_trace_id        TEXT,
    http_status           INTEGER,
    azure_request_id      TEXT,
    azure_invocation_id   TEXT,
    traceparent           TEXT NOT NULL,
    error_code            TEXT,
    error                 TEXT
);
CREATE INDEX invoker_attempts_by_run ON invoker_attempts (run_id, id);
