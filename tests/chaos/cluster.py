"""The whole system as real processes a scenario can hurt.

``Cluster`` starts Redis and PostgreSQL (``tests.chaos.servers``, run by a host process of
their own), applies the migrations with ``taskflow migrate``, then runs ``taskflow api``
(housekeeping on) and N ``taskflow worker`` processes on the handlers of ``tests.chaos.apps``,
each with its output in a file under the cluster's directory. Workers can reach Redis through
a ``FaultProxy``. ``close`` stops everything (workers by SIGTERM, as an orchestrator would),
then proves nothing is left: no process of the cluster alive, no port of it still bound.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from taskflow.embedded import free_port, port_unavailable
from taskflow_client import Client
from tests.chaos.apps import START_LOG_ENV
from tests.chaos.processes import (
    CLUSTER_ENV,
    HarnessError,
    Proc,
    http_json,
    http_ok,
    log_tail,
    reap_leftovers,
    wait_until,
)
from tests.chaos.proxy import FaultProxy
from tests.chaos.servers import ChaosPostgres, ChaosRedis, ServerHost

REPO = Path(__file__).resolve().parents[2]
APP = "tests.chaos.apps:router"
KEEP_ENV = "TASKFLOW_CHAOS_KEEP"  # keep the cluster directory (logs, data) after a scenario
START_TIMEOUT = 60.0  # a process has this long to answer its health check (a busy machine)


@dataclass(frozen=True)
class ClusterConfig:
    workers: int = 2
    concurrency: int = 8
    lease_seconds: float = 10.0
    sweep_interval: float = 0.2
    orphan_grace_seconds: float = 2.0
    drain_grace: float = 3.0
    #: high, so repeated kills never fail a task as poison (that rule is not under test)
    max_lost_leases: int = 100
    #: crash-safe PostgreSQL; needed where it is SIGKILLed
    pg_fsync: bool = False
    #: workers reach Redis through the fault proxy (the API always connects directly)
    workers_via_proxy: bool = False
    queue: str = "chaos"
    env: tuple[tuple[str, str], ...] = ()


@dataclass
class Timeline:
    """What the scenario did when, in seconds since the cluster started."""

    origin: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, what: str) -> float:
        now = time.monotonic()
        self.events.append((now - self.origin, what))
        return now

    def text(self) -> str:
        return "\n".join(f"  {at:7.2f}s {what}" for at, what in self.events)


class Cluster:
    def __init__(self, name: str, config: ClusterConfig) -> None:
        self.name = name
        self.config = config
        self.id = f"{name}-{uuid.uuid4().hex[:8]}"
        # Not under pytest's basetemp: PostgreSQL runs as another user when we are root, and
        # each new pytest session strips the other-users bits from /tmp/pytest-of-root.
        # Short: PostgreSQL's unix socket path under it must stay within ~100 bytes.
        self.root = Path(tempfile.mkdtemp(prefix=f"taskflow-chaos-{name[:24]}-"))
        self.start_log = self.root / "starts.log"
        self.servers = ServerHost(
            self.root, {**os.environ, CLUSTER_ENV: self.id}, fsync=config.pg_fsync
        )
        self.redis = ChaosRedis(self.servers)
        self.postgres = ChaosPostgres(self.servers)
        self.proxy = FaultProxy(self.redis.port) if config.workers_via_proxy else None
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.api: Proc | None = None
        self.workers: list[Proc] = []
        self.procs: list[Proc] = []  # every process ever started, for the final account
        self.ports: set[int] = {self.redis.port, self.postgres.port, self.grpc_port, self.http_port}
        self.timeline = Timeline()
        self.problems: list[str] = []  # found while stopping things
        self._seq = itertools.count(1)
        self._closed = False

    # -- addresses ------------------------------------------------------------------------------

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def client(self) -> Client:
        return Client(self.target, timeout=10.0)

    def env(self, *, redis_url: str | None = None) -> dict[str, str]:
        c = self.config
        env = {
            **os.environ,
            CLUSTER_ENV: self.id,
            START_LOG_ENV: str(self.start_log),
            "TASKFLOW_REDIS_URL": redis_url or self.redis.url,
            "TASKFLOW_DATABASE_URL": self.postgres.url,
            "TASKFLOW_LEASE_SECONDS": str(c.lease_seconds),
            "TASKFLOW_SWEEP_INTERVAL": str(c.sweep_interval),
            "TASKFLOW_ORPHAN_GRACE_SECONDS": str(c.orphan_grace_seconds),
            "TASKFLOW_MAX_LOST_LEASES": str(c.max_lost_leases),
            "TASKFLOW_RETENTION_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        env.update(dict(c.env))
        return env

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.redis.start()
        self.postgres.start()
        self.timeline.mark("redis and postgres up")
        self._migrate()
        self.timeline.mark("migrated")
        if self.proxy is not None:
            self.proxy.start()
            self.ports.add(self.proxy.port)
        # Workers need only Redis and PostgreSQL: they start alongside the API.
        api = self.start_api(wait=False)
        for _ in range(self.config.workers):
            self.start_worker(wait=False)
        self._wait_api(api)
        for w in self.workers:
            self._wait_worker(w)
        self.timeline.mark(f"cluster up: api + {len(self.workers)} worker(s)")

    def _migrate(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "taskflow", "migrate"],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise HarnessError(f"taskflow migrate failed: {result.stdout}{result.stderr}")

    def start_api(self, *, wait: bool = True) -> Proc:
        argv = [
            sys.executable, "-m", "taskflow", "api", "--host", "127.0.0.1",
            "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
            "--housekeeping",
        ]  # fmt: skip
        self.api = self._spawn("api", argv, self.env())
        if wait:
            self._wait_api(self.api)
        return self.api

    def _wait_api(self, api: Proc) -> None:
        self._wait_http(api, f"http://127.0.0.1:{self.http_port}/readyz")
        self.timeline.mark(f"api up (pid {api.pid})")

    def kill_api(self) -> None:
        if self.api is not None:
            self.api.kill()
            self.timeline.mark(f"api SIGKILLed (pid {self.api.pid})")

    def start_worker(self, *, wait: bool = True) -> Proc:
        c = self.config
        health = free_port()
        self.ports.add(health)
        argv = [
            sys.executable, "-m", "taskflow", "worker", "--app", APP, "--queue", c.queue,
            "--concurrency", str(c.concurrency), "--drain-grace", str(c.drain_grace),
            "--health-port", str(health),
        ]  # fmt: skip
        redis_url = self.proxy.url if self.proxy is not None else None
        proc = self._spawn(f"worker-{next(self._seq)}", argv, self.env(redis_url=redis_url))
        proc.health_url = f"http://127.0.0.1:{health}/healthz"
        self.workers.append(proc)
        if wait:
            self._wait_worker(proc)
        return proc

    def _wait_worker(self, proc: Proc) -> None:
        self._wait_http(proc, proc.health_url)
        self.timeline.mark(f"{proc.name} up (pid {proc.pid})")

    def in_flight(self, proc: Proc) -> int:
        """Tasks the worker is running now (from its /healthz), -1 when it does not answer."""
        health = http_json(proc.health_url)
        return int(health["in_flight"]) if isinstance(health, dict) else -1

    def busiest_worker(self) -> Proc:
        """The worker running the most tasks right now."""
        if not self.workers:
            raise HarnessError("no worker is running")
        return max(self.workers, key=self.in_flight)

    def kill_worker(self, proc: Proc) -> None:
        proc.kill()
        self.workers.remove(proc)
        self.timeline.mark(f"{proc.name} SIGKILLed (pid {proc.pid})")

    def drain_worker(self, proc: Proc) -> int | None:
        """SIGTERM and wait for the drain; the exit code, or None if it did not exit in time
        (then it is killed). Either failure is recorded as a problem."""
        self.timeline.mark(f"{proc.name} SIGTERM (pid {proc.pid}, {self.in_flight(proc)} running)")
        proc.send(signal.SIGTERM)
        code = self._reap(proc, time.monotonic() + self.drain_timeout)
        self.workers.remove(proc)
        self.timeline.mark(f"{proc.name} exited with {code}")
        return code

    @property
    def drain_timeout(self) -> float:
        """How long a worker may take to exit after SIGTERM: its drain grace and some."""
        return self.config.drain_grace + 15

    def _reap(self, proc: Proc, deadline: float) -> int | None:
        code = proc.wait_exit(max(0.1, deadline - time.monotonic()))
        if code is None:
            proc.kill()
            self.problems.append(
                f"{proc.name} (pid {proc.pid}) did not exit within {self.drain_timeout:.0f}s of"
                f" SIGTERM; its output ends with:\n{log_tail(proc.log_path)}"
            )
        elif code != 0:
            self.problems.append(
                f"{proc.name} (pid {proc.pid}) exited with code {code} on SIGTERM; its output"
                f" ends with:\n{log_tail(proc.log_path)}"
            )
        return code

    def busy_loops(self, n: int) -> list[Proc]:
        """``n`` processes that each keep a core busy until the cluster closes."""
        argv = [sys.executable, "-c", "while True: pass"]
        hogs = [self._spawn(f"cpu-hog-{i}", argv, self.env()) for i in range(n)]
        self.timeline.mark(f"{n} CPU hog(s) started")
        return hogs

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, env, REPO, self.root / f"{name}.log")
        proc.start()
        self.procs.append(proc)
        return proc

    def _wait_http(self, proc: Proc, url: str) -> None:
        def answered() -> bool:
            if not proc.alive():
                raise HarnessError(
                    f"{proc.name} exited with {proc.popen.returncode if proc.popen else '?'}"
                    f" before it answered {url}; its output ends with:\n{log_tail(proc.log_path)}"
                )
            return http_ok(url)

        wait_until(answered, START_TIMEOUT, f"{proc.name} to answer {url}")

    def close(self) -> list[str]:
        """Stop everything and account for it; returns what went wrong (empty: clean)."""
        if self._closed:
            return []
        self._closed = True
        for w in self.workers:
            w.send(signal.SIGCONT)
            w.send(signal.SIGTERM)
        # They drain in parallel: one deadline for all.
        deadline = time.monotonic() + self.drain_timeout
        for w in self.workers:
            self._reap(w, deadline)
        self.workers.clear()
        self.timeline.mark("workers stopped")
        if self.api is not None and self.api.alive():
            problem = self.api.stop(timeout=20)
            if problem:
                self.problems.append(problem)
            self.timeline.mark("api stopped")
        for p in self.procs:  # CPU hogs, and anything killed but not yet reaped
            if p.alive():
                p.kill()
        if self.proxy is not None:
            self.proxy.close()
        problem = self.servers.close()
        if problem:
            self.problems.append(problem)
        self.timeline.mark("redis and postgres stopped")
        self.problems += self._leftovers()
        if not os.environ.get(KEEP_ENV):
            shutil.rmtree(self.root, ignore_errors=True)
        return self.problems

    def _leftovers(self) -> list[str]:
        problems: list[str] = []
        found = reap_leftovers(self.id, self.root)
        if found:
            problems.append("processes of the cluster were still running: " + "; ".join(found))
        # A port is released when its listener exits; give the kernel a moment.
        busy: list[str] = []
        with contextlib.suppress(HarnessError):
            wait_until(lambda: not self._busy_ports(busy), 5.0, "the cluster's ports")
        if busy:
            problems.append(f"ports still bound after the cluster stopped: {', '.join(busy)}")
        return problems

    def _busy_ports(self, out: list[str]) -> list[str]:
        out[:] = [
            f"{port} ({reason})"
            for port in sorted(self.ports)
            if (reason := port_unavailable("127.0.0.1", port)) is not None
        ]
        return out
