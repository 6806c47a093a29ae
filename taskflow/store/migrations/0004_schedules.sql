-- Cron schedules: what fires when (the spec) and what the scheduler did (the status).
-- A tick is fired through the ordinary submission path with the idempotency key
-- schedule:<id>:<tick>, and recorded with guarded updates (last_tick < tick), so two
-- schedulers never fire or count the same tick twice.

CREATE TABLE schedules (
    id                        uuid PRIMARY KEY,
    namespace                 text NOT NULL,
    name                      text NOT NULL,
    cron                      text NOT NULL,
    timezone                  text NOT NULL DEFAULT 'UTC',
    concurrency_policy        text NOT NULL DEFAULT 'Allow'
                                CHECK (concurrency_policy IN ('Allow', 'Forbid', 'Replace')),
    suspend                   boolean NOT NULL DEFAULT false,
    starting_deadline_seconds integer,             -- NULL: a late tick fires however late
    kind                      text NOT NULL,       -- what a tick fires: 'task'
    spec                      jsonb NOT NULL,      -- the target of that kind
    owner                     text NOT NULL DEFAULT '',  -- '' = the API; file:PATH = a dev file
    revision                  bigint NOT NULL DEFAULT 1, -- bumped by every change of the spec
    next_fire_at              timestamptz,         -- earliest tick not handled yet
    last_tick                 timestamptz,         -- latest tick handled (fired or skipped)
    pending_tick              timestamptz,         -- being fired: set before the submission
    last_fire_tick            timestamptz,
    last_fired_at             timestamptz,
    last_task_id              uuid,                -- no foreign key: tasks expire
    fire_count                bigint NOT NULL DEFAULT 0,
    skip_count                bigint NOT NULL DEFAULT 0,
    last_skip_tick            timestamptz,
    last_skip_reason          text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace, name)
);

-- The scheduler: schedules whose next tick is due.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT suspend;
-- Fires cut short between their two writes.
CREATE INDEX schedules_pending ON schedules (id) WHERE pending_tick IS NOT NULL;
-- Syncing a file's (or a resource's) set of schedules.
CREATE INDEX schedules_owner ON schedules (owner) WHERE owner <> '';
