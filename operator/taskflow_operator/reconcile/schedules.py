"""``TaskQueue.spec.schedules``: the engine's schedules of each queue kept equal to the list.

A schedule the operator manages is named ``<queue>.<name>`` in the queue's namespace and owned
by ``k8s:taskqueue:<namespace>/<queue>`` (the engine's ``owner`` field): the operator creates,
updates and deletes only schedules it owns, so schedules made through the API or a schedule
file are left alone. One ``ScheduleKeeper`` pass lists the owned schedules and the TaskQueues,
syncs the queues whose declared list differs from the engine's (one transaction per queue),
deletes the schedules of queues that are gone, and writes each queue's ``status.schedules``
(synced or why not, next and last fire time) when it changed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import TypeAdapter, ValidationError

from taskflow.errors import AlreadyExists, InvalidArgument, NotFound
from taskflow.scheduling.models import ScheduleRecord, ScheduleSpec, validate_schedule
from taskflow.scheduling.service import ScheduleService
from taskflow.waiting import first_of
from taskflow_operator.context import OperatorContext
from taskflow_operator.crd import TASKQUEUE
from taskflow_operator.crd.schedule import QueueSchedule
from taskflow_operator.events import NORMAL, WARNING, post_event
from taskflow_operator.reconcile.dagruns import spec_field, step_fields
from taskflow_operator.taskstatus import rfc3339

log = logging.getLogger("taskflow.operator.schedules")
PLURAL = TASKQUEUE.plural
OWNER_PREFIX = "k8s:taskqueue:"
PAGE = 1000
_SCHEDULES = TypeAdapter(list[QueueSchedule])


def owner_of(namespace: str, queue: str) -> str:
    return f"{OWNER_PREFIX}{namespace}/{queue}"


def engine_name(queue: str, name: str) -> str:
    return f"{queue}.{name}"


@dataclass
class Declared:
    """What one TaskQueue declares: the engine specs, or why each bad one is refused."""

    names: list[str] = field(default_factory=list)
    specs: dict[str, ScheduleSpec] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.problems


def _target(queue: str, s: QueueSchedule) -> tuple[str, dict[str, Any]]:
    if s.dag is not None:
        steps = [step_fields(step) for step in s.dag.steps]
        return "dag", {
            "queue": queue,
            "name": engine_name(queue, s.name),
            "failure_policy": s.dag.failure_policy.value,
            "steps": steps,
        }
    assert s.task is not None  # the schema requires one of task and dag
    task: dict[str, Any] = {
        "queue": queue,
        "handler": s.task.handler,
        "payload": s.task.payload,
        "priority": s.task.priority,
    }
    if s.task.max_retries is not None:
        task["max_retries"] = s.task.max_retries
    if s.task.timeout_seconds is not None:
        task["timeout_seconds"] = s.task.timeout_seconds
    return "task", task


def declared(body: Any) -> Declared:
    """The schedules a TaskQueue body declares, each checked as the engine checks it."""
    meta = body["metadata"]
    namespace, queue = meta["namespace"], meta["name"]
    out = Declared()
    raw = (body.get("spec") or {}).get("schedules") or []
    try:
        items = _SCHEDULES.validate_python(raw)
    except ValidationError as exc:
        # The API server's schema refuses these first; an object stored before it did.
        err = exc.errors()[0]
        loc = list(err["loc"])
        index = loc[0] if loc and isinstance(loc[0], int) else 0
        item = raw[index] if isinstance(raw, list) and index < len(raw) else None
        name = str(item.get("name")) if isinstance(item, dict) else f"schedules[{index}]"
        where = f"spec.schedules[{index}]" + "".join(f".{p}" for p in loc[1:])
        out.names.append(name)
        out.problems[name] = f"{spec_field(where)}: {err['msg']}"
        return out
    for i, s in enumerate(items):
        out.names.append(s.name)
        kind, target = _target(queue, s)
        try:
            out.specs[s.name] = validate_schedule(
                namespace=namespace,
                name=engine_name(queue, s.name),
                cron=s.cron,
                timezone=s.timezone,
                concurrency_policy=s.concurrency_policy.value,
                suspend=s.suspend,
                starting_deadline_seconds=s.starting_deadline_seconds,
                kind=kind,
                target=target,
                owner=owner_of(namespace, queue),
                path=f"spec.schedules[{i}]",
            )
        except InvalidArgument as exc:
            out.problems[s.name] = f"{spec_field(exc.field)}: {exc.problem}"
    return out


def schedule_status(
    queue: str, name: str, d: Declared, record: ScheduleRecord | None, now: datetime
) -> dict[str, Any]:
    """How one declared schedule shows in ``status.schedules`` (``record``: the engine's
    schedule of that name the queue owns, if any)."""
    spec = d.specs.get(name)
    entry: dict[str, Any] = {"name": name, "schedule": engine_name(queue, name), "synced": False}
    problem = d.problems.get(name)
    if problem is None and (record is None or record.spec != spec):
        # The list is synced whole: one refused entry holds back the others' changes.
        problem = "not synced yet" if d.valid else "not synced: another schedule is refused"
    if problem is not None:
        entry["message"] = problem
    else:
        entry["synced"] = True
    if record is not None:
        upcoming = record.upcoming(now)
        if upcoming is not None:
            entry["nextFireTime"] = rfc3339(upcoming)
        if record.last_fire_tick is not None:
            entry["lastFireTime"] = rfc3339(record.last_fire_tick)
        if record.last_task_id:
            entry["lastFiredId"] = record.last_task_id
        entry["fires"] = record.fire_count
        entry["skips"] = record.skip_count
    return entry


@dataclass
class KeeperPass:
    synced: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    written: int = 0


@dataclass
class ScheduleKeeper:
    ctx: OperatorContext
    service: ScheduleService = field(init=False)
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.service = ScheduleService(self.ctx.engine)

    def wake(self) -> None:
        self.woken.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Every ``task_poll_seconds`` (or when woken) while this operator leads."""
        while not stop.is_set():
            self.woken.clear()
            if self.ctx.leadership.active:
                try:
                    await self.pass_once()
                except Exception:
                    self.ctx.metrics.errors.labels("TaskQueue").inc()
                    log.exception("syncing TaskQueue schedules failed; retrying")
            await first_of(stop, self.woken, timeout=self.ctx.config.task_poll_seconds)

    def _namespaces(self) -> list[str | None]:
        return list(self.ctx.config.namespaces) or [None]

    async def _owned(self) -> dict[str, dict[str, ScheduleRecord]]:
        """The schedules this operator manages, by owner then engine name."""
        out: dict[str, dict[str, ScheduleRecord]] = {}
        for namespace in self._namespaces():
            token: str | None = None
            while True:
                rows, token = await self.service.list_page(namespace, PAGE, token)
                for r in rows:
                    if r.spec.owner.startswith(OWNER_PREFIX):
                        out.setdefault(r.spec.owner, {})[r.name] = r
                if token is None:
                    break
        return out

    async def pass_once(self) -> KeeperPass:
        result = KeeperPass()
        # The engine first, then the queues: a schedule listed here was synced before the
        # queue listing began, so its queue is listed unless it is really gone.
        owned = await self._owned()
        bodies: list[dict[str, Any]] = []
        for namespace in self._namespaces():
            bodies.extend(await self.ctx.kube.list_objects(PLURAL, namespace))
        live: dict[str, tuple[dict[str, Any], Declared]] = {}
        for body in bodies:
            meta = body["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            live[owner_of(meta["namespace"], meta["name"])] = (body, declared(body))
        changed = False
        for owner, (body, d) in live.items():
            have = owned.get(owner, {})
            want = {s.name: s for s in d.specs.values()}
            if not d.valid or _same(have, want):
                continue
            problems = await self._sync(body, owner, d, have)
            d.problems.update(problems)
            result.synced.append(owner)
            changed = True
        for owner in set(owned) - set(live):
            await self.service.sync(owner, [])
            log.info("deleted the schedules of a gone TaskQueue", extra={"owner": owner})
            result.pruned.append(owner)
            changed = True
        if changed:
            owned = await self._owned()
        now = datetime.now(UTC)
        for owner, (body, d) in live.items():
            result.written += await self._write_status(body, d, owned.get(owner, {}), now)
        return result

    async def _sync(
        self,
        body: Any,
        owner: str,
        d: Declared,
        have: dict[str, ScheduleRecord],
    ) -> dict[str, str]:
        """Sync one queue's schedules; the problems that kept it from happening, by name."""
        specs = list(d.specs.values())
        short = {s.name: n for n, s in d.specs.items()}
        for spec in specs:
            if spec.name in have:
                continue
            existing = await _get(self.service, spec.namespace, spec.name)
            if existing is not None and existing.spec.owner != owner:
                who = existing.spec.owner or "the API"
                return {
                    short[spec.name]: f"a schedule {spec.name!r} already exists in namespace "
                    f"{spec.namespace!r}, managed by {who}: rename this one or delete that one"
                }
        try:
            done = await self.service.sync(owner, specs, path="spec.schedules")
        except (AlreadyExists, InvalidArgument) as exc:
            first = next(iter(short.values()), "")
            return {first: str(exc)}
        parts = [
            f"{verb} {', '.join(names)}"
            for verb, names in (
                ("created", done.created),
                ("updated", done.updated),
                ("deleted", done.deleted),
            )
            if names
        ]
        if parts:
            await post_event(self.ctx.kube, body, NORMAL, "SchedulesSynced", "; ".join(parts))
        return {}

    async def _write_status(
        self, body: Any, d: Declared, have: dict[str, ScheduleRecord], now: datetime
    ) -> int:
        meta = body["metadata"]
        queue = meta["name"]
        wanted = [
            schedule_status(queue, n, d, have.get(engine_name(queue, n)), now) for n in d.names
        ]
        current = list((body.get("status") or {}).get("schedules") or [])
        if current == wanted:
            return 0
        before = {e.get("name"): e.get("message") for e in current}
        for entry in wanted:
            problem = d.problems.get(entry["name"])
            if problem and before.get(entry["name"]) != problem:
                await post_event(self.ctx.kube, body, WARNING, "InvalidSchedule", problem)
        try:
            await self.ctx.kube.patch_status(
                PLURAL, meta["namespace"], queue, {"schedules": wanted}
            )
        except ApiException as exc:
            if exc.status == 404:  # deleted since it was listed
                return 0
            raise
        return 1


def _same(have: dict[str, ScheduleRecord], want: dict[str, ScheduleSpec]) -> bool:
    return set(have) == set(want) and all(have[n].spec == s for n, s in want.items())


async def _get(service: ScheduleService, namespace: str, name: str) -> ScheduleRecord | None:
    try:
        return await service.get(namespace, name)
    except NotFound:
        return None
