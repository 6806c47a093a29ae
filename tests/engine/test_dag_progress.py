"""``DagStore.progress``: many runs' states and steps in one read."""

from __future__ import annotations

from taskflow.workflows.service import DagService
from tests.engine.conftest import SubmitDag


async def test_progress_reads_many_runs_with_their_steps_in_order(
    dags: DagService, submit_dag: SubmitDag
) -> None:
    first = await submit_dag(
        [
            {"name": "a", "handler": "step"},
            {"name": "b", "handler": "step", "depends_on": ["a"]},
            {"name": "c", "handler": "step", "depends_on": ["b"]},
        ]
    )
    second = await submit_dag([{"name": "only", "handler": "step"}])
    await dags.cancel(second)
    missing = "01890000-0000-7000-8000-000000000000"
    runs = {r.id: r for r in await dags.store.progress([first, second, missing])}
    assert set(runs) == {first, second}
    assert runs[first].state == "running"
    assert [(s.name, s.state) for s in runs[first].steps] == [
        ("a", "queued"),
        ("b", "waiting"),
        ("c", "waiting"),
    ]
    assert runs[second].state == "cancelled" and runs[second].finished_at is not None
    assert [(s.name, s.state) for s in runs[second].steps] == [("only", "skipped")]
    assert await dags.store.progress([]) == []
