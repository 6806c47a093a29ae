"""TLS and mutual TLS of the gRPC API, through the Python client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskflow.api import ApiServer
from taskflow.api.tls import TlsConfig, TlsError
from taskflow.engine import Engine
from taskflow_client import AsyncClient, InvalidArgumentError, TaskFlowError
from tests.security.certs import Authority


@pytest.fixture
def ca() -> Authority:
    return Authority("taskflow-test-ca")


async def serve(engine: Engine, config: TlsConfig) -> ApiServer:
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0", tls=config)
    await server.start()
    return server


@pytest.fixture
async def tls_server(engine: Engine, ca: Authority, tmp_path: Path) -> AsyncIterator[ApiServer]:
    cert, key = ca.issue("api").write(tmp_path, "server")
    server = await serve(engine, TlsConfig(cert, key))
    yield server
    await server.stop(grace=1)


def client(server: ApiServer, **tls: object) -> AsyncClient:
    return AsyncClient(
        f"localhost:{server.grpc_port}",
        timeout=5,
        retry_budget=0,
        **tls,  # type: ignore[arg-type]
    )


async def roundtrip(c: AsyncClient) -> str:
    async with c:
        task_id = await c.submit("jobs", "work", {"n": 1})
        return (await c.get(task_id)).state


async def test_a_client_that_trusts_the_ca_talks_tls(tls_server: ApiServer, ca: Authority) -> None:
    assert await roundtrip(client(tls_server, ca=ca.pem)) == "queued"


async def test_a_client_with_another_ca_or_no_tls_is_refused(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    other = Authority("someone-else")
    with pytest.raises(TaskFlowError):
        await roundtrip(client(tls_server, ca=other.pem))
    with pytest.raises(TaskFlowError):
        await roundtrip(client(tls_server))


async def test_an_expired_server_certificate_is_refused(
    engine: Engine, ca: Authority, tmp_path: Path
) -> None:
    cert, key = ca.issue("api", expired=True).write(tmp_path, "server")
    server = await serve(engine, TlsConfig(cert, key))
    try:
        with pytest.raises(TaskFlowError):
            await roundtrip(client(server, ca=ca.pem))
    finally:
        await server.stop(grace=1)


async def test_mutual_tls_needs_a_client_certificate_of_the_client_ca(
    engine: Engine, ca: Authority, tmp_path: Path
) -> None:
    cert, key = ca.issue("api").write(tmp_path, "server")
    clients_ca = Authority("clients")
    (tmp_path / "clients.pem").write_bytes(clients_ca.pem)
    server = await serve(engine, TlsConfig(cert, key, tmp_path / "clients.pem"))
    try:
        with pytest.raises(TaskFlowError):
            await roundtrip(client(server, ca=ca.pem))
        stranger = Authority("stranger").issue("app", server=False)
        with pytest.raises(TaskFlowError):
            await roundtrip(client(server, ca=ca.pem, cert=stranger.cert, key=stranger.key))
        ccert, ckey = clients_ca.issue("app", server=False).write(tmp_path, "client")
        assert await roundtrip(client(server, ca=ca.pem, cert=ccert, key=ckey)) == "queued"
    finally:
        await server.stop(grace=1)


async def test_a_renewed_certificate_is_served_without_a_restart(
    engine: Engine, ca: Authority, tmp_path: Path
) -> None:
    cert, key = ca.issue("api").write(tmp_path, "server")
    server = await serve(engine, TlsConfig(cert, key))
    try:
        assert await roundtrip(client(server, ca=ca.pem)) == "queued"
        renewed = Authority("renewed-ca")
        renewed.issue("api").write(tmp_path, "server")
        assert await roundtrip(client(server, ca=renewed.pem)) == "queued"
        with pytest.raises(TaskFlowError):
            await roundtrip(client(server, ca=ca.pem))
    finally:
        await server.stop(grace=1)


def test_half_a_tls_configuration_is_refused_naming_the_flag(ca: Authority, tmp_path: Path) -> None:
    cert, _key = ca.issue("api").write(tmp_path, "server")
    with pytest.raises(TlsError, match="--tls-key"):
        TlsConfig.from_paths(str(cert), None, None)
    with pytest.raises(TlsError, match="--tls-cert"):
        TlsConfig.from_paths(None, None, str(cert))
    other_key = ca.issue("x").write(tmp_path, "other")[1]
    with pytest.raises(TlsError, match="does not belong"):
        TlsConfig.from_paths(str(cert), str(other_key), None)
    with pytest.raises(TlsError, match="No such file"):
        TlsConfig.from_paths(str(cert), str(tmp_path / "missing.key"), None)
    (tmp_path / "junk.key").write_text("junk")
    with pytest.raises(TlsError, match="not a PEM"):
        TlsConfig.from_paths(str(cert), str(tmp_path / "junk.key"), None)


def test_the_client_refuses_bad_tls_arguments_with_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="ca"):
        AsyncClient("localhost:1", ca=tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(InvalidArgumentError, match="not PEM"):
        AsyncClient("localhost:1", ca=str(tmp_path / "junk.pem"))
    with pytest.raises(InvalidArgumentError, match="go together"):
        AsyncClient("localhost:1", cert=b"-----BEGIN CERTIFICATE-----")
