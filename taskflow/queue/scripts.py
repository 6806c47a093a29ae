"""Loads the Lua scripts of ``lua/`` and runs them with the queue's keys."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from taskflow.keys import QueueKeys

SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "complete",
    "extend",
    "cancel",
    "expired",
    "reclaim",
    "promote",
)


@cache
def script_source(name: str) -> str:
    """The full text of a script: the shared prelude followed by the script itself."""
    lua = resources.files("taskflow.queue") / "lua"
    return (lua / "_lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


@cache
def legacy_script_source() -> str:
    """``forget_legacy_parked.lua``: standalone (its own KEYS, no shared prelude)."""
    return (resources.files("taskflow.queue") / "lua" / "forget_legacy_parked.lua").read_text()


@cache
def _script_keys(keys: QueueKeys) -> tuple[str, ...]:
    return (
        keys.ready,
        keys.delayed,
        keys.leases,
        keys.running,
        keys.data,
        keys.prio,
        keys.deliveries,
        keys.lost,
        keys.ckey,
        keys.cconc,
        keys.cancel,
        keys.rate,
        keys.seq,
        keys.fence,
        keys.notify,
        keys.stats,
        keys.failures,
        keys.cwait,
        keys.cwaitm,
    )


def script_keys(keys: QueueKeys) -> list[str]:
    """The KEYS array every script receives, in the order ``_lib.lua`` documents (built once
    per queue: the names never change)."""
    return list(_script_keys(keys))


class Scripts:
    """The registered scripts of one Redis client (EVALSHA, reloaded after a flush)."""

    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def run(self, name: str, keys: QueueKeys, *args: Any) -> Any:
        return await self._scripts[name](keys=script_keys(keys), args=list(args))
