-- Per-queue settings: defaults for tasks submitted without their own, and the rate limit.
-- Written by the operator from TaskQueue specs; Redis keeps a copy of the rate limit, which
-- housekeeping restores from here after Redis lost its data. NULL = the global default.

CREATE TABLE queues (
    namespace        text NOT NULL,
    name             text NOT NULL,
    max_retries      integer,
    retry_initial    double precision,
    retry_multiplier double precision,
    retry_max        double precision,
    timeout_seconds  double precision,
    rate_per_second  double precision,
    rate_burst       integer,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);
