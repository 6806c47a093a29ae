"""Reading a Prometheus text exposition in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


class Samples:
    """The samples of one scrape, looked up by name and labels (0 when absent)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name for f in text_string_to_metric_families(text)}
        self._values = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self._values} | self.families


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        return Samples(await response.text())


async def scrape_until(
    url: str, ready: Callable[[Samples], bool], timeout: float = 30.0
) -> Samples:
    """Scrape until ``ready`` holds; fail with the last scrape after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = "(no scrape answered)"
    while True:
        try:
            samples = await scrape(url)
        except aiohttp.ClientConnectionError:  # the endpoint is still starting
            pass
        else:
            if ready(samples):
                return samples
            last = samples.text
        if time.monotonic() > deadline:
            raise AssertionError(f"figures did not move within {timeout}s:\n{last}")
        await asyncio.sleep(0.05)
