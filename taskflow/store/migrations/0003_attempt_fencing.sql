-- Attempt rows are the fence of the completion path.
--
-- An attempt row moves from 'running' to a final outcome exactly once: whoever moves it first
-- (the worker recording its outcome, housekeeping ending an expired lease as 'lost', a cancel)
-- decides what that attempt did, and only the winner may change the task row. The lease's
-- fencing token is kept on the row, so a worker that repeats a write after an ambiguous commit
-- recognises its own outcome.
--
-- 'superseded': the attempt was claimed after the task had already succeeded or failed (a
-- duplicate delivery); whatever its handler did is not the task's outcome. (A claim of a task
-- cancelled before the claim was recorded is recorded as 'cancelled'.)

ALTER TABLE task_attempts ADD COLUMN token text;

ALTER TABLE task_attempts DROP CONSTRAINT task_attempts_outcome_check;
ALTER TABLE task_attempts ADD CONSTRAINT task_attempts_outcome_check CHECK (outcome IN
    ('running', 'succeeded', 'failed', 'timeout', 'lost', 'cancelled', 'released', 'superseded'));

-- Attempts still running, for the repair of leases whose worker vanished.
CREATE INDEX task_attempts_running ON task_attempts (task_id) WHERE outcome = 'running';
