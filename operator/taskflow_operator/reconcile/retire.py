"""A deleted TaskQueue's unfinished tasks are cancelled.

With its TaskQueue gone, a queue has no workers and never will: its waiting tasks would stay
``queued`` forever, and the ``Task`` objects that point at it would say so. Deleting the
TaskQueue therefore cancels every task of that queue that has not finished (scheduled, queued,
retrying, DAG steps waiting for their parents, and running ones, which stop as soon as their
worker hears, as with ``taskflow cancel``), whether it was submitted over gRPC or as a
``Task``; the ``Task`` objects then show ``Cancelled``. Finished tasks and their results stay.
"""

from __future__ import annotations

import logging

from taskflow.errors import NotFound
from taskflow.keys import QueueRef
from taskflow.models import TERMINAL_STATES, TaskState
from taskflow_operator.context import OperatorContext

log = logging.getLogger("taskflow.operator.retire")
UNFINISHED = [s.value for s in TaskState if s not in TERMINAL_STATES]
PAGE = 500


async def cancel_unfinished(ctx: OperatorContext, ref: QueueRef) -> int:
    """Cancel the queue's unfinished tasks; how many were cancelled."""
    cancelled = 0
    token: str | None = None
    while True:
        page, token = await ctx.engine.list_tasks(
            namespace=ref.namespace,
            queue=ref.name,
            states=UNFINISHED,
            page_size=PAGE,
            page_token=token,
        )
        for task in page:
            try:
                ended = await ctx.engine.cancel(task.id)
            except NotFound:
                continue
            cancelled += ended.state is TaskState.CANCELLED
        if token is None:
            break
    if cancelled:
        log.info(
            "cancelled %d unfinished task(s) of deleted queue %s/%s",
            cancelled,
            ref.namespace,
            ref.name,
        )
    return cancelled
