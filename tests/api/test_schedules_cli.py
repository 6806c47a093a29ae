"""``taskflow schedules``: list (NEXT / LAST / POLICY), apply FILE, suspend, resume, delete,
against a real API server."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from taskflow.api import ApiServer
from taskflow.cli import main
from taskflow.engine import Engine
from taskflow.models import utcnow
from taskflow.scheduling import Scheduler

FILE = """
schedules:
  - name: nightly
    cron: "0 3 * * *"
    timezone: Europe/Paris
    concurrency_policy: Forbid
    task: {queue: reports, handler: build, payload: {day: yesterday}, max_retries: 1}
  - name: often
    cron: "*/5 * * * *"
    task: {queue: jobs, handler: ping}
"""


class Cli:
    def __init__(self, server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
        self.addr = f"127.0.0.1:{server.grpc_port}"
        self.capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = await asyncio.to_thread(main, [*argv, "--addr", self.addr])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err


@pytest.fixture
def cli(api_server: ApiServer, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(api_server, capsys)


class LaterClock:
    """The clock of a scheduler run six hours from now."""

    def now(self):  # type: ignore[no-untyped-def]
        return utcnow() + timedelta(hours=6)


async def test_apply_list_suspend_resume_delete(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(FILE)
    code, out, _ = await cli("schedules", "apply", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("applied schedule default/nightly: next fire 20")
    assert lines[1].startswith("applied schedule default/often: next fire ")

    code, out, _ = await cli("schedules")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "NAMESPACE", "NAME", "SCHEDULE", "POLICY", "NEXT", "LAST", "FIRED", "SKIPPED", "TASK"
    ]  # fmt: skip
    assert [r.split()[1] for r in rows] == ["nightly", "often"]
    assert "0 3 * * * Europe/Paris  Forbid" in rows[0] and "reports/build" in rows[0]
    assert re.search(r"\(in \d+[smhd]\)\s+-\s+0\s+0\s+reports/build$", rows[0])  # not fired

    await Scheduler(engine, clock=LaterClock()).run_once()  # both are overdue then
    code, out, _ = await cli("schedules", "--json")
    listed = {s["name"]: s for s in json.loads(out)}
    assert listed["often"]["fire_count"] == 1 and listed["often"]["last_task_id"]
    assert listed["nightly"]["task"]["payload"] == {"day": "yesterday"}
    code, out, _ = await cli("schedules")
    often = out.splitlines()[2]
    assert re.search(r"\d\d:\d\d \(in \d+h\)\s+1\s+0\s+jobs/ping$", often)  # LAST, FIRED 1

    code, out, _ = await cli("schedules", "suspend", "often")
    assert (code, out) == (0, "suspended schedule default/often\n")
    code, out, _ = await cli("schedules")
    assert "suspended" in out.splitlines()[2]
    code, out, _ = await cli("schedules", "resume", "often")
    assert code == 0 and out.startswith("resumed schedule default/often: next fire ")

    code, out, _ = await cli("schedules", "delete", "often")
    assert (code, out) == (0, "deleted schedule default/often\n")
    code, _, err = await cli("schedules", "delete", "often")
    assert code == 1
    assert err.strip() == "taskflow schedules: schedule 'often' not found in namespace 'default'"
    code, out, _ = await cli("schedules", "--namespace", "other")
    assert (code, out) == (0, "no schedules in namespace 'other'\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["schedules", "delete"], "taskflow schedules: NAME: required"),
        (["schedules", "apply"], "taskflow schedules: FILE: required"),
        (["schedules", "nightly"], "ACTION: invalid choice: 'nightly'"),
        (["schedules", "apply", "/nonexistent.yaml"], "/nonexistent.yaml: cannot read it"),
    ],
)
async def test_bad_usage(cli: Cli, argv: list[str], message: str) -> None:
    code, out, err = await cli(*argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


async def test_a_bad_file_applies_nothing(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(FILE + "  - {name: bad, cron: '* * *', task: {queue: q, handler: h}}\n")
    code, _, err = await cli("schedules", "apply", str(path))
    assert code == 2
    assert err.strip() == (
        f"taskflow schedules: {path}: schedules[2].cron: '* * *' is not a valid cron "
        "expression: has 3 fields; give exactly five: minute hour day-of-month month day-of-week"
    )
    code, out, _ = await cli("schedules", "--json")
    assert json.loads(out) == []
