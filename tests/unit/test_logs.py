"""Logs go to the standard error of the moment: a process that swaps it keeps every record."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from taskflow.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_record_goes_to_the_current_stderr_after_the_old_one_closed(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO", json_format=False)
    logging.getLogger("taskflow.test").info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("taskflow.test").info("two")
    assert "taskflow.test: two" in second.getvalue()
    assert "Logging error" not in second.getvalue()
