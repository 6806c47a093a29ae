"""The server's rules for names, keys and labels, checked before a request is sent, so that a
value the server would refuse raises ``InvalidArgumentError`` at once (never ``ValueError`` or
``TypeError`` from deep inside protobuf). ``taskflow.values`` holds the same rules; a test
keeps them in step."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidArgumentError

__all__ = ["check_labels", "check_task_fields"]

NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?\Z"
NAMESPACE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"
HANDLER_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}\Z"
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z"
)
MAX_LABELS = 64
MAX_LABEL_VALUE_CHARS = 1024
MAX_KEY_CHARS = 256
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
UNSAFE_CHARS = (
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)

_NAME = re.compile(NAME_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_HANDLER = re.compile(HANDLER_PATTERN)
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_UNSAFE = re.compile(UNSAFE_CHARS)


def _shown(value: str, limit: int = 40) -> str:
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{field}: must be a string, got {type(value).__name__}")
    return value


def _matching(
    value: Any, pattern: re.Pattern[str], field: str, what: str, *, empty: bool = False
) -> None:
    text = _text(value, field)
    if empty and not text:
        return
    if not pattern.match(text):
        raise InvalidArgumentError(f"{field}: {_shown(value)} is not {what}")


def _key(value: Any, field: str) -> None:
    if value is None:
        return
    text = _text(value, field)
    if not text or len(text) > MAX_KEY_CHARS:
        raise InvalidArgumentError(f"{field}: must be 1 to {MAX_KEY_CHARS} characters")
    unsafe = _UNSAFE.search(text)
    if unsafe:
        raise InvalidArgumentError(
            f"{field}: must not contain the control or invisible character "
            f"U+{ord(unsafe.group()):04X}"
        )


def _integer(value: Any, field: str, low: int, high: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(
            f"{field}: must be an integer from {low} to {high}, got {value!r}"
        )


def check_labels(labels: Any, field: str) -> None:
    """Refuse labels the server would refuse (count, key syntax, value characters)."""
    _labels(labels, field)


def _labels(labels: Any, field: str) -> None:
    if labels is None:
        return
    if not isinstance(labels, Mapping):
        raise InvalidArgumentError(f"{field}: must be a mapping of strings to strings")
    if len(labels) > MAX_LABELS:
        raise InvalidArgumentError(f"{field}: {len(labels)} labels, at most {MAX_LABELS} allowed")
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgumentError(f"{field}: keys and values must be strings")
        if not _LABEL_KEY.match(key):
            raise InvalidArgumentError(
                f"{field}: key {_shown(key)} is not a label key: [prefix/]name, the name at most "
                "63 letters, digits and - _ . starting and ending alphanumeric"
            )
        if len(value) > MAX_LABEL_VALUE_CHARS:
            raise InvalidArgumentError(
                f"{field}: value of {key!r} is {len(value)} characters, "
                f"at most {MAX_LABEL_VALUE_CHARS}"
            )
        unsafe = _UNSAFE.search(value)
        if unsafe:
            raise InvalidArgumentError(
                f"{field}: value of {key!r} must not contain the control or invisible "
                f"character U+{ord(unsafe.group()):04X}"
            )


def check_task_fields(request: Any, namespace: str, prefix: str = "") -> None:
    """Refuse, naming the field, what the server would refuse in a ``TaskRequest`` (an empty
    namespace or queue is inherited: a DAG step's come from its run)."""
    space = request.namespace or namespace
    _matching(space, _NAMESPACE, f"{prefix}namespace", "a namespace", empty=True)
    _matching(request.queue, _NAME, f"{prefix}queue", "a queue name", empty=True)
    _matching(request.handler, _HANDLER, f"{prefix}handler", "a handler name")
    _integer(request.priority, f"{prefix}priority", MIN_PRIORITY, MAX_PRIORITY)
    _integer(request.max_retries, f"{prefix}max_retries", 0, 1000, optional=True)
    _integer(request.concurrency_limit, f"{prefix}concurrency_limit", 1, 100_000, optional=True)
    _key(request.idempotency_key, f"{prefix}idempotency_key")
    _key(request.concurrency_key, f"{prefix}concurrency_key")
    _labels(request.labels, f"{prefix}labels")
    for name in ("delay", "timeout"):
        value = getattr(request, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(f"{prefix}{name}: must be a finite number of seconds")
