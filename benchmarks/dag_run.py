"""A seeded random DAG through ``taskflow dev``, every edge checked from the records.

    python benchmarks/dag_run.py [--steps 1000] [--seed 7] [--max-parents 3] [--workers 2]

Starts ``taskflow dev`` on free ports with a fresh data dir, builds a DAG of ``--steps`` steps
whose edges only go forward (step i depends on up to ``--max-parents`` of the steps before
it, chosen with the seed), submits it with the Python client and waits for it. Then, from
PostgreSQL: every step succeeded with exactly one attempt (released once), every step started
after each of its parents had finished, and the release latency (a step's start minus its last
parent's end) per step. Prints wall time, steps/s and the latency percentiles.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.dev_throughput import Dev
from taskflow_client import Client, Step

EDGES_SQL = """
SELECT c.step, c.started_at, c.attempts, c.state,
       (SELECT count(*) FROM task_attempts a WHERE a.task_id = c.id AND a.outcome = 'succeeded'),
       p.step, p.finished_at
FROM tasks c
LEFT JOIN dag_edges e ON e.child_id = c.id
LEFT JOIN tasks p ON p.id = e.parent_id
WHERE c.run_id = %s
"""


def random_dag(steps: int, seed: int, max_parents: int, shape: str) -> list[Step]:
    rng = random.Random(seed)
    out = []
    for i in range(steps):
        if shape == "chain":
            out.append(Step(f"s{i}", "collect", {"i": i}, depends_on=[f"s{i - 1}"] if i else []))
            continue
        candidates = range(max(0, i - 50), i)  # local edges: a deep graph, not a flat one
        n = rng.randint(0, min(max_parents, len(candidates)))
        parents = sorted(rng.sample(list(candidates), n))
        out.append(Step(f"s{i}", "collect", {"i": i}, depends_on=[f"s{p}" for p in parents]))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-parents", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--shape", choices=["random", "chain"], default="random")
    args = parser.parse_args()
    dag = random_dag(args.steps, args.seed, args.max_parents, args.shape)
    edges = sum(len(s.depends_on) for s in dag)
    tmp = Path(tempfile.mkdtemp(prefix="taskflow-dag-bench-"))
    dev = Dev(tmp / "data", args.workers, args.concurrency)
    try:
        with Client(dev.addr) as client:
            started = time.perf_counter()
            run_id = client.submit_dag(dag, queue="default")
            run = client.wait_dag(run_id, timeout=1800)
            wall = time.perf_counter() - started
        with psycopg.connect(dev.database_url) as conn:
            rows = conn.execute(EDGES_SQL, (run_id,)).fetchall()
    finally:
        code = dev.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    problems: list[str] = []
    starts: dict[str, tuple[object, int, str, int]] = {}
    last_parent_end: dict[str, object] = {}
    checked = 0
    for step, started_at, attempts, state, succeeded, parent, parent_end in rows:
        starts[step] = (started_at, attempts, state, succeeded)
        if parent is None:
            continue
        checked += 1
        if parent_end is None or started_at is None or started_at < parent_end:
            problems.append(f"{step} started at {started_at}, before {parent} ended ({parent_end})")
        if step not in last_parent_end or parent_end > last_parent_end[step]:  # type: ignore[operator]
            last_parent_end[step] = parent_end
    for step, (_, attempts, state, succeeded) in starts.items():
        if (state, attempts, succeeded) != ("succeeded", 1, 1):
            problems.append(f"{step}: {state} after {attempts} attempt(s), {succeeded} succeeded")
    latency = [
        (starts[s][0] - end).total_seconds() * 1000  # type: ignore[operator]
        for s, end in last_parent_end.items()
        if starts[s][0] is not None and end is not None
    ]
    print(
        f"run {run.state}: {args.steps} steps, {edges} edges (seed {args.seed}); "
        f"{wall:.2f}s wall, {args.steps / wall:,.0f} steps/s; "
        f"{args.workers} worker(s) x {args.concurrency}"
    )
    print(
        f"release latency (last parent's end -> child's start), {len(latency)} steps: "
        f"p50 {percentile(latency, 0.5):.1f} ms, p99 {percentile(latency, 0.99):.1f} ms, "
        f"max {max(latency):.1f} ms"
    )
    for name, info in run.step_info.items():
        if info.state == "failed":
            print(f"step {name} failed: {info.error}")
    print(f"edges checked from the records: {checked}; problems: {len(problems)}")
    for problem in problems[:20]:
        print(f"  {problem}")
    if code != 0:
        print(f"taskflow dev exited with {code}", file=sys.stderr)
    return 1 if problems or run.state != "succeeded" else 0


if __name__ == "__main__":
    raise SystemExit(main())
