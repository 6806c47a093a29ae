"""The operator at scale: N ``Task`` objects on a real control plane, run by ``taskflow dev``.

    python benchmarks/operator_scale.py [--count 10000] [--delayed 0.5] [--delay 60]

Starts the test control plane (etcd + kube-apiserver + kwok, built by ``hack/build-k8s.sh``),
``taskflow dev`` (embedded Redis and PostgreSQL, ``--workers`` x ``--concurrency``) and
``taskflow operator --standalone`` as its own process, creates one TaskQueue and ``--count``
Task objects (a ``--delayed`` share of them with ``delaySeconds: --delay``, so they stay
unfinished for a while) from ``--creators`` threads, then reports:

- the time until every Task is in the engine (after the last object exists), until every
  engine task succeeded and until every object reads ``Succeeded``;
- the operator's CPU and RSS over time (1 s samples), PostgreSQL transactions/s (the whole
  database; the same with no operator running is measured first, as a baseline);
- API requests per object (kube-apiserver's own counters: writes to tasks, Events, GETs);
- the operator's idle cost with every object finished; then, with every object deleted, its
  RSS ``--after`` seconds later, its peak RSS while deleting and its CPU since the first delete.

The operator runs with ``--no-housekeeping``: ``taskflow dev`` sweeps already, and what is
measured is the cost of the objects.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psutil  # type: ignore[import-untyped]
import psycopg
from kubernetes import client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from taskflow.embedded import free_port  # noqa: E402
from tests.k8s.controlplane import (  # noqa: E402
    asset_dir,
    close_api_client,
    missing_assets,
    new_api_client,
    start_control_plane,
)
from tests.k8s.operator_support import install_crds  # noqa: E402

GROUP, VERSION = "taskflow.dev", "v1alpha1"
NAMESPACE, QUEUE = "default", "default"
START_DEADLINE = 120.0
PREFIX = "b-"


class Dev:
    """``taskflow dev`` in a subprocess; the stores' URLs come from its banner."""

    def __init__(self, root: Path, workers: int, concurrency: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
        self.log = (root / "dev.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "taskflow", "--log-level", "WARNING", "dev"),
                *("--workers", str(workers), "--concurrency", str(concurrency)),
                *("--grpc-port", str(free_port()), "--http-port", str(free_port())),
                *("--data-dir", str(root / "data")),
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            start_new_session=True,
        )
        self.urls: dict[str, str] = {}
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + START_DEADLINE
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise SystemExit(f"taskflow dev exited early; see {self.log.name}")
            words = line.split()
            if words and words[0] in ("Redis", "PostgreSQL"):
                self.urls[words[0]] = words[1]
            if line.strip().startswith("worker logs"):
                return

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        finally:
            self.log.close()


class Operator:
    def __init__(self, root: Path, kubeconfig: Path, urls: dict[str, str], poll: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
        env["TASKFLOW_REDIS_URL"] = urls["Redis"]
        env["TASKFLOW_DATABASE_URL"] = urls["PostgreSQL"]
        self.log = (root / "operator.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "taskflow", "operator", "--standalone"),
                *("--kubeconfig", str(kubeconfig), "--namespace", NAMESPACE),
                *("--http-port", "0", "--liveness", "", "--task-poll", str(poll)),
                *("--log-level", "WARNING", "--log-format", "text"),
                # taskflow dev runs housekeeping already: what is measured is the operator's own.
                "--no-housekeeping",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.proc.pid)
        self.ps.cpu_percent()

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        finally:
            self.log.close()


@dataclass
class Sample:
    t: float
    cpu: float  # percent of one core over the last interval
    rss_mb: float
    xacts: int  # PostgreSQL commits + rollbacks so far
    in_engine: int
    succeeded: int


@dataclass
class Sampler:
    op: Operator
    database_url: str
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    t0: float = field(default_factory=time.monotonic)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                self.samples.append(self.take(conn))

    def take(self, conn: psycopg.Connection[Any]) -> Sample:
        xacts = xact_total(conn)
        counts = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded') FROM tasks"
            " WHERE labels->>'k8s.task' LIKE %s",
            (PREFIX + "%",),
        ).fetchone()
        assert counts is not None
        return Sample(
            time.monotonic() - self.t0,
            self.op.ps.cpu_percent(),
            self.op.ps.memory_info().rss / 2**20,
            xacts,
            int(counts[0]),
            int(counts[1]),
        )

    def latest(self) -> Sample:
        while not self.samples:
            time.sleep(0.05)
        return self.samples[-1]

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.t <= end]


def xact_total(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database"
        " WHERE datname = current_database()"
    ).fetchone()
    assert row is not None
    return int(row[0])


def api_counts(api: client.ApiClient) -> Counter[str]:
    """kube-apiserver's request counters for tasks and events, by ``verb resource[/sub]``."""
    response = api.call_api("GET", f"{api.configuration.host}/metrics")
    text = bytes(response.read()).decode()  # type: ignore[no-untyped-call]
    counts: Counter[str] = Counter()
    pattern = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("resource") not in ("tasks", "events", "taskqueues"):
            continue
        sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
        counts[f"{labels['verb']} {labels['resource']}{sub}"] += int(float(m.group(2)))
    return counts


def task_body(i: int, delayed: bool, delay: float) -> dict[str, Any]:
    spec: dict[str, Any] = {"queue": QUEUE, "handler": "noop", "payload": {"i": i}}
    if delayed:
        spec["delaySeconds"] = delay
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Task",
        "metadata": {"name": f"{PREFIX}{i:05d}"},
        "spec": spec,
    }


def phases(custom: client.CustomObjectsApi) -> Counter[str]:
    """Phase counts of the benchmark's Task objects (one LIST from the watch cache)."""
    out = custom.list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "tasks", resource_version="0", _preload_content=False
    )
    items = json.loads(cast(Any, out).data).get("items") or []
    return Counter(
        (i.get("status") or {}).get("phase") or "-"
        for i in items
        if i["metadata"]["name"].startswith(PREFIX)
    )


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.2) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not reached within {timeout:g}s")
        time.sleep(interval)
    return time.monotonic()


def rate(samples: list[Sample]) -> float:
    if len(samples) < 2:
        return 0.0
    return (samples[-1].xacts - samples[0].xacts) / (samples[-1].t - samples[0].t)


def cpu(samples: list[Sample]) -> tuple[float, float]:
    values = [s.cpu for s in samples] or [0.0]
    return sum(values) / len(values), max(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--delayed", type=float, default=0.5, help="share with a delay (0.5)")
    parser.add_argument("--delay", type=float, default=60.0, help="their delaySeconds (60)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--creators", type=int, default=16, help="threads creating objects")
    parser.add_argument("--poll", type=float, default=2.0, help="operator --task-poll (2)")
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds measured (60)")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds before idle (60)")
    parser.add_argument(
        "--after", type=float, default=30.0, help="RSS this long after deletion (30 s)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--series", type=float, default=10.0, help="seconds between rows (10)")
    args = parser.parse_args()

    bin_dir = asset_dir()
    if missing := missing_assets(bin_dir):
        raise SystemExit(f"missing in {bin_dir}: {', '.join(missing)}; run hack/build-k8s.sh")
    root = Path(tempfile.mkdtemp(prefix="taskflow-opscale-"))
    plane = start_control_plane(bin_dir, nodes=1)
    api = new_api_client(plane.kubeconfig)
    custom = client.CustomObjectsApi(api)
    dev = op = sampler = None
    try:
        install_crds(api)
        dev = Dev(root, args.workers, args.concurrency)
        database_url = dev.urls["PostgreSQL"]
        with psycopg.connect(database_url, autocommit=True) as conn:
            x0 = xact_total(conn)
            time.sleep(10)
            baseline = (xact_total(conn) - x0) / 10
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            "taskqueues",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TaskQueue",
                "metadata": {"name": QUEUE},
                "spec": {
                    "image": "registry.example/taskflow-worker:bench",
                    "app": "taskflow_worker.examples:router",
                    "connection": {"secretName": "taskflow-connection"},
                },
            },
        )
        op = Operator(root, plane.kubeconfig, dev.urls, args.poll)
        sampler = Sampler(op, database_url)
        sampler.start()
        started_at = sampler.latest().t
        time.sleep(5)  # the operator starts and settles
        empty_from = time.monotonic() - sampler.t0
        time.sleep(20)
        empty = sampler.between(empty_from, time.monotonic() - sampler.t0)
        api_before = api_counts(api)

        n_delayed = int(args.count * args.delayed)
        bodies = [
            task_body(i, i % 2 == 1 and i // 2 < n_delayed, args.delay) for i in range(args.count)
        ]

        def create(body: dict[str, Any]) -> None:
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "tasks", body)

        t_create = time.monotonic()
        with ThreadPoolExecutor(args.creators) as pool:
            list(pool.map(create, bodies))
        t_created = time.monotonic()
        created_at = t_created - sampler.t0
        print(f"created {args.count} objects in {t_created - t_create:.1f}s", flush=True)

        t_in_engine = wait_for(
            lambda: sampler.latest().in_engine >= args.count, args.timeout, "all submitted"
        )
        print(f"all in the engine {t_in_engine - t_created:.1f}s after the last object", flush=True)
        t_succeeded = wait_for(
            lambda: sampler.latest().succeeded >= args.count, args.timeout, "all succeeded"
        )
        print(f"all succeeded (engine) {t_succeeded - t_created:.1f}s after", flush=True)
        t_objects = wait_for(
            lambda: phases(custom).get("Succeeded", 0) >= args.count,
            args.timeout,
            "all objects Succeeded",
            interval=2.0,
        )
        print(f"all objects Succeeded {t_objects - t_created:.1f}s after", flush=True)
        api_after = api_counts(api)
        busy = sampler.between(created_at - (t_created - t_create), t_objects - sampler.t0)
        peak_rss = max(s.rss_mb for s in sampler.samples)

        time.sleep(args.settle)  # kopf works through the watch events of the last writes
        idle_from = time.monotonic() - sampler.t0
        time.sleep(args.idle)
        idle = sampler.between(idle_from, time.monotonic() - sampler.t0)
        idle_rss = idle[-1].rss_mb if idle else 0.0

        delta = api_after - api_before
        writes = sum(
            v
            for k, v in delta.items()
            if k.split()[0] in ("PATCH", "UPDATE", "APPLY") and k.split()[1].startswith("tasks")
        )
        events = delta.get("POST events", 0)
        gets = sum(v for k, v in delta.items() if k.startswith("GET "))
        lists = sum(v for k, v in delta.items() if k.startswith("LIST tasks"))
        avg, peak = cpu(busy)
        idle_avg, _ = cpu(idle)

        print()
        print(f"## {args.count} Task objects ({n_delayed} with delaySeconds {args.delay:g})")
        print()
        print("| measure | value |")
        print("|---|---|")
        print(f"| objects created in | {t_created - t_create:.1f} s ({args.creators} threads) |")
        print(
            f"| all in the engine after the last object existed | {t_in_engine - t_created:.1f} s |"
        )
        print(f"| all tasks succeeded (engine) after that | {t_succeeded - t_created:.1f} s |")
        print(f"| all objects `Succeeded` after that | {t_objects - t_created:.1f} s |")
        print(f"| operator CPU avg / peak while busy | {avg:.0f} % / {peak:.0f} % of a core |")
        print(f"| operator RSS peak | {peak_rss:.0f} MB |")
        print(f"| PostgreSQL xact/s while busy (whole db) | {rate(busy):.0f} |")
        print(f"| PostgreSQL xact/s, dev alone (no operator) | {baseline:.0f} |")
        print(f"| API writes per object until `Succeeded` | {writes / args.count:.2f} |")
        print(
            f"|   of which tasks (finalizer, kopf's marks) | {delta['PATCH tasks'] / args.count:.2f} |"
        )
        print(f"|   of which tasks/status | {delta['PATCH tasks/status'] / args.count:.2f} |")
        print(f"| Events posted per object | {events / args.count:.3f} |")
        print(f"| GETs per object | {gets / args.count:.3f} |")
        print(
            f"| LISTs of tasks by the operator while busy | {max(0, lists - 0)} (benchmark polls included) |"
        )
        print(
            f"| idle with no Task: CPU avg, PostgreSQL xact/s | {cpu(empty)[0]:.1f} %, {rate(empty):.1f} |"
        )
        print(
            f"| idle with {args.count} finished ({args.settle:g} s after): CPU avg | {idle_avg:.1f} % |"
        )
        print(f"| idle with {args.count} finished: PostgreSQL xact/s | {rate(idle):.1f} |")
        print(f"| idle with {args.count} finished: RSS | {idle_rss:.0f} MB |")
        print()
        print("API requests by verb during the run:", dict(sorted(delta.items())))
        print()
        print("| t (s) | CPU % | RSS MB | xact/s | in engine | succeeded |")
        print("|---|---|---|---|---|---|")
        last: Sample | None = None
        for s in sampler.samples:
            if s.t < started_at or (last is not None and s.t - last.t < args.series):
                continue
            xps = 0.0 if last is None else (s.xacts - last.xacts) / (s.t - last.t)
            print(
                f"| {s.t:.0f} | {s.cpu:.0f} | {s.rss_mb:.0f} | {xps:.0f} | {s.in_engine} | {s.succeeded} |"
            )
            last = s
        print(flush=True)

        t_delete = time.monotonic()
        cpu_at_delete = op.cpu_seconds()
        while phases(custom):
            try:
                custom.delete_collection_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "tasks"
                )
            except client.ApiException as exc:  # a timeout stops it part way: again
                print(f"deletecollection answered {exc.status}; again", flush=True)
            if time.monotonic() - t_delete > args.timeout:
                raise SystemExit("objects still there after --timeout")
            time.sleep(2)
        t_deleted = time.monotonic()
        print(f"all objects deleted in {t_deleted - t_delete:.1f}s", flush=True)
        time.sleep(args.after)
        after = sampler.latest()
        cpu_deleting = op.cpu_seconds() - cpu_at_delete
        deleting = sampler.between(t_delete - sampler.t0, after.t)
        print()
        print("| after deletion | value |")
        print("|---|---|")
        print(f"| RSS before deleting (idle, all finished) | {idle_rss:.0f} MB |")
        print(f"| RSS peak while deleting | {max(s.rss_mb for s in deleting):.0f} MB |")
        print(f"| RSS {args.after:g} s after every object is deleted | {after.rss_mb:.0f} MB |")
        print(
            f"| operator CPU from the first delete to then | {cpu_deleting:.1f} s"
            f" ({100 * cpu_deleting / (time.monotonic() - t_delete):.0f} % of a core"
            f" over {time.monotonic() - t_delete:.0f} s) |"
        )
        print()
        print("| t (s) after the first delete | CPU % | RSS MB |")
        print("|---|---|---|")
        last = None
        for s in deleting:
            if last is not None and s.t - last.t < args.series / 2:
                continue
            print(f"| {s.t - (t_delete - sampler.t0):.0f} | {s.cpu:.0f} | {s.rss_mb:.0f} |")
            last = s
        print(flush=True)
        return 0
    finally:
        if sampler is not None:
            sampler.stop()
        if op is not None:
            op.stop()
        if dev is not None:
            dev.stop()
        close_api_client(api)
        plane.stop()
        if not os.environ.get("TASKFLOW_BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root}")


if __name__ == "__main__":
    raise SystemExit(main())
