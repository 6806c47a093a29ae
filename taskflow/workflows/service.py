"""DAG runs over the engine: submit, read, list, cancel, retry from the failed steps.

Like every transition, each writes PostgreSQL first, then Redis: a submission records the run,
all its steps and edges in one transaction, then dispatches the steps without parents; the rest
wait in PostgreSQL until the completion path releases them (``taskflow.store.settle``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from taskflow.engine import Engine
from taskflow.errors import STORE_ERRORS, InvalidArgument, NotFound, unavailable
from taskflow.models import new_task_id, parse_task_id, utcnow
from taskflow.store.dags import DagRunRecord, DagStore, NewRun, NewStep
from taskflow.workflows.models import DagSubmission

log = logging.getLogger("taskflow.workflows")

RUN_STATES = ("running", "succeeded", "failed", "cancelled")


class DagService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = DagStore(engine.store)

    async def submit(self, dag: DagSubmission, field: str = "dag") -> tuple[str, bool]:
        """Record the run durably, then dispatch its first steps. Returns ``(run id,
        created)``; a known idempotency key returns the existing run with ``created`` False."""
        for i, step in enumerate(dag.steps):
            self.engine.check_payload(step.task, f"{field}.steps[{i}].payload_json")
        now = utcnow()
        run_id = new_task_id()
        defaults = await self.engine.defaults_of(s.task.queue_ref for s in dag.steps)
        # ids in step order (time-ordered ids may repeat their millisecond): steps list in order
        ids = sorted(new_task_id() for _ in dag.steps)
        steps = [
            NewStep(
                task=self.engine.new_task(
                    s.task,
                    defaults[s.task.queue_ref],
                    now,
                    run_id=run_id,
                    step=s.name,
                    parents=len(s.depends_on),
                    task_id=task_id,
                ),
                name=s.name,
                parents=s.depends_on,
            )
            for s, task_id in zip(dag.steps, ids, strict=True)
        ]
        run = NewRun(
            id=run_id,
            namespace=dag.namespace,
            name=dag.name,
            queue=dag.queue,
            failure_policy=dag.failure_policy,
            idempotency_key=dag.idempotency_key,
            labels=dag.labels,
            created_at=now,
            steps=steps,
        )
        with unavailable("PostgreSQL"):
            found, created = await self.store.insert(run)
        if created:
            await self.engine.dispatch_new([s.task for s in steps])
        return found, created

    async def get(self, run_id: str, field: str = "run_id") -> DagRunRecord:
        rid = parse_task_id(run_id, field)
        with unavailable("PostgreSQL"):
            run = await self.store.get(rid)
        if run is None:
            raise NotFound(f"DAG run {rid} not found")
        return run

    async def get_many(self, run_ids: Sequence[str]) -> list[DagRunRecord]:
        with unavailable("PostgreSQL"):
            return await self.store.get_many(run_ids)

    async def list(
        self, *, namespace: str, states: Sequence[str], page_size: int, page_token: str | None
    ) -> tuple[list[DagRunRecord], dict[str, dict[str, int]], str | None]:
        """Runs newest first, with their step counts; a page and the next page's token."""
        for i, s in enumerate(states):
            if s not in RUN_STATES:
                raise InvalidArgument(
                    f"states[{i}]", f"unknown run state {s!r}; one of {', '.join(RUN_STATES)}"
                )
        if page_size < 0 or page_size > 1000:
            raise InvalidArgument("page_size", "must be between 1 and 1000 (0 = 100)")
        size = page_size or 100
        before = parse_task_id(page_token, "page_token") if page_token else None
        with unavailable("PostgreSQL"):
            rows = await self.store.list_runs(
                namespace=namespace or "default", states=states, limit=size + 1, before_id=before
            )
            page = rows[:size]
            counts = await self.store.step_counts([r.id for r in page])
        return page, counts, (page[-1].id if len(rows) > size else None)

    async def cancel(self, run_id: str) -> DagRunRecord:
        """Cancel a running run: steps not started never run; running ones are stopped."""
        run = await self.get(run_id)
        if run.done:
            return run
        with unavailable("PostgreSQL"):
            updated, settled = await self.store.cancel(run.id)
        try:
            await self.engine.dispatcher.follow_up(settled.released, settled.withdrawn)
        except STORE_ERRORS as exc:
            # Recorded: a worker that claims a withdrawn step learns it ended, and stops it.
            log.warning("redis unavailable while cancelling run %s: %s", run.id, exc)
        assert updated is not None
        return updated

    async def retry(self, run_id: str) -> DagRunRecord:
        """Run a failed or cancelled run again from the steps that did not succeed."""
        run = await self.get(run_id)
        if run.state == "running":
            raise InvalidArgument("run_id", f"run {run.id} is still running")
        if run.state == "succeeded":
            raise InvalidArgument("run_id", f"run {run.id} succeeded: nothing to retry")
        with unavailable("PostgreSQL"):
            updated, released = await self.store.retry(run.id)
        try:
            await self.engine.dispatcher.follow_up(released, [])
        except STORE_ERRORS as exc:
            log.warning(
                "redis unavailable; retried steps of %s wait for the sweep: %s", run.id, exc
            )
        assert updated is not None
        return updated
