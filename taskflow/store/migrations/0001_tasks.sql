-- Tasks and their attempts: the durable record of everything TaskFlow accepted.

CREATE TABLE tasks (
    id                uuid PRIMARY KEY,
    namespace         text NOT NULL,
    queue             text NOT NULL,
    handler           text NOT NULL,
    payload           jsonb,
    priority          integer NOT NULL DEFAULT 0,
    state             text NOT NULL CHECK (state IN
                        ('scheduled', 'queued', 'running', 'retrying',
                         'succeeded', 'failed', 'cancelled')),
    attempts          integer NOT NULL DEFAULT 0,   -- claims so far
    failures          integer NOT NULL DEFAULT 0,   -- attempts that ended in an application failure
    max_retries       integer NOT NULL,
    max_retries_set   boolean NOT NULL DEFAULT true,  -- false: the handler's own limit wins
    timeout_seconds   double precision NOT NULL DEFAULT 0,
    retry_initial     double precision NOT NULL,
    retry_multiplier  double precision NOT NULL,
    retry_max         double precision NOT NULL,
    idempotency_key   text,
    concurrency_key   text,
    concurrency_limit integer,
    labels            jsonb NOT NULL DEFAULT '{}'::jsonb,
    run_at            timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    worker            text,
    result            jsonb,
    error             text,
    traceback         text,
    progress          double precision,
    progress_message  text
);

-- A resubmission with the same key returns the original task.
CREATE UNIQUE INDEX tasks_idempotency_key
    ON tasks (namespace, queue, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Listing by queue and state, newest first, keyset-paginated on id.
CREATE INDEX tasks_queue_state ON tasks (namespace, queue, state, id);
-- Housekeeping: pending tasks to check against Redis.
CREATE INDEX tasks_pending ON tasks (id)
    WHERE state IN ('scheduled', 'queued', 'running', 'retrying');
-- Retention: finished tasks by age.
CREATE INDEX tasks_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE task_attempts (
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    number      integer NOT NULL,
    worker      text,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text NOT NULL CHECK (outcome IN
                  ('running', 'succeeded', 'failed', 'timeout', 'lost', 'cancelled', 'released')),
    error       text,
    PRIMARY KEY (task_id, number)
);
