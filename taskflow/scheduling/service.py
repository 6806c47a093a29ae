"""Managing schedules: what the API and ``taskflow dev --schedules`` call."""

from __future__ import annotations

from collections.abc import Sequence

from taskflow.engine import Engine
from taskflow.errors import InvalidArgument, NotFound, unavailable
from taskflow.scheduling.clock import SYSTEM_CLOCK, Clock
from taskflow.scheduling.models import ScheduleRecord, ScheduleSpec
from taskflow.scheduling.store import PutResult, ScheduleStore, SyncResult

MAX_PAGE = 1000
DEFAULT_PAGE = 100


class ScheduleService:
    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.store = ScheduleStore(engine.store.pool)
        self.clock = clock

    def check(self, spec: ScheduleSpec, payload_field: str) -> None:
        """What validation of the spec alone cannot know: the server's payload limit."""
        if spec.kind == "dag":
            for i, step in enumerate(spec.dag().steps):
                self.engine.check_payload(step.task, f"schedule.dag.steps[{i}].payload_json")
        else:
            self.engine.check_payload(spec.task(), payload_field)

    async def put(
        self, spec: ScheduleSpec, *, payload_field: str = "schedule.task.payload_json"
    ) -> PutResult:
        """Create or update the schedule named by ``spec``."""
        self.check(spec, payload_field)
        with unavailable("PostgreSQL"):
            return await self.store.put(spec, self.clock.now())

    async def sync(
        self, owner: str, specs: Sequence[ScheduleSpec], *, path: str = "schedules"
    ) -> SyncResult:
        """Make ``owner``'s schedules exactly ``specs`` (see ``ScheduleStore.sync``)."""
        if not owner:
            raise InvalidArgument("owner", "is required to sync a set of schedules")
        seen: dict[tuple[str, str], int] = {}
        for i, spec in enumerate(specs):
            if spec.owner != owner:
                raise InvalidArgument(f"{path}[{i}].owner", f"must be {owner!r}")
            key = (spec.namespace, spec.name)
            if key in seen:
                raise InvalidArgument(
                    f"{path}[{i}].name",
                    f"{spec.name!r} is already the name of {path}[{seen[key]}] "
                    f"in namespace {spec.namespace!r}",
                )
            seen[key] = i
            self.check(spec, f"{path}[{i}].task.payload")
        with unavailable("PostgreSQL"):
            return await self.store.sync(owner, specs, self.clock.now())

    async def get(self, namespace: str, name: str) -> ScheduleRecord:
        _require_name(name)
        with unavailable("PostgreSQL"):
            record = await self.store.get(namespace or "default", name)
        if record is None:
            raise NotFound(f"schedule {name!r} not found in namespace {namespace or 'default'!r}")
        return record

    async def list_page(
        self, namespace: str | None, page_size: int = 0, page_token: str | None = None
    ) -> tuple[list[ScheduleRecord], str | None]:
        """One page ordered by namespace and name, and the token of the next page."""
        if page_size < 0 or page_size > MAX_PAGE:
            raise InvalidArgument(
                "page_size", f"must be between 1 and {MAX_PAGE} (0 = {DEFAULT_PAGE})"
            )
        size = page_size or DEFAULT_PAGE
        after: tuple[str, str] | None = None
        if page_token:
            ns, sep, name = page_token.partition("/")
            if not sep or not ns or not name:
                raise InvalidArgument("page_token", f"{page_token!r} is not a page token")
            after = (ns, name)
        with unavailable("PostgreSQL"):
            rows = await self.store.page(namespace or None, after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        token = f"{rows[-1].namespace}/{rows[-1].name}" if more else None
        return rows, token

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete the schedule; False when there was none. Fired tasks are left alone."""
        _require_name(name)
        with unavailable("PostgreSQL"):
            return await self.store.delete(namespace or "default", name)

    async def set_suspended(self, namespace: str, name: str, suspend: bool) -> ScheduleRecord:
        _require_name(name)
        with unavailable("PostgreSQL"):
            record = await self.store.set_suspended(namespace or "default", name, suspend)
        if record is None:
            raise NotFound(f"schedule {name!r} not found in namespace {namespace or 'default'!r}")
        return record


def _require_name(name: str) -> None:
    if not name:
        raise InvalidArgument("name", "is required")
