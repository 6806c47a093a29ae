"""The fault suite: every test module is marked ``chaos``; each test gets a ``chaos`` runner.

``TASKFLOW_CHAOS_SCALE`` picks the size (``reduced`` for the normal suite, ``full`` for
``scripts/chaos``); the results table is printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.chaos.report import table
from tests.chaos.scale import current_scale
from tests.chaos.scenario import Scenario

RESULTS: list[dict[str, Any]] = []


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """A scenario named after the test; its cluster is stopped and accounted for even when
    the test fails before ``finish``."""
    name = request.node.name.removeprefix("test_")
    scenario = Scenario(name, current_scale(), RESULTS)
    yield scenario
    problems = scenario.close()
    if problems:
        pytest.fail("stopping the cluster: " + "; ".join(problems), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.section(f"fault suite ({RESULTS[0]['scale']} scale)")
        terminalreporter.write_line(table(RESULTS))
