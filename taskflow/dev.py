"""``taskflow dev``: the whole system on one machine, no cluster.

Starts (or uses, when ``TASKFLOW_REDIS_URL`` / ``TASKFLOW_DATABASE_URL`` name them) Redis and
PostgreSQL, applies the migrations, serves the API with housekeeping and the cron scheduler in
this process, loads the schedules of ``--schedules FILE`` and runs N worker processes. Ctrl-C
or SIGTERM stops everything in order: workers drain (those still running after the drain
grace are killed), then the API, housekeeping, and the embedded servers. A second Ctrl-C
kills the workers instead of waiting.

Every process it starts ends when it ends, even when it is killed outright: the embedded
servers and the workers are tethered to it (``taskflow.tether``). The servers are started
from the main thread for that reason, before the event loop runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from taskflow.config import Settings
from taskflow.devserver.demo import Demo
from taskflow.devserver.services import ApiServices, check_ports
from taskflow.devserver.stores import DATABASE_ENV, REDIS_ENV, Stores, start_stores
from taskflow.devserver.workers import WorkerSupervisor
from taskflow.loading import worker_entry
from taskflow.scheduling import ScheduleService, ScheduleSpec
from taskflow.scheduling.files import load_schedule_file, owner_of
from taskflow.store import apply_migrations

log = logging.getLogger("taskflow.dev")

DEFAULT_APP = "taskflow_worker.examples:router"


@dataclass(frozen=True)
class DevOptions:
    workers: int = 2
    app: str = DEFAULT_APP
    queues: list[str] = field(default_factory=lambda: ["default"])
    namespace: str = "default"
    data_dir: Path = Path(".taskflow")
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_port: int = 8080
    concurrency: int = 10
    drain_grace: float = 10.0
    demo: bool = False
    #: A YAML file of schedules, synced at start: its schedules are created or updated, and
    #: the ones it declared on an earlier start but no longer does are deleted.
    schedules: Path | None = None
    log_level: str = "INFO"
    log_format: str = "text"


def run_dev(options: DevOptions, out: TextIO = sys.stdout) -> int:
    """Run until Ctrl-C/SIGTERM; 0 after a clean stop.

    Raises ``AppLoadError`` for a bad ``--app``, ``NotInstalledError`` without the worker
    package, ``ScheduleFileError`` for a bad ``--schedules`` file and ``PortInUseError`` for
    a taken port before anything starts; ``EmbeddedServerError`` and
    ``taskflow.errors.Unavailable`` when a server cannot be started or reached.
    """
    if options.workers:
        worker_entry("check_app")(options.app)
    schedules = _schedules(options)
    check_ports(options.host, {"--grpc-port": options.grpc_port, "--http-port": options.http_port})
    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stores = start_stores(data_dir, die_with_parent=True)
    try:
        code = asyncio.run(_DevRun(options, out, data_dir, stores, schedules).run())
    finally:
        stores.stop()
    log.info("stopped")
    return code


def _schedules(options: DevOptions) -> list[ScheduleSpec] | None:
    if options.schedules is None:
        return None
    path = options.schedules
    return load_schedule_file(path, namespace=options.namespace, owner=owner_of(path))


class _DevRun:
    def __init__(
        self,
        options: DevOptions,
        out: TextIO,
        data_dir: Path,
        stores: Stores,
        schedules: list[ScheduleSpec] | None = None,
    ) -> None:
        self.options = options
        self.out = out
        self.data_dir = data_dir
        self.stores = stores
        self.schedules = schedules
        self.stop = asyncio.Event()
        self.interrupts = 0
        self.services: ApiServices | None = None
        self.supervisor: WorkerSupervisor | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self._start()
            if not self.stop.is_set():
                self._banner()
            demo = self._start_demo()
            await self.stop.wait()
            log.info("stopping (Ctrl-C again to stop the workers without waiting for their tasks)")
            if demo is not None:
                await demo
        finally:
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return 0

    def _on_signal(self, sig: signal.Signals) -> None:
        self.interrupts += 1
        self.stop.set()
        if self.interrupts > 1 and self.supervisor is not None:
            log.warning("second %s: not waiting for workers to drain", sig.name)
            self.supervisor.kill()

    async def _start(self) -> None:
        o = self.options
        applied = await apply_migrations(self.stores.database_url)
        for mig in applied:
            log.info("applied migration %04d_%s", mig.version, mig.name)
        settings = Settings.from_env(
            redis_url=self.stores.redis_url, database_url=self.stores.database_url
        )
        self.services = ApiServices(
            settings, host=o.host, grpc_port=o.grpc_port, http_port=o.http_port
        )
        await self.services.start()
        await self._sync_schedules()
        if o.workers and not self.stop.is_set():
            self.supervisor = WorkerSupervisor(
                o.workers,
                self._worker_argv(),
                env={
                    **os.environ,
                    REDIS_ENV: self.stores.redis_url,
                    DATABASE_ENV: self.stores.database_url,
                    "PYTHONUNBUFFERED": "1",
                },
                cwd=Path.cwd(),
                log_dir=self.data_dir / "logs",
                drain_grace=o.drain_grace,
            )
            await self.supervisor.start()

    async def _sync_schedules(self) -> None:
        if self.schedules is None or self.options.schedules is None:
            return
        assert self.services is not None
        path = self.options.schedules
        result = await ScheduleService(self.services.engine).sync(owner_of(path), self.schedules)
        done = {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "deleted (no longer in the file)": result.deleted,
        }
        summary = "; ".join(f"{what} {', '.join(names)}" for what, names in done.items() if names)
        log.info("schedules of %s: %s", path, summary or "none")

    def _worker_argv(self) -> list[str]:
        o = self.options
        argv = [sys.executable, "-m", "taskflow", "--log-level", o.log_level]
        argv += ["--log-format", o.log_format, "worker", "--app", o.app]
        argv += ["--namespace", o.namespace, "--concurrency", str(o.concurrency)]
        argv += ["--drain-grace", str(o.drain_grace), "--watch-parent", str(os.getpid())]
        for queue in o.queues:
            argv += ["--queue", queue]
        return argv

    def _start_demo(self) -> asyncio.Task[None] | None:
        if not self.options.demo or self.services is None or self.stop.is_set():
            return None
        demo = Demo(
            self._client_addr(),
            self.options.namespace,
            self.options.queues,
            self.out,
            dashboard_url=self.dashboard_url(),
        )
        return asyncio.create_task(demo.run(self.stop), name="demo")

    def _client_addr(self) -> str:
        assert self.services is not None
        host = self.options.host
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.services.grpc_port}"

    def http_url(self) -> str:
        assert self.services is not None
        return f"http://{self._client_addr().rsplit(':', 1)[0]}:{self.services.http_port}"

    def dashboard_url(self) -> str:
        return f"{self.http_url()}/dashboard/"

    async def _shutdown(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self.services is not None:
            log.info("stopping the API server and housekeeping")
            await self.services.stop(grace=2.0)

    def _banner(self) -> None:
        assert self.services is not None
        o = self.options
        addr = self._client_addr()
        http = self.http_url()
        pids = ", ".join(map(str, self.supervisor.pids)) if self.supervisor else "none"
        queues = " ".join(f"--queue {q}" for q in o.queues)
        tf = _command_name()
        lines = [
            f"TaskFlow dev is listening on {addr} (gRPC) and {http} (HTTP). Ctrl-C stops it.",
            f"  dashboard    {self.dashboard_url()}",
            f"  gRPC API     {addr}",
            f"  HTTP         {http}/metrics  {http}/healthz  {http}/readyz",
            f"  Redis        {self.stores.redis_url}  ({self.stores.notes['redis']})",
            f"  PostgreSQL   {self.stores.database_url}  ({self.stores.notes['postgres']})",
            f"  data dir     {self.data_dir}",
            f"  workers      {o.workers} x concurrency {o.concurrency}, app {o.app}, {queues},"
            f" pids {pids}",
            f"  worker logs  {self.data_dir / 'logs'}",
        ]
        if o.schedules is not None:
            lines.append(f"  schedules    {len(self.schedules or [])} from {o.schedules}")
        lines += [
            "",
            "Try:",
            f"  export TASKFLOW_API_ADDR={addr}",
            f'  {tf} submit {o.queues[0]} add --payload \'{{"a": 2, "b": 3}}\' --wait',
            f"  {tf} submit {o.queues[0]} send_email"
            ' --payload \'{"to": "ada@example.com"}\' --wait',
            f"  {tf} submit {o.queues[0]} sleep --payload '{{\"seconds\": 60}}'"
            f"   # then: {tf} cancel ID",
            f"  {tf} queues",
            f"  {tf} top --url {http}",
            f"  {tf} schedules",
            f"  {tf} bench --count 10000 --queue {o.queues[0]}",
            "",
        ]
        print("\n".join(lines), file=self.out, flush=True)


def _command_name() -> str:
    """``taskflow`` when it is on PATH, else the path of this installation's script."""
    script = Path(sys.argv[0])
    on_path = shutil.which("taskflow")
    if on_path and script.name == "taskflow" and Path(on_path).resolve() == script.resolve():
        return "taskflow"
    local = Path(sys.executable).parent / "taskflow"
    if local.exists():
        try:
            return str(local.relative_to(Path.cwd()))
        except ValueError:
            return str(local)
    return "taskflow"
