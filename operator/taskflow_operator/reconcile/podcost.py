"""Pod deletion cost from each worker's in-flight count, so idle pods are removed first."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from taskflow_operator.builders.common import DELETION_COST, HEALTH_PORT

log = logging.getLogger("taskflow.operator.podcost")

Probe = Callable[[dict[str, Any]], Awaitable[int | None]]


@dataclass(frozen=True)
class PodLoad:
    name: str
    in_flight: int | None  # None: the pod's /healthz did not answer

    @property
    def cost(self) -> str:
        return str(self.in_flight or 0)


def http_probe(timeout: float) -> Probe:
    async def probe(pod: dict[str, Any]) -> int | None:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        url = f"http://{ip}:{HEALTH_PORT}/healthz"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(url) as response,
            ):
                if response.status != 200:
                    return None
                body = await response.json()
                return int(body["in_flight"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
            return None

    return probe


async def measure(pods: list[dict[str, Any]], probe: Probe) -> list[PodLoad]:
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    counts = await asyncio.gather(*(probe(p) for p in live))
    return [PodLoad(p["metadata"]["name"], n) for p, n in zip(live, counts, strict=True)]


def annotations_to_write(pods: list[dict[str, Any]], loads: list[PodLoad]) -> dict[str, str]:
    """Pod name → new deletion cost, for the pods whose annotation differs."""
    current = {
        p["metadata"]["name"]: ((p["metadata"].get("annotations") or {}).get(DELETION_COST))
        for p in pods
    }
    return {load.name: load.cost for load in loads if current.get(load.name) != load.cost}
