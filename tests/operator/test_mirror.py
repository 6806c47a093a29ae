"""The batched Task mirror and the TTL sweeper, against the real engine and an index like kopf's."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from taskflow.engine import Engine
from taskflow.models import TaskRecord, TaskState, validate_submission
from taskflow_operator.context import EventBudget, Leadership
from taskflow_operator.reconcile.mirror import Followed, Key
from taskflow_operator.reconcile.tasks import (
    cancel_task,
    followed_task,
    idempotency_key,
    task_mirror,
)
from taskflow_operator.reconcile.ttl import Expiring, TtlSweeper
from taskflow_operator.taskstatus import mirrored_status

NS = "mirror"


class FakeKube:
    """Records patches and deletions (it cannot list); objects in ``gone`` answer 404."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.deleted: list[tuple[str, str, str | None]] = []
        self.gone: set[str] = set()

    async def patch_status_if_exists(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> bool:
        if name in self.gone:
            return False
        self.patches.append((namespace, name, status))
        return True

    async def delete_object(
        self, plural: str, namespace: str, name: str, *, uid: str | None = None
    ) -> None:
        self.deleted.append((namespace, name, uid))


def fake_context(kube: FakeKube) -> Any:
    leadership = Leadership()
    leadership.hold()
    config = SimpleNamespace(task_poll_seconds=0.05)
    # No budget for Events: they need a running kopf to post them.
    return SimpleNamespace(
        kube=kube, events=EventBudget(0, 0), leadership=leadership, config=config
    )


class CountingEngine:
    """The engine's batch read, counted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[list[str]] = []
        self.during: list[Any] = []

    async def get_many(self, task_ids: list[str]) -> dict[str, TaskRecord]:
        self.calls.append(list(task_ids))
        for hook in self.during:
            hook()
        return await self.engine.get_many(task_ids)


async def submit(engine: Engine, n: int, key: str | None = None) -> list[str]:
    raw = {"namespace": NS, "queue": "q", "handler": "h", "idempotency_key": key}
    subs = [validate_submission({**raw, "payload": i}, "spec") for i in range(n)]
    return [r.task_id for r in await engine.submit(subs)]


async def followed(engine: Engine, names_ids: list[tuple[str, str]]) -> dict[Key, list[Followed]]:
    """Objects whose status shows their task as it is now."""
    index: dict[Key, list[Followed]] = {}
    now = datetime.now(UTC)
    for name, task_id in names_ids:
        status = mirrored_status(await engine.get(task_id), now)
        index[(NS, name)] = [Followed(NS, name, f"uid-{name}", task_id, status)]
    return index


def task_object(name: str, uid: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name, "uid": uid},
        "spec": {"queue": "q", "handler": "h"},
        "status": status or {},
    }


async def test_a_status_change_reaches_its_object_within_one_tick(engine: Engine) -> None:
    ids = await submit(engine, 3)
    index = await followed(engine, [(f"t{i}", task_id) for i, task_id in enumerate(ids)])
    kube = FakeKube()
    reads = CountingEngine(engine)
    mirror = task_mirror(fake_context(kube), index, reads)  # type: ignore[arg-type]

    assert await mirror.tick() == 0  # all three are queued, as their objects say
    await engine.cancel(ids[1])
    assert await mirror.tick() == 1
    ((ns, name, status),) = kube.patches
    assert (ns, name, status["phase"]) == (NS, "t1", "Cancelled")
    assert status["completionTime"]
    # One query a tick, for every followed Task.
    assert len(reads.calls) == 2 and all(sorted(c) == sorted(ids) for c in reads.calls)

    # Not written again while the index still shows the old status.
    assert await mirror.tick() == 0
    assert len(kube.patches) == 1


async def test_an_object_deleted_mid_tick_is_skipped(engine: Engine) -> None:
    ids = await submit(engine, 3)
    index = await followed(engine, [(f"t{i}", task_id) for i, task_id in enumerate(ids)])
    kube = FakeKube()
    reads = CountingEngine(engine)
    mirror = task_mirror(fake_context(kube), index, reads)  # type: ignore[arg-type]
    for task_id in ids:
        await engine.cancel(task_id)

    # t0 leaves the index while the engine is being read; t2 is gone from the API (404).
    reads.during.append(lambda: index.pop((NS, "t0")))
    kube.gone.add("t2")
    assert await mirror.tick() == 1
    assert [name for _, name, _ in kube.patches] == ["t1"]


async def test_a_task_gone_from_the_engine_reads_as_failed(engine: Engine) -> None:
    index: dict[Key, list[Followed]] = {
        (NS, name): [Followed(NS, name, f"uid-{name}", ref, {"phase": "Queued", "taskId": ref})]
        for name, ref in (("lost", "0190a000-0000-7000-8000-0000000000ff"), ("bad", "not-a-uuid"))
    }
    kube = FakeKube()
    mirror = task_mirror(fake_context(kube), index, engine)
    assert await mirror.tick() == 2
    by_name = {name: status for _, name, status in kube.patches}
    assert by_name["lost"]["phase"] == "Failed"
    assert "gone from the engine" in by_name["lost"]["error"]
    assert by_name["bad"]["phase"] == "Failed"


async def test_a_task_submitted_since_the_last_tick_is_found_by_its_key(engine: Engine) -> None:
    (task_id,) = await submit(engine, 1, key=idempotency_key("uid-new"))
    index: dict[Key, list[Followed]] = {}
    for body in (task_object("new", "uid-new"), task_object("waiting", "uid-waiting")):
        entry = followed_task(body)
        assert entry is not None
        index.update({k: [v] for k, v in entry.items()})
    kube = FakeKube()
    mirror = task_mirror(fake_context(kube), index, engine)
    # The submitted one gets its id and state in one write; the other is left alone.
    assert await mirror.tick() == 1
    ((_, name, status),) = kube.patches
    assert (name, status["taskId"], status["phase"]) == ("new", task_id, "Queued")
    cond = {c["type"]: c["status"] for c in status["conditions"]}
    assert cond == {"Submitted": "True", "Finished": "False"}
    # Finished Tasks are not followed.
    assert followed_task(task_object("done", "u", {"phase": "Succeeded", "taskId": task_id})) == {}


async def test_ttl_deletes_what_is_due_from_the_index_without_listing() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    index: Mapping[Key, list[Expiring]] = {
        (NS, "due"): [Expiring(NS, "due", "uid-due", now - timedelta(seconds=1))],
        (NS, "later"): [Expiring(NS, "later", "uid-later", now + timedelta(seconds=60))],
    }
    kube = FakeKube()
    sweeper = TtlSweeper(fake_context(kube), index)
    assert await sweeper.sweep(now) == 1
    assert kube.deleted == [(NS, "due", "uid-due")]
    # Deleted once, not again while kopf has not yet seen the deletion.
    assert await sweeper.sweep(now) == 0
    assert await sweeper.sweep(now + timedelta(seconds=61)) == 1
    assert kube.deleted[-1] == (NS, "later", "uid-later")


async def test_deleting_a_task_before_its_status_names_the_task_still_cancels_it(
    engine: Engine,
) -> None:
    (task_id,) = await submit(engine, 1, key=idempotency_key("uid-gone"))
    ctx = SimpleNamespace(engine=engine)
    await cancel_task(ctx, task_object("gone", "uid-gone"))  # type: ignore[arg-type]
    assert (await engine.get(task_id)).state is TaskState.CANCELLED
    # Never submitted: nothing to cancel, no error.
    await cancel_task(ctx, task_object("never", "uid-never"))  # type: ignore[arg-type]


async def test_a_finished_task_leaves_the_index_and_is_read_no_more(engine: Engine) -> None:
    """kopf keeps an object's previous index entry when its indexer returns None: the
    indexer answers empty, and the mirror stops reading the task once it has finished."""
    from kopf._core.engines.indexing import OperatorIndexer

    (task_id,) = await submit(engine, 1)
    indexer: OperatorIndexer = OperatorIndexer()
    acckey: Any = (NS, "t", "uid-t")
    indexer.replace(acckey, followed_task(task_object("t", "uid-t", {"taskId": task_id})))
    reads = CountingEngine(engine)
    mirror = task_mirror(fake_context(FakeKube()), indexer.index, reads)  # type: ignore[arg-type]
    await mirror.tick()
    assert reads.calls == [[task_id]]

    done = {"taskId": task_id, "phase": "Succeeded"}
    indexer.replace(acckey, followed_task(task_object("t", "uid-t", done)))
    assert not indexer.index
    await mirror.tick()
    assert len(reads.calls) == 1
