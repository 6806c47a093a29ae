-- DAG runs. A run is a set of named steps; each step is a task with the run's id. A step whose
-- parents have not all succeeded waits in state 'waiting' with pending_parents > 0, unknown to
-- Redis; the completion path that records a parent's success decrements its children in the
-- same transaction and releases (queued) the ones that reach 0, exactly once. 'settled' marks a
-- step whose end has been applied to its run (children released or skipped, fail_fast applied),
-- so a repeated batch applies nothing twice.

CREATE TABLE dag_runs (
    id              uuid PRIMARY KEY,
    namespace       text NOT NULL,
    name            text,
    queue           text NOT NULL,              -- default queue of steps that name none
    failure_policy  text NOT NULL CHECK (failure_policy IN ('fail_fast', 'continue')),
    state           text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    idempotency_key text,
    labels          jsonb NOT NULL DEFAULT '{}'::jsonb,
    steps_total     integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

-- A resubmission with the same key returns the original run.
CREATE UNIQUE INDEX dag_runs_idempotency_key
    ON dag_runs (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Listing by namespace, newest first, keyset-paginated on id.
CREATE INDEX dag_runs_namespace ON dag_runs (namespace, id);
CREATE INDEX dag_runs_finished_at ON dag_runs (finished_at) WHERE finished_at IS NOT NULL;

ALTER TABLE tasks
    ADD COLUMN run_id uuid REFERENCES dag_runs (id) ON DELETE CASCADE,
    ADD COLUMN step text,
    ADD COLUMN pending_parents integer NOT NULL DEFAULT 0,
    ADD COLUMN settled boolean NOT NULL DEFAULT false,
    ADD COLUMN skipped boolean NOT NULL DEFAULT false;

ALTER TABLE tasks DROP CONSTRAINT tasks_state_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_state_check CHECK (state IN
    ('waiting', 'scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'));

CREATE UNIQUE INDEX tasks_run_step ON tasks (run_id, step) WHERE run_id IS NOT NULL;
CREATE INDEX tasks_run_state ON tasks (run_id, state) WHERE run_id IS NOT NULL;

CREATE TABLE dag_edges (
    run_id    uuid NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    parent_id uuid NOT NULL,
    child_id  uuid NOT NULL,
    ordinal   integer NOT NULL,  -- the parent's place in the child's depends_on
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX dag_edges_child ON dag_edges (child_id);
