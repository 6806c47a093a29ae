"""The engine's data model: submissions (validated), records (from PostgreSQL), claims."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from taskflow.errors import InvalidArgument
from taskflow.keys import QueueRef
from taskflow.values import (
    COMPACT_JSON,
    UnstorableValue,
    encode_json,
    handler_problem,
    labels_problem,
    parse_json_text,
    shown,
    unsafe_char_problem,
)


class TaskState(StrEnum):
    #: A DAG step whose parents have not all succeeded yet (Redis does not know it).
    WAITING = "waiting"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})
ACTIVE_STATES = frozenset(set(TaskState) - TERMINAL_STATES)

MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$"
_NAMESPACE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


def new_task_id() -> str:
    """A UUIDv7: time-ordered, so inserts land at the end of the primary key index."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68) << 64  # 12 random bits
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def parse_task_id(raw: str, field_name: str = "task_id") -> str:
    """Normalize a task id, or raise ``InvalidArgument`` naming the field."""
    if not raw:
        raise InvalidArgument(field_name, "is required")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise InvalidArgument(field_name, f"{shown(raw)} is not a task id (a UUID)") from None


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_seconds: float = Field(default=1.0, ge=0, le=86400)
    multiplier: float = Field(default=2.0, ge=1, le=100)
    max_seconds: float = Field(default=300.0, ge=0, le=7 * 86400)


class TaskSubmission(BaseModel):
    """A task as a client asks for it; every field is checked before anything is stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(default="default", pattern=_NAMESPACE_PATTERN)
    queue: str = Field(pattern=_NAME_PATTERN)
    handler: str = Field(min_length=1, max_length=200)  # and handler_problem()
    #: The payload as JSON text, exactly as the client sent it (checked storable once, here).
    payload_json: str = "null"
    priority: int = Field(default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    delay_seconds: float = Field(default=0.0, ge=0, le=366 * 86400)
    run_at: datetime | None = None
    max_retries: int | None = Field(default=None, ge=0, le=1000)
    timeout_seconds: float = Field(default=0.0, ge=0, le=7 * 86400)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    concurrency_key: str | None = Field(default=None, min_length=1, max_length=256)
    concurrency_limit: int | None = Field(default=None, ge=1, le=100000)
    retry: RetryPolicy | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("payload_json")
    @classmethod
    def _check_payload(cls, text: str) -> str:
        if not text:
            return "null"
        try:
            parse_json_text(text)
        except UnstorableValue as exc:
            raise ValueError(str(exc)) from None
        return text

    @field_validator("handler")
    @classmethod
    def _check_handler(cls, name: str) -> str:
        problem = handler_problem(name)
        if problem:
            raise ValueError(problem)
        return name

    @field_validator("idempotency_key", "concurrency_key")
    @classmethod
    def _check_key(cls, key: str | None) -> str | None:
        problem = None if key is None else unsafe_char_problem(key)
        if problem:
            raise ValueError(problem)
        return key

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        problem = labels_problem(labels)
        if problem:
            raise ValueError(problem)
        return labels

    @property
    def payload(self) -> Any:
        return json.loads(self.payload_json)

    @model_validator(mode="after")
    def _check_combinations(self) -> TaskSubmission:
        if self.run_at is not None and self.delay_seconds:
            raise ValueError("delay_seconds and run_at are exclusive: give one of them")
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValueError("run_at must carry a time zone")
        if self.concurrency_key and not self.concurrency_limit:
            raise ValueError("concurrency_limit is required with concurrency_key")
        if self.concurrency_limit and not self.concurrency_key:
            raise ValueError("concurrency_key is required with concurrency_limit")
        return self

    @property
    def queue_ref(self) -> QueueRef:
        return QueueRef(self.namespace, self.queue)

    def due_at(self, now: datetime) -> datetime:
        if self.run_at is not None:
            return self.run_at
        if self.delay_seconds:
            return datetime.fromtimestamp(now.timestamp() + self.delay_seconds, UTC)
        return now


def validate_submission(raw: dict[str, Any], path: str = "task") -> TaskSubmission:
    """Build a submission, turning the first validation problem into ``InvalidArgument``.

    ``raw`` carries the payload either as a value (``payload``) or as JSON text
    (``payload_json``, as the API receives it).
    """
    if "payload" in raw:
        raw = dict(raw)
        if "payload_json" in raw:
            raise InvalidArgument(path, "give payload or payload_json, not both")
        try:
            raw["payload_json"] = encode_json(raw.pop("payload"))
        except UnstorableValue as exc:
            raise InvalidArgument(f"{path}.payload", str(exc)) from None
    try:
        return TaskSubmission.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        name = f"{path}.{loc}" if loc else path
        message = str(err["msg"]).removeprefix("Value error, ")
        raise InvalidArgument(name, message) from None


_RETRY_POLICIES: dict[tuple[float, float, float], RetryPolicy] = {}


def retry_policy(initial: float, multiplier: float, cap: float) -> RetryPolicy:
    """The (frozen, so shared) policy of these settings: a worker decodes one per claimed task,
    nearly always one of a few."""
    key = (initial, multiplier, cap)
    policy = _RETRY_POLICIES.get(key)
    if policy is None:
        if len(_RETRY_POLICIES) >= 256:
            _RETRY_POLICIES.clear()
        policy = RetryPolicy(initial_seconds=initial, multiplier=multiplier, max_seconds=cap)
        _RETRY_POLICIES[key] = policy
    return policy


def _json(value: str | float | None) -> str:
    """One JSON scalar, as ``json.dumps`` writes it."""
    if type(value) is int or type(value) is float:
        return repr(value)  # what json.dumps writes for finite numbers
    return COMPACT_JSON.encode(value)


#: The label that carries a task's W3C trace context from its submission to its worker.
TRACEPARENT_LABEL = "taskflow.dev/traceparent"


@dataclass(frozen=True)
class DispatchBlob:
    """What Redis keeps of a task so a worker can run it without reading PostgreSQL."""

    id: str
    handler: str
    payload_json: str
    max_retries: int
    timeout_seconds: float
    retry: RetryPolicy
    #: False when the submission left max_retries to the handler's (or the queue's) default.
    max_retries_set: bool = True
    #: The DAG run and step name of a step (its handler sees its parents' results).
    run_id: str | None = None
    step: str | None = None
    #: When a delayed task became due (epoch ms; 0: ready at submission), for queue-wait times.
    due_ms: int = 0
    #: The W3C trace context of the submitting call (``taskflow.telemetry.tracing``).
    traceparent: str | None = None

    def encode(self) -> str:
        """One line of JSON settings, a newline, then the payload text as it was submitted
        (never re-encoded: a large payload is copied, not escaped)."""
        # Written out rather than through json.dumps (a dict and an encoder per task were a
        # tenth of a batch submit's work); the same text json.dumps gives, checked by tests.
        r = self.retry
        header = (
            f'{{"h":{_json(self.handler)},"r":{_json(self.max_retries)},'
            f'"rs":{"true" if self.max_retries_set else "false"},"t":{_json(self.timeout_seconds)},'
            f'"b":[{_json(r.initial_seconds)},{_json(r.multiplier)},{_json(r.max_seconds)}]'
        )
        if self.run_id:
            header += f',"d":[{_json(self.run_id)},{_json(self.step)}]'
        if self.due_ms:
            header += f',"q":{_json(self.due_ms)}'
        if self.traceparent:
            header += f',"tp":{_json(self.traceparent)}'
        header += "}"
        return f"{header}\n{self.payload_json}"

    @classmethod
    def decode(cls, task_id: str, raw: str | bytes) -> DispatchBlob:
        text = raw.decode() if isinstance(raw, bytes) else raw
        header, _, payload_json = text.partition("\n")
        d = json.loads(header)
        initial, multiplier, cap = d["b"]
        run_id, step = d.get("d") or (None, None)
        return cls(
            id=task_id,
            handler=d["h"],
            payload_json=payload_json or "null",
            max_retries=d["r"],
            max_retries_set=d.get("rs", True),
            timeout_seconds=d["t"],
            retry=retry_policy(initial, multiplier, cap),
            run_id=run_id,
            step=step,
            due_ms=d.get("q", 0),
            traceparent=d.get("tp"),
        )


@dataclass(frozen=True)
class ClaimedTask:
    """A task leased to a worker. ``token`` fences every later transition of this claim."""

    queue: QueueRef
    id: str
    token: str
    attempt: int
    failures: int  # earlier attempts that ended in an application failure
    blob: DispatchBlob
    #: A DAG step's parents' results by step name (read from PostgreSQL when it is claimed).
    parents: dict[str, Any] = field(default_factory=dict)

    @property
    def handler(self) -> str:
        return self.blob.handler


@dataclass(frozen=True)
class ExpiredLease:
    """A lease Redis reports expired: the attempt it held and the task's lost leases so far."""

    task_id: str
    attempt: int
    token: str
    worker: str
    lost: int
    cancel_requested: bool


@dataclass(frozen=True)
class Attempt:
    number: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error: str | None


@dataclass(frozen=True, slots=True)
class PendingTask:
    """What the housekeeping sweep needs of a pending task to check it against Redis."""

    id: str
    namespace: str
    queue: str
    updated_at: datetime

    @property
    def queue_ref(self) -> QueueRef:
        return QueueRef(self.namespace, self.queue)


@dataclass(frozen=True)
class TaskRecord:
    """A task as PostgreSQL records it."""

    id: str
    namespace: str
    queue: str
    handler: str
    state: TaskState
    payload_json: str
    priority: int
    attempts: int
    failures: int
    max_retries: int
    timeout_seconds: float
    retry: RetryPolicy
    idempotency_key: str | None
    concurrency_key: str | None
    concurrency_limit: int | None
    labels: dict[str, str]
    created_at: datetime
    run_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    max_retries_set: bool = True
    attempt_history: tuple[Attempt, ...] = field(default_factory=tuple)
    run_id: str | None = None
    step: str | None = None
    skipped: bool = False  # a DAG step that never ran because the run could not reach it

    @property
    def queue_ref(self) -> QueueRef:
        return QueueRef(self.namespace, self.queue)

    @property
    def payload(self) -> Any:
        return json.loads(self.payload_json)

    @property
    def result(self) -> Any:
        return None if self.result_json is None else json.loads(self.result_json)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    def visible_state(self, now: datetime) -> TaskState:
        """``scheduled`` turns into ``queued`` once its time has come."""
        if self.state == TaskState.SCHEDULED and self.run_at is not None and self.run_at <= now:
            return TaskState.QUEUED
        return self.state

    def dispatch_blob(self) -> DispatchBlob:
        return DispatchBlob(
            id=self.id,
            handler=self.handler,
            payload_json=self.payload_json,
            max_retries=self.max_retries,
            timeout_seconds=self.timeout_seconds,
            retry=self.retry,
            max_retries_set=self.max_retries_set,
            run_id=self.run_id,
            step=self.step,
            due_ms=int(self.run_at.timestamp() * 1000) if self.run_at else 0,
            traceparent=self.labels.get(TRACEPARENT_LABEL),
        )


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``per_second`` tokens a second, at most ``burst`` saved up."""

    per_second: float
    burst: int


@dataclass(frozen=True)
class QueueConfig:
    """Per-queue settings; None means the global default (``Settings``)."""

    max_retries: int | None = None
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = None
    rate: RateLimit | None = None


@dataclass(frozen=True)
class QueueStats:
    namespace: str
    queue: str
    ready: int = 0
    scheduled: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    dead_letters: int = 0
    due_delayed: int = 0

    @property
    def backlog(self) -> int:
        """What autoscaling looks at: ready + running + delayed tasks already due."""
        return self.ready + self.running + self.due_delayed


@dataclass(frozen=True)
class WorkerStatus:
    """What a worker announces with each heartbeat (``keys.WORKERS``)."""

    name: str
    queues: tuple[str, ...]  # qualified names
    concurrency: int
    in_flight: int
    abandoned: int  # handlers that ignored a cancel or a timeout and still run
    claimed: int
    finished: int
    started_at: datetime
    seen_at: datetime

    def encode(self) -> str:
        return COMPACT_JSON.encode(
            {
                "queues": list(self.queues),
                "concurrency": self.concurrency,
                "in_flight": self.in_flight,
                "abandoned": self.abandoned,
                "claimed": self.claimed,
                "finished": self.finished,
                "started_at": self.started_at.isoformat(),
                "seen_at": self.seen_at.isoformat(),
            }
        )

    @classmethod
    def decode(cls, name: str, raw: str | bytes) -> WorkerStatus:
        d = json.loads(raw)
        return cls(
            name=name,
            queues=tuple(d["queues"]),
            concurrency=int(d["concurrency"]),
            in_flight=int(d["in_flight"]),
            abandoned=int(d["abandoned"]),
            claimed=int(d["claimed"]),
            finished=int(d["finished"]),
            started_at=datetime.fromisoformat(d["started_at"]),
            seen_at=datetime.fromisoformat(d["seen_at"]),
        )


@dataclass(frozen=True)
class SubmitResult:
    task_id: str
    created: bool


class Outcome(StrEnum):
    """How one attempt ended, as recorded in ``task_attempts.outcome``."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    LOST = "lost"
    CANCELLED = "cancelled"
    RELEASED = "released"
    #: Claimed after the task had already finished (a duplicate delivery): not its outcome.
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class AttemptResult:
    """How one attempt ended and what it makes of the task, as the completion path records it.

    ``token`` is the fencing token of the claim: the record of an attempt is written once, by
    the first of its worker, a cancel or housekeeping (see ``store.tasks.record_batch``).
    """

    task_id: str
    attempt: int
    token: str
    worker: str
    state: TaskState  # the task's new state: succeeded, failed, cancelled, retrying, queued
    outcome: Outcome
    finished_at: datetime
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    next_run_at: datetime | None = None
    count_failure: bool = False
    run_id: str | None = None  # a DAG step: its end is applied to its run in the same write


def utcnow() -> datetime:
    return datetime.now(UTC)
