"""A task as large as the server accepts stays readable through the client: the client's
message limit matches the server's (gRPC's default of 4 MB would refuse the reply)."""

from __future__ import annotations

from taskflow.api import ApiServer
from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.store import apply_migrations
from taskflow_client import AsyncClient

MIB = 1024 * 1024


async def test_a_five_megabyte_task_is_readable(redis_url: str, database_url: str) -> None:
    settings = Settings(redis_url=redis_url, database_url=database_url, max_payload_bytes=6 * MIB)
    await apply_migrations(database_url)
    engine = await Engine.connect(settings)
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await server.start()
    try:
        async with AsyncClient(f"127.0.0.1:{server.grpc_port}") as client:
            blob = "x" * (5 * MIB)
            task_id = await client.submit("default", "noop", {"blob": blob})
            assert (await client.get(task_id)).payload == {"blob": blob}
            listed = [t async for t in client.list_tasks("default")]
            assert [t.payload for t in listed] == [{"blob": blob}]
    finally:
        await server.stop(0)
        await engine.close()
