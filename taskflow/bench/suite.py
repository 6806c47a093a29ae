"""What the suite runs, in order, and how big: ``SuitePlan`` (``--quick`` shrinks it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from taskflow.bench import scenarios as S
from taskflow.bench.redis_cluster import EmbeddedRedisCluster
from taskflow.bench.servers import BenchServers

#: What the suite runs when no ``--scenario`` is named.
SCENARIOS = ("submit", "drain", "latency", "claim", "scale", "dag", "cluster")
#: Run only when named: ``memory`` drains a million tasks (6 to 20 minutes on two cores).
OPTIONAL = ("memory",)
ALL_SCENARIOS = SCENARIOS + OPTIONAL
#: Scenarios on the suite's shared servers (``cluster`` starts its own, see ``run_cluster``).
SHARED = tuple(s for s in ALL_SCENARIOS if s != "cluster")


@dataclass(frozen=True)
class SuitePlan:
    scenarios: tuple[str, ...] = SCENARIOS
    single_submits: int = 3000
    batch_sizes: tuple[int, ...] = (1, 10, 100, 1000)
    batch_tasks: int = 20_000
    drain_tasks: int = 20_000
    drain_workers: int = 2
    concurrency: int = 100
    drain_handlers: tuple[str, ...] = ("noop", "incr", "sleep", "cpu")
    latency_rate: float = 200.0
    latency_tasks: int = 2000
    claim_depths: tuple[int, ...] = (1_000, 10_000, 100_000)
    claims: int = 500
    scale_workers: tuple[int, ...] = (1, 2, 4)
    cluster_masters: tuple[int, ...] = (1, 3)
    cluster_workers: tuple[int, ...] = (2, 4)
    dag_width: int = 50
    dag_runs: int = 10
    memory_tasks: int = 1_000_000
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def quick(cls, scenarios: tuple[str, ...] = SCENARIOS) -> SuitePlan:
        return cls(
            scenarios=scenarios,
            single_submits=500,
            batch_tasks=3000,
            drain_tasks=3000,
            latency_tasks=300,
            claim_depths=(1_000, 10_000),
            claims=200,
            dag_runs=3,
            memory_tasks=50_000,
        )


Step = Callable[[BenchServers, S.Progress], list[S.Result]]


def _one(fn: Callable[..., S.Result], **kw: Any) -> Step:
    return lambda servers, progress: [fn(servers, progress=progress, **kw)]


def _steps(plan: SuitePlan) -> list[tuple[str, Step]]:
    p = plan
    steps: list[tuple[str, Step]] = []
    if "submit" in p.scenarios:
        steps.append(("submit one at a time", _one(S.submit_single, count=p.single_submits)))
        for size in p.batch_sizes:
            n = min(p.batch_tasks, max(size * 20, p.batch_tasks // (10 if size == 1 else 1)))
            steps.append((f"submit batches of {size}", _one(S.submit_batches, size=size, count=n)))
    common = {"workers": p.drain_workers, "concurrency": p.concurrency}
    if "drain" in p.scenarios:
        for h in p.drain_handlers:
            steps.append(
                (
                    f"drain {p.drain_workers}x{p.concurrency} {h}",
                    _one(S.drain, handler=h, count=p.drain_tasks, **common),
                )
            )
    if "latency" in p.scenarios:
        steps.append(
            (
                f"latency at {p.latency_rate:g}/s",
                _one(S.latency, rate=p.latency_rate, count=p.latency_tasks, **common),
            )
        )
    if "claim" in p.scenarios:
        depths, claims = list(p.claim_depths), p.claims
        steps.append(("claim cost vs depth", lambda s, pr: S.claim_cost(s, depths, claims, pr)))
    if "scale" in p.scenarios:
        for w in p.scale_workers:
            steps.append(
                (
                    f"scale {w} worker(s)",
                    _one(
                        S.drain,
                        workers=w,
                        concurrency=p.concurrency,
                        handler="incr",
                        count=p.drain_tasks,
                        scenario="scale",
                    ),
                )
            )
    if "dag" in p.scenarios:
        steps.append(
            (
                f"DAG 1+{p.dag_width}+1",
                _one(S.dag, width=p.dag_width, runs=p.dag_runs, **common),
            )
        )
    if "memory" in p.scenarios:
        steps.append(
            (
                f"memory 1x{p.concurrency}, {p.memory_tasks:,} tasks",
                _one(S.memory, count=p.memory_tasks, concurrency=p.concurrency),
            )
        )
    return steps


def _columns() -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def run_suite(
    servers: BenchServers, plan: SuitePlan, *, show_progress: bool = True
) -> list[S.Result]:
    """Run every step of ``plan`` against ``servers``, with a progress bar per step."""
    results: list[S.Result] = []
    with Progress(*_columns(), disable=not show_progress) as bar:
        for title, step in _steps(plan):
            task = bar.add_task(title, total=None)

            def advance(done: int, total: int, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total)

            results.extend(step(servers, advance))
            bar.update(task, completed=bar.tasks[task].total or 1, total=bar.tasks[task].total or 1)
    return results


def run_cluster(root: Path, plan: SuitePlan, *, show_progress: bool = True) -> list[S.Result]:
    """Drain three queues (one per master when there are three) on a Redis Cluster of each
    size in ``plan.cluster_masters``, with each worker count in ``plan.cluster_workers``."""
    results: list[S.Result] = []
    with Progress(*_columns(), disable=not show_progress) as bar:
        for masters in plan.cluster_masters:
            with (
                EmbeddedRedisCluster(root / f"cluster-{masters}", masters=masters) as cluster,
                BenchServers(root / f"taskflow-{masters}", redis_url=cluster.url) as servers,
            ):
                for workers in plan.cluster_workers:
                    case = f"{masters} master(s), {workers} workers"
                    task = bar.add_task(f"cluster {case}", total=None)

                    def advance(done: int, total: int, task: TaskID = task) -> None:
                        bar.update(task, completed=done, total=total)

                    results.append(
                        S.drain(
                            servers,
                            workers=workers,
                            concurrency=plan.concurrency,
                            handler="incr",
                            count=plan.drain_tasks,
                            progress=advance,
                            scenario="cluster",
                            queues=3,
                            case=case,
                        )
                    )
    return results
