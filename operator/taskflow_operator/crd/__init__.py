"""The custom resources: pydantic models are the single source of truth of their schemas."""

from __future__ import annotations

from taskflow_operator.crd.base import API_VERSION, CATEGORY, GROUP, VERSION, Kind
from taskflow_operator.crd.dagrun import DAGRUN
from taskflow_operator.crd.task import TASK
from taskflow_operator.crd.taskqueue import TASKQUEUE

#: Every kind the operator serves; a new kind is one model module plus one entry here.
KINDS: tuple[Kind, ...] = (TASKQUEUE, TASK, DAGRUN)

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "DAGRUN",
    "GROUP",
    "KINDS",
    "TASK",
    "TASKQUEUE",
    "VERSION",
    "Kind",
]
