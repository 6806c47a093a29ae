"""How the operator finds its credentials, logs kopf in, and fails to start: clearly, once,
with nothing left open."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kopf
import pytest
import redis

from taskflow.config import Settings
from taskflow_operator import credentials
from taskflow_operator.handlers.lifecycle import _start
from taskflow_operator.settings import OperatorConfig


def kubeconfig(path: Path, user: dict[str, str], server: str = "https://127.0.0.1:6443") -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_a_bearer_token_kubeconfig_logs_kopf_in_with_that_token(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "token.kubeconfig", {"token": "abc.def"})
    info = credentials.connection_info(credentials.configuration(credentials.choose(path)))
    assert (info.server, info.scheme, info.token) == ("https://127.0.0.1:6443", "Bearer", "abc.def")


def test_basic_auth_kubeconfig_sends_the_basic_header(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "basic.kubeconfig", {"username": "u", "password": "p"})
    info = credentials.connection_info(credentials.configuration(credentials.choose(path)))
    assert info.scheme == "Basic" and base64.b64decode(info.token or "") == b"u:p"


def test_credentials_are_chosen_flag_then_kubeconfig_env_then_pod_then_home(
    tmp_path: Path,
) -> None:
    a = kubeconfig(tmp_path / "a", {"token": "a"})
    b = kubeconfig(tmp_path / "b", {"token": "b"})
    token = tmp_path / "sa-token"
    token.write_text("t")
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    kubeconfig(home / ".kube" / "config", {"token": "h"})
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    missing = str(tmp_path / "missing")

    def chosen(flag: Path | None, env: dict[str, str]) -> Path | None:
        return credentials.choose(flag, env, token_file=token, home=home).kubeconfig

    assert chosen(a, {"KUBECONFIG": str(b), **pod}) == a
    assert chosen(None, {"KUBECONFIG": f"{missing}{os.pathsep}{b}", **pod}) == b
    assert chosen(None, pod) is None  # the service account
    assert chosen(None, {}) == home / ".kube" / "config"
    with pytest.raises(credentials.NoCredentials, match=r"KUBECONFIG=.*missing: no such file"):
        chosen(None, {"KUBECONFIG": missing})
    with pytest.raises(credentials.NoCredentials, match="--kubeconfig"):
        credentials.choose(None, {}, token_file=tmp_path / "none", home=tmp_path / "nobody")


def run_operator(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskflow", "operator", "--log-format", "text", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
    }
    env["HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env


def test_without_credentials_the_operator_says_so_and_exits(tmp_path: Path) -> None:
    result = run_operator(
        "--http-port", "0", "--liveness", "", env=base_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "cannot start: no Kubernetes credentials: pass --kubeconfig" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_http_port_is_named_and_the_process_exits(
    tmp_path: Path, busy_port: int, redis_url: str, database_url: str
) -> None:
    env = base_env(tmp_path)
    env |= {"TASKFLOW_REDIS_URL": redis_url, "TASKFLOW_DATABASE_URL": database_url}
    path = kubeconfig(tmp_path / "k", {"token": "t"})
    result = run_operator(
        "--kubeconfig", str(path), "--http-port", str(busy_port), "--liveness", "",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"--http-port {busy_port}: cannot listen on 127.0.0.1:{busy_port}" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_failed_start_leaves_no_engine_connected(
    tmp_path: Path, busy_port: int, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("TASKFLOW_DATABASE_URL", settings.database_url)
    admin = redis.Redis.from_url(settings.redis_url)
    before = len(admin.client_list())
    config = OperatorConfig(
        kubeconfig=kubeconfig(tmp_path / "k", {"token": "t"}),
        http_host="127.0.0.1",
        http_port=busy_port,
        liveness_endpoint="",
    )
    for _ in range(3):  # kopf would retry a temporary failure; each attempt cleans up
        with pytest.raises(kopf.PermanentError, match="--http-port"):
            await _start(config)
    assert len(admin.client_list()) == before
    admin.close()


def test_records_of_dead_processes_of_this_host_are_the_only_ones_forgotten() -> None:
    from taskflow_operator.peering import dead_local_records

    status = {
        "me@box/100/a1": {},  # this operator
        "me@box/100/b2": {},  # another one in this process
        "me@box/200/c3": {},  # a crashed predecessor
        "me@box/300/d4": {},  # another operator on this host, alive
        "me@other/200/e5": {},  # another host: not ours to judge
        "pod-abc": {},  # a pod
    }
    alive = {100, 300}.__contains__
    dead = dead_local_records(status, "me@box/100/a1", "me@box/", alive=alive)
    assert dead == ["me@box/200/c3"]


def test_the_http_port_defaults_apart_from_taskflow_dev_and_the_api() -> None:
    from taskflow.cli.parser import build_parser
    from taskflow_operator.runner import parse_args

    config, _ = parse_args([])
    dev = build_parser().parse_args(["dev"])
    assert config.http_port == 8090 != dev.http_port == 8080
    assert config.priority is None  # peers rank by start time unless told


class FakeCustomObjects:
    """The API server's answers to the peering set-up, without a cluster: the object is not
    found, with ``body`` saying whether the object or its whole resource is missing."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.created: list[tuple[object, ...]] = []

    def get_namespaced_custom_object(self, *args: object) -> dict[str, object]:
        from kubernetes.client.exceptions import ApiException

        exc = ApiException(status=404, reason="Not Found")
        exc.body = self.body
        raise exc

    def create_namespaced_custom_object(self, *args: object) -> None:
        self.created.append(args)


@pytest.mark.parametrize(
    ("body", "standalone"),
    [
        ('{"reason":"NotFound","details":{}}', True),  # no such resource: no peering CRD
        ('{"reason":"NotFound","details":{"name":"p"}}', False),  # no such object: made
    ],
)
async def test_peering_is_created_when_missing_and_absent_crds_mean_standalone(
    monkeypatch: pytest.MonkeyPatch, body: str, standalone: bool
) -> None:
    from taskflow_operator import peering

    fake = FakeCustomObjects(body)
    monkeypatch.setattr(peering.client, "CustomObjectsApi", lambda api: fake)
    settings = kopf.OperatorSettings()
    settings.peering.mandatory = True
    config = OperatorConfig(namespaces=("team",), peering_name="p")
    await peering.configure(settings, config, api=None)
    assert settings.peering.standalone is standalone
    assert settings.peering.mandatory is not standalone
    assert len(fake.created) == (0 if standalone else 1)
    if not standalone:
        assert settings.peering.priority < 0  # by start time
