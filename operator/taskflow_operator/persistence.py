"""Where kopf keeps what it has handled: no write of its own per Task.

kopf remembers the last handled state of an object (its "diff-base") to tell a new object
from a changed or a resumed one, by default in an annotation holding a copy of the object:
one more write per object, and a copy of a Task's payload. A Task's spec is immutable, and its
status already says whether it was handled (it has a ``taskId``, or it was refused and
finished), so for Tasks the diff-base is derived from the object itself and never written.
Other kinds (TaskQueue, whose spec changes) keep the annotation.
"""

from __future__ import annotations

from typing import Any

import kopf

from taskflow_operator.crd import TASK
from taskflow_operator.taskstatus import is_finished


def handled(body: Any) -> bool:
    """Whether a Task has been through submission (whatever came of it)."""
    status = dict(body.get("status") or {})
    return bool(status.get("taskId")) or is_finished(status)


class TaskDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Annotations for every kind but ``Task``, whose diff-base is its own essence once its
    status shows it was handled, and nothing (a new object) before."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if body.get("kind") != TASK.kind:
            return super().fetch(body=body)
        return self.build(body=body) if handled(body) else None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if body.get("kind") != TASK.kind:
            super().store(body=body, patch=patch, essence=essence)


class TaskProgressStorage(kopf.AnnotationsProgressStorage):
    """Annotations, as for every kind, without kopf's "kopf-managed" marker on Tasks: a
    Task's progress is only written while its handler retries (it waits for its TaskQueue)
    and purged when it succeeds, so the marker would be the one write left of it."""

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        if body.get("kind") != TASK.kind:
            super()._store_marker(prefix=prefix, patch=patch, body=body)
