"""``taskflow dev`` as a new user runs it (the command ``scripts/dev`` execs), driven with the
``taskflow`` command line, stopped with Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from taskflow.embedded import free_port, port_unavailable
from taskflow.tether import STOP_MARGIN
from taskflow_client import Client
from tests.processes import alive, cmdline, descendants, wait_until_gone

REPO = Path(__file__).resolve().parent.parent
TASKFLOW = Path(sys.executable).parent / "taskflow"
START_DEADLINE = 90.0
STOP_DEADLINE = 60.0
CLI_DEADLINE = 60.0


class DevProcess:
    """One ``taskflow dev`` subprocess, its stdout read line by line."""

    def __init__(
        self, data_dir: Path, log: Path, extra: Sequence[str] = (), cwd: Path | None = None
    ) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.addr = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                str(TASKFLOW),
                "dev",
                "--workers",
                "2",
                "--grpc-port",
                str(self.grpc_port),
                "--http-port",
                str(self.http_port),
                "--data-dir",
                str(data_dir),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            start_new_session=True,
            cwd=cwd,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.children: set[int] = set()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, text: str, deadline: float) -> str:
        end = time.monotonic() + deadline
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {deadline:g}s: {self.output}")
            if line is None:
                pytest.fail(f"taskflow dev exited ({self.proc.wait()}) before {text!r}")
            self.output.append(line)
            if text in line:
                return line

    def started(self) -> None:
        line = self.wait_for_line("listening", START_DEADLINE)
        assert self.addr in line
        self.wait_for_line("worker logs", 5.0)
        self.children = descendants(self.proc.pid)

    def interrupt(self) -> int:
        self.children |= descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=STOP_DEADLINE)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.children:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()


StartDev = Callable[..., DevProcess]


@pytest.fixture
def start_dev(pg_data_dir: Path) -> Iterator[StartDev]:
    """``start_dev(*flags, cwd=None)``: a running ``taskflow dev`` (stopped after the test)."""
    started: list[DevProcess] = []

    def start(*extra: str, cwd: Path | None = None) -> DevProcess:
        dev = DevProcess(pg_data_dir / "taskflow", pg_data_dir / "dev-output.log", extra, cwd)
        started.append(dev)
        dev.started()
        return dev

    yield start
    for dev in started:
        dev.cleanup()


def cli(dev: DevProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    return subprocess.run(
        [str(TASKFLOW), *args, "--addr", dev.addr],
        capture_output=True,
        text=True,
        timeout=CLI_DEADLINE,
        env=env,
        check=False,
    )


def test_dev_runs_the_whole_system_and_stops_cleanly(start_dev: StartDev) -> None:
    dev = start_dev()
    banner = "".join(dev.output)
    dashboard = f"http://127.0.0.1:{dev.http_port}/dashboard/"
    assert f"dashboard    {dashboard}" in banner
    with urllib.request.urlopen(dashboard, timeout=CLI_DEADLINE) as page:
        assert b"<title>TaskFlow</title>" in page.read()

    done = cli(dev, "submit", "default", "add", "--payload", '{"a":2,"b":3}', "--wait", "--json")
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert task["state"] == "succeeded"
    assert task["result"] == 5
    assert "succeeded" in done.stderr  # the progress shown while waiting

    status = cli(dev, "status", task["id"])
    assert status.returncode == 0, status.stderr
    assert "succeeded" in status.stdout
    assert "history" in status.stdout and "#1" in status.stdout

    delayed = cli(
        dev, "submit", "default", "sleep", "--payload", '{"seconds": 1}', "--delay", "600"
    )
    assert delayed.returncode == 0, delayed.stderr
    delayed_id = delayed.stdout.strip()
    cancelled = cli(dev, "cancel", delayed_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"cancelled {delayed_id}"
    shown = cli(dev, "status", delayed_id, "--json")
    assert json.loads(shown.stdout)["state"] == "cancelled"

    queues = cli(dev, "queues")
    assert queues.returncode == 0, queues.stderr
    header, row = queues.stdout.splitlines()[:2]
    assert header.split() == [
        "NAMESPACE",
        "QUEUE",
        "READY",
        "SCHEDULED",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
    ]
    assert row.split()[:2] == ["default", "default"]
    assert row.split()[5] == "1" and row.split()[7] == "1"

    servers = [
        pid for pid in dev.children if "redis-server" in cmdline(pid) or "postgres" in cmdline(pid)
    ]
    assert servers, "taskflow dev started no embedded Redis/PostgreSQL"
    assert dev.interrupt() == 0
    assert [pid for pid in dev.children if alive(pid)] == []


def test_restart_keeps_the_tasks(start_dev: StartDev) -> None:
    dev = start_dev()
    submitted = cli(dev, "submit", "default", "add", "--payload", '{"a":20,"b":22}', "--delay", "5")
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    assert dev.interrupt() == 0

    dev = start_dev()
    status = cli(dev, "status", task_id, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["id"] == task_id
    with Client(dev.addr) as client:
        task = client.wait(task_id, timeout=60)
        assert task.state == "succeeded"
        assert task.result == 42
        assert len(client.get(task_id).attempt_history) == 1
    assert dev.interrupt() == 0


SCHEDULES = """
schedules:
  - name: nightly
    cron: "0 3 * * *"
    timezone: Europe/Paris
    concurrency_policy: Forbid
    task: {queue: default, handler: add, payload: {a: 1, b: 2}}
  - name: often
    cron: "*/5 * * * *"
    task: {queue: default, handler: noop}
"""


def test_dev_loads_a_schedules_file_and_prunes_what_it_no_longer_declares(
    start_dev: StartDev, tmp_path: Path
) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    dev = start_dev("--schedules", str(path))
    dev.wait_for_line("schedules    2 from", 5.0)
    listed = cli(dev, "schedules", "--json")
    assert listed.returncode == 0, listed.stderr
    schedules = {s["name"]: s for s in json.loads(listed.stdout)}
    assert set(schedules) == {"nightly", "often"}
    assert schedules["nightly"]["owner"] == f"file:{path.resolve()}"
    assert schedules["nightly"]["concurrency_policy"] == "Forbid"
    assert schedules["often"]["next_fire_time"] is not None
    by_hand = cli(dev, "schedules", "apply", str(path))  # the API may not take them over
    assert by_hand.returncode == 1 and "managed by 'file:" in by_hand.stderr
    assert dev.interrupt() == 0

    path.write_text(SCHEDULES.split("  - name: often")[0].replace("0 3 * * *", "0 4 * * *"))
    dev = start_dev("--schedules", str(path))
    listed = cli(dev, "schedules", "--json")
    (nightly,) = json.loads(listed.stdout)
    assert (nightly["name"], nightly["cron"]) == ("nightly", "0 4 * * *")


def test_dev_refuses_a_bad_schedules_file_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text("- {name: a, cron: '61 * * * *', task: {queue: q, handler: h}}\n")
    done = subprocess.run(
        [str(TASKFLOW), "dev", "--schedules", str(path), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=CLI_DEADLINE,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"taskflow dev: --schedules: {path}: schedules[0].cron: '61 * * * *' is not a valid "
        "cron expression: the minute field '61': 61 is out of range 0-59"
    )
    assert not (tmp_path / "d").exists()


def test_scripts_dev_execs_taskflow_dev() -> None:
    script = REPO / "scripts" / "dev"
    assert os.access(script, os.X_OK)
    lines = [line for line in script.read_text().splitlines() if line.strip()]
    assert lines[-1] == 'exec .venv/bin/taskflow dev --demo "$@"'
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


# -- every process ends with taskflow dev ---------------------------------------------------------

DRAIN_GRACE = 2.0
GONE_DEADLINE = DRAIN_GRACE + STOP_MARGIN + 30.0
"""How long the processes of a stopped or killed ``taskflow dev`` may take to be gone: the
drain grace, the margin a worker has to exit, and time for a busy machine."""

STUCK_APP = '''
"""Handlers that do not stop when asked."""

import asyncio
import signal
import time

from taskflow_worker import Router

router = Router()


@router.task("wedged")
def wedged(ctx, payload):
    while True:  # never returns and never looks at ctx.cancelled
        time.sleep(0.05)


@router.task("stubborn")
async def stubborn(ctx, payload):
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # swallowed


@router.task("deaf")
async def deaf(ctx, payload):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the whole worker ignores SIGTERM now
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
'''


@pytest.fixture
def stuck_app(tmp_path: Path) -> Path:
    """A directory holding ``stuck_app.py`` (``--app stuck_app:router``)."""
    (tmp_path / "stuck_app.py").write_text(STUCK_APP)
    return tmp_path


def _store_ports(dev: DevProcess) -> list[int]:
    """The ports of the embedded Redis and PostgreSQL, from the banner."""
    text = "".join(dev.output)
    ports = [int(p) for p in re.findall(r"(?:redis|postgresql)://[^\s]*?:(\d+)/", text)]
    assert len(ports) == 2, text
    return ports


def _run_stuck_tasks(dev: DevProcess) -> None:
    """A wedged sync task, a stubborn async task and one that makes its worker deaf to
    SIGTERM (however well a worker drains, that one only stops when killed), all running."""
    with Client(dev.addr) as client:
        ids = [client.submit("default", h) for h in ("wedged", "stubborn", "deaf")]
        end = time.monotonic() + START_DEADLINE
        while any(client.get(i).state != "running" for i in ids):
            assert time.monotonic() < end, "the stuck tasks never started"
            time.sleep(0.1)


def _take_children(dev: DevProcess) -> None:
    """Note every process below ``taskflow dev``: the embedded servers and the workers."""
    dev.children = descendants(dev.proc.pid)
    commands = [cmdline(pid) for pid in dev.children]
    for kind in ("bin/redis-server", "bin/postgres", " worker --app "):
        assert any(kind in c for c in commands), (kind, commands)


def _assert_all_gone(dev: DevProcess) -> None:
    wait_until_gone(dev.children, GONE_DEADLINE)
    for port in [*_store_ports(dev), dev.grpc_port, dev.http_port]:
        assert port_unavailable("127.0.0.1", port) is None, f"port {port} is still taken"


@pytest.mark.parametrize("stuck", [False, True], ids=["idle", "stuck-handlers"])
def test_sigkill_of_dev_leaves_no_process(
    start_dev: StartDev, stuck_app: Path, stuck: bool
) -> None:
    dev = start_dev("--app", "stuck_app:router", "--drain-grace", str(DRAIN_GRACE), cwd=stuck_app)
    if stuck:
        _run_stuck_tasks(dev)
    _take_children(dev)
    dev.proc.kill()
    dev.proc.wait(timeout=STOP_DEADLINE)
    _assert_all_gone(dev)


def test_ctrl_c_stops_stuck_handlers_after_the_drain_grace(
    start_dev: StartDev, stuck_app: Path
) -> None:
    dev = start_dev("--app", "stuck_app:router", "--drain-grace", str(DRAIN_GRACE), cwd=stuck_app)
    _run_stuck_tasks(dev)
    _take_children(dev)
    dev.proc.send_signal(signal.SIGINT)
    assert dev.proc.wait(timeout=GONE_DEADLINE) == 0
    _assert_all_gone(dev)
    log = dev.log_path.read_text()
    assert "killing them" in log
    assert log.index("killing worker") < log.index("stopping Redis")  # in order


def test_second_ctrl_c_kills_the_workers_at_once(start_dev: StartDev, stuck_app: Path) -> None:
    grace = 600.0
    dev = start_dev("--app", "stuck_app:router", "--drain-grace", str(grace), cwd=stuck_app)
    _run_stuck_tasks(dev)
    _take_children(dev)
    started = time.monotonic()
    dev.proc.send_signal(signal.SIGINT)
    _wait_for_log(dev, "they finish their tasks first")
    dev.proc.send_signal(signal.SIGINT)
    assert dev.proc.wait(timeout=GONE_DEADLINE) == 0
    assert time.monotonic() - started < grace / 2, "the second Ctrl-C did not cut the drain short"
    _assert_all_gone(dev)
    assert "second SIGINT: not waiting for workers to drain" in dev.log_path.read_text()


def _wait_for_log(dev: DevProcess, text: str) -> None:
    end = time.monotonic() + STOP_DEADLINE
    while text not in dev.log_path.read_text():
        assert time.monotonic() < end, f"{text!r} never logged"
        time.sleep(0.05)
