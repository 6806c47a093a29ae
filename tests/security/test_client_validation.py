"""The client refuses what the server would refuse, with ``InvalidArgumentError`` naming the
field, and never with a bare ``ValueError`` or ``TypeError``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import taskflow.models as server_models
import taskflow.values as server_values
from taskflow.errors import InvalidArgument
from taskflow.models import validate_submission
from taskflow_client import Client, InvalidArgumentError, TaskRequest
from taskflow_client import _names as client_names
from taskflow_client._requests import submit_many_request, submit_request
from tests.security.test_hostile_input import EXAMPLES, hostile_text

BUDGET = settings(max_examples=EXAMPLES * 4, deadline=None, derandomize=EXAMPLES <= 30)


def test_the_client_and_the_server_share_the_rules() -> None:
    assert client_names.HANDLER_PATTERN == server_values.HANDLER_PATTERN
    assert client_names.LABEL_KEY_PATTERN == server_values.LABEL_KEY_PATTERN
    assert client_names.UNSAFE_CHARS == server_values.UNSAFE_CHARS
    assert client_names.MAX_LABELS == server_values.MAX_LABELS
    assert client_names.MAX_LABEL_VALUE_CHARS == server_values.MAX_LABEL_VALUE_CHARS
    # The server's patterns end in $ (pydantic: end of text); the client's in \Z.
    name, namespace = (
        p.removesuffix("$") + r"\Z"
        for p in (server_models._NAME_PATTERN, server_models._NAMESPACE_PATTERN)
    )
    assert (name, namespace) == (client_names.NAME_PATTERN, client_names.NAMESPACE_PATTERN)
    assert (client_names.MIN_PRIORITY, client_names.MAX_PRIORITY) == (
        server_models.MIN_PRIORITY,
        server_models.MAX_PRIORITY,
    )


def _client_refuses(**fields: Any) -> str | None:
    try:
        submit_request(TaskRequest(**{"queue": "q", "handler": "h", **fields}), "default")
    except InvalidArgumentError as exc:
        return exc.field
    return None


def _server_refuses(**fields: Any) -> str | None:
    raw = {"queue": "q", "handler": "h", **fields}
    try:
        validate_submission(raw)
    except InvalidArgument as exc:
        return exc.field
    return None


@BUDGET
@given(
    name=st.sampled_from(["queue", "handler", "idempotency_key", "concurrency_key", "namespace"]),
    value=hostile_text,
)
def test_client_and_server_agree_on_names_and_keys(name: str, value: str) -> None:
    extra: dict[str, Any] = {"concurrency_limit": 1} if name == "concurrency_key" else {}
    if not value:
        return  # empty means "not given" on the wire
    client = _client_refuses(**{name: value}, **extra)
    server = _server_refuses(**{name: value}, **extra)
    assert (client is None) == (server is None), (name, value[:80], client, server)


@BUDGET
@given(labels=st.dictionaries(hostile_text, hostile_text, max_size=3))
def test_client_and_server_agree_on_labels(labels: dict[str, str]) -> None:
    client = _client_refuses(labels=labels)
    server = _server_refuses(labels=labels)
    assert (client is None) == (server is None), (labels, client, server)


WRONG_TYPES: list[dict[str, Any]] = [
    {"queue": 5},
    {"handler": None},
    {"handler": b"bytes"},
    {"priority": "high"},
    {"priority": 2**40},
    {"priority": True},
    {"max_retries": -1},
    {"max_retries": 1.5},
    {"concurrency_limit": 0, "concurrency_key": "k"},
    {"labels": {"k": 1}},
    {"labels": ["k"]},
    {"labels": {f"k{i}": "v" for i in range(65)}},
    {"idempotency_key": 42},
    {"idempotency_key": "x" * 257},
    {"delay": float("nan")},
    {"delay": "soon"},
    {"timeout": float("inf")},
    {"payload": {1, 2}},
    {"payload": float("nan")},
    {"run_at": "tomorrow"},
    {"namespace": "Team A"},
]


@pytest.mark.parametrize("fields", WRONG_TYPES, ids=lambda f: ",".join(f))
def test_wrong_values_raise_invalid_argument_naming_the_field(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        submit_request(TaskRequest(**{"queue": "q", "handler": "h", **fields}), "default")
    assert info.value.field is not None
    assert re.sub(r"\[\d+\]", "", info.value.field).split(".")[0] in fields, info.value
    with pytest.raises(InvalidArgumentError) as info:
        submit_many_request([{"queue": "q", "handler": "h", **fields}], "default")
    assert (info.value.field or "").startswith("tasks[0].")


def test_bad_constructor_arguments_raise_invalid_argument() -> None:
    for kwargs in ({"timeout": -1}, {"retries": 0}, {"retry_budget": "x"}, {"namespace": ""}):
        with pytest.raises(InvalidArgumentError):
            Client("localhost:1", **kwargs)  # type: ignore[arg-type]
