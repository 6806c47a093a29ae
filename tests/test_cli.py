"""The ``taskflow`` command: bad input is one clear line and exit code 2, an unreachable server
is exit code 1, never a traceback. Needs no API server."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskflow.cli import build_parser, main
from taskflow.embedded import free_port


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--payload", "{x"], "--payload: not valid JSON: Expecting property name"),
        (["--payload", ""], "--payload: not valid JSON: Expecting value at line 1 column 1"),
        (["--priority", "high"], "--priority: expected an integer, got 'high'"),
        (["--delay", "-1"], "--delay: must be at least 0, got -1"),
        (["--delay", "soon"], "--delay: expected a number of seconds, got 'soon'"),
        (["--max-retries", "-2"], "--max-retries: must be at least 0, got -2"),
        (["--timeout", "0"], "--timeout: must be greater than 0, got 0"),
        (["--namespace", ""], "--namespace: must not be empty"),
    ],
)
def test_submit_rejects_bad_flags(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, out, err = run(capsys, "submit", "default", "add", *args)
    assert code == 2
    assert out == ""
    assert expected in one_line(err)


def test_submit_needs_queue_and_handler(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "submit", "default")
    assert code == 2
    assert "HANDLER" in one_line(err)


def test_no_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "submit" in err and "dev" in err


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "launch")
    assert code == 2
    assert "invalid choice: 'launch'" in one_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "default", "add", "--payload", '{"a": 1}'],
        ["status", "01a20866-566c-79c4-b399-a0603ce8bbc9"],
        ["cancel", "01a20866-566c-79c4-b399-a0603ce8bbc9"],
        ["queues"],
        ["bench", "--count", "10"],
    ],
)
def test_unreachable_server(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    addr = f"127.0.0.1:{free_port()}"
    code, _, err = run(capsys, *argv, "--addr", addr)
    assert code == 1
    assert one_line(err).endswith(f"cannot reach TaskFlow at {addr} (is 'taskflow dev' running?)")


def test_unreachable_server_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    addr = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("TASKFLOW_API_ADDR", addr)
    code, _, err = run(capsys, "queues")
    assert code == 1
    assert f"cannot reach TaskFlow at {addr}" in one_line(err)


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("no_such_module_xyz:router", "--app: cannot import module 'no_such_module_xyz'"),
        ("taskflow_worker.examples:nothing", "has no attribute 'nothing'"),
        ("taskflow_worker.examples", "--app: expected MODULE:OBJECT"),
        ("taskflow_worker.examples:add", "not a taskflow_worker.Router"),
    ],
)
def test_worker_rejects_bad_app(
    capsys: pytest.CaptureFixture[str], app: str, expected: str
) -> None:
    code, _, err = run(capsys, "worker", "--app", app)
    assert code == 2
    assert expected in one_line(err)


def test_worker_requires_app(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "worker", "--queue", "emails")
    assert code == 2
    assert "--app" in one_line(err)


def test_worker_rejects_bad_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "worker", "--app", "x:y", "--concurrency", "0")
    assert code == 2
    assert "--concurrency: must be at least 1, got 0" in one_line(err)


WORKER = ("worker", "--app", "taskflow_worker.examples:router")


@pytest.mark.parametrize("host", ["", "bad host", "127.0.0.1:8081", "under_score.example"])
def test_worker_rejects_a_health_host_that_is_no_address(
    capsys: pytest.CaptureFixture[str], host: str
) -> None:
    code, _, err = run(capsys, *WORKER, "--health-host", host)
    assert code == 2
    assert f"--health-host: expected an IP address or a host name, got {host!r}" in one_line(err)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        # TEST-NET-1: an address of no interface of this machine.
        ("192.0.2.1", "free", "--health-host: cannot listen on 192.0.2.1:{port}: "),
        (
            "127.0.0.1",
            "taken",
            "--health-port: cannot listen on 127.0.0.1:{port}: port is already in use",
        ),
    ],
)
def test_worker_names_the_health_flag_it_cannot_listen_with(
    capsys: pytest.CaptureFixture[str], taken_port: int, host: str, port: str, expected: str
) -> None:
    number = taken_port if port == "taken" else free_port()
    code, _, err = run(capsys, *WORKER, "--health-port", str(number), "--health-host", host)
    assert code == 2
    assert expected.format(port=number) in one_line(err)


def test_dev_rejects_bad_app_before_starting_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data_dir = f"{tmp_path}/data"
    code, _, err = run(capsys, "dev", "--app", "no_such_module_xyz:router", "--data-dir", data_dir)
    assert code == 2
    assert "--app: cannot import module 'no_such_module_xyz'" in one_line(err)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("flag", ["--grpc-port", "--http-port"])
def test_dev_names_the_port_in_use(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, taken_port: int, flag: str
) -> None:
    other = "--http-port" if flag == "--grpc-port" else "--grpc-port"
    code, _, err = run(
        capsys,
        "dev",
        "--data-dir",
        f"{tmp_path}/data",
        flag,
        str(taken_port),
        other,
        str(free_port()),
    )
    assert code == 2
    assert f"{flag}: cannot listen on 127.0.0.1:{taken_port}: port is already in use" in one_line(
        err
    )


def test_dev_rejects_the_same_port_twice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    port = str(free_port())
    code, _, err = run(
        capsys, "dev", "--data-dir", f"{tmp_path}/d", "--grpc-port", port, "--http-port", port
    )
    assert code == 2
    assert "--http-port" in one_line(err) and "the same port as --grpc-port" in err


def test_dev_rejects_a_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "dev", "--grpc-port", "70000")
    assert code == 2
    assert "--grpc-port: must be a TCP port (1-65535), got 70000" in one_line(err)


def test_api_names_the_port_in_use(capsys: pytest.CaptureFixture[str], taken_port: int) -> None:
    code, _, err = run(
        capsys, "api", "--host", "127.0.0.1", "--grpc-port", str(taken_port), "--http-port", "1"
    )
    assert code == 2
    assert f"--grpc-port: cannot listen on 127.0.0.1:{taken_port}" in one_line(err)


def test_operator_explains_it_needs_a_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installation without the operator package (None in sys.modules fails its import).
    monkeypatch.setitem(sys.modules, "taskflow_operator", None)
    code, _, err = run(capsys, "operator")
    assert code == 2
    assert "needs a Kubernetes cluster" in one_line(err)


@pytest.mark.parametrize(
    ("command", "extra", "module"),
    [
        ("operator", "operator", "kopf"),
        ("api", "api", "grpc_health"),
        ("dev", "api", "grpc_health"),
    ],
)
def test_server_command_names_its_missing_extra(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    extra: str,
    module: str,
) -> None:
    # A worker-only installation (`pip install 'taskflow[worker]'`) has no kopf, no gRPC health.
    monkeypatch.setitem(sys.modules, module, None)
    code, _, err = run(capsys, command)
    assert code == 2
    line = one_line(err)
    assert f"'taskflow {command}' needs the {extra} extra ({module}" in line
    assert f"pip install 'taskflow[{extra}]'" in line


def test_migrate_applies_then_reports_up_to_date(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, out, _ = run(capsys, "migrate", "--database-url", database_url)
    assert code == 0
    assert "applied 0001_tasks" in out
    code, out, _ = run(capsys, "migrate", "--database-url", database_url)
    assert code == 0
    assert out.strip() == "database is up to date; nothing to apply"


def test_migrate_reads_the_environment(
    capsys: pytest.CaptureFixture[str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_DATABASE_URL", database_url)
    code, out, _ = run(capsys, "migrate")
    assert code == 0
    assert "applied 0001_tasks" in out


def test_migrate_unreachable_database(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/taskflow?connect_timeout=2"
    code, _, err = run(capsys, "migrate", "--database-url", url)
    assert code == 1
    assert "cannot reach PostgreSQL" in one_line(err)


def test_the_installed_command_prints_one_line_and_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskflow", "submit", "default", "add", "--payload", "{"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "taskflow submit: --payload: not valid JSON: "
        "Expecting property name enclosed in double quotes at line 1 column 2"
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "--log-format", "text", "worker", "--app", "a:b"],
        ["worker", "--app", "a:b", "--log-level", "debug", "--log-format", "text"],
    ],
)
def test_logging_flags_go_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.log_level, args.log_format) == ("DEBUG", "text")


def test_operator_flags_reach_the_operator(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "operator", "--help")
    assert code == 0
    assert "--namespace" in out and "--standalone" in out
    code, _, err = run(capsys, "operator", "--no-such-flag")
    assert code == 2 and "--no-such-flag" in err


def test_unknown_flag_of_a_client_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "some-id", "--no-such-flag")
    assert code == 2 and "--no-such-flag" in err and "Traceback" not in err
