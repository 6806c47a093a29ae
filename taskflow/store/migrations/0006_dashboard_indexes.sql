-- Reads of the web dashboard: a namespace's tasks newest first, filtered by state or by
-- handler without naming a queue (tasks_queue_state serves the ones that name a queue).
-- Keyset-paginated on id, like every listing.

CREATE INDEX tasks_namespace_state ON tasks (namespace, state, id);
CREATE INDEX tasks_namespace_handler ON tasks (namespace, handler, id);
