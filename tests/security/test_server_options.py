"""Server options of the security controls: probes and reflection, and refused configurations."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from taskflow.api import ApiServer
from taskflow.api.tokens import TokenRegistry
from taskflow.engine import Engine
from tests.security.conftest import ADMIN, TokensFile, auth
from tests.test_cli import one_line, run


async def list_services(
    channel: aio.Channel, metadata: list[tuple[str, str]] | None = None
) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for response in stub.ServerReflectionInfo(iter([request]), metadata=metadata):
        return [s.name for s in response.list_services_response.service]
    return []


async def test_probes_can_be_put_behind_the_token_and_reflection_turned_off(
    engine: Engine, tokens_file: TokensFile
) -> None:
    registry = TokenRegistry("", tokens_file.path, poll_interval=0)
    server = ApiServer(
        engine,
        grpc_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        tokens=registry,
        open_probes=False,
    )
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(aio.AioRpcError) as info:
                await health.Check(health_pb2.HealthCheckRequest())
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            ok = await health.Check(health_pb2.HealthCheckRequest(), metadata=auth(ADMIN))
            assert ok.status == health_pb2.HealthCheckResponse.SERVING
            assert "taskflow.v1.TaskService" in await list_services(channel, auth(ADMIN))
    finally:
        await server.stop(grace=1)

    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0", reflection=False)
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            with pytest.raises(aio.AioRpcError) as info:
                await list_services(channel)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(grace=1)


def test_api_refuses_a_broken_tokens_file_naming_the_entry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "tokens.yaml"
    bad.write_text(
        "tokens:\n  - name: ci\n    token: short\n    namespaces: [a]\n    roles: [read]\n"
    )
    code, _, err = run(capsys, "api", "--tokens-file", str(bad))
    assert code == 2
    assert "tokens[0] (ci).token: must be a string of at least 16 characters" in one_line(err)
    bad.write_text(
        "tokens:\n  - name: ci\n    sha256: ab\n    namespaces: '*'\n    roles: [root]\n"
    )
    code, _, err = run(capsys, "api", "--tokens-file", str(bad))
    assert code == 2 and "sha256: must be 64 hexadecimal digits" in one_line(err)
    code, _, err = run(capsys, "api", "--tokens-file", str(tmp_path / "absent.yaml"))
    assert code == 2 and "absent.yaml" in one_line(err)


def test_api_refuses_half_a_tls_configuration(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "api", "--tls-cert", str(tmp_path / "server.crt"))
    assert code == 2
    assert "--tls-cert and --tls-key go together" in one_line(err)
