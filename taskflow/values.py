"""What PostgreSQL can store: JSON values and texts are checked before they reach a batch.

``jsonb`` refuses ``NaN``/``Infinity`` and the escape ``\\u0000``; ``text`` refuses NUL bytes;
neither takes unpaired surrogates (they are not UTF-8). One such value in a batched write would
make PostgreSQL refuse the whole batch, so values are checked where they enter: submissions at
the API, results when an attempt is recorded. Diagnostic texts (errors, tracebacks, progress
messages) are repaired instead of refused, and bounded in size.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "COMPACT_JSON",
    "HANDLER_PATTERN",
    "LABEL_KEY_PATTERN",
    "MAX_ERROR_CHARS",
    "MAX_LABELS",
    "MAX_LABEL_VALUE_CHARS",
    "MAX_PROGRESS_MESSAGE_CHARS",
    "MAX_TRACEBACK_CHARS",
    "UnstorableValue",
    "clean_text",
    "encode_json",
    "handler_problem",
    "json_problem",
    "labels_problem",
    "labels_size",
    "parse_json_text",
    "shown",
    "text_problem",
    "unsafe_char_problem",
]

#: Longest error message kept for an attempt (longer ones keep their start).
MAX_ERROR_CHARS = 8 * 1024
#: Longest traceback kept (longer ones keep their end, where the exception is).
MAX_TRACEBACK_CHARS = 64 * 1024
#: Longest progress message kept.
MAX_PROGRESS_MESSAGE_CHARS = 1024


_SURROGATE = re.compile("[\ud800-\udfff]")


class UnstorableValue(ValueError):
    """A value PostgreSQL would refuse; the message says why, e.g. ``is not valid JSON: NaN``."""


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as PostgreSQL text (None: it can)."""
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "an unpaired surrogate (invalid Unicode)"
    return None


def json_problem(value: Any) -> str | None:
    """Why ``jsonb`` would refuse ``value`` (None: it would not)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return f"contains a string with {problem}"
        elif isinstance(item, float) and not math.isfinite(item):
            name = "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
            return f"is not valid JSON: {name}"
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


# Built once: ``json.loads``/``json.dumps`` with any keyword argument build a new decoder or
# encoder per call, a tenth of the API's work on a batch of small tasks.
_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_STRICT_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
#: Compact JSON (no spaces), for texts TaskFlow itself writes.
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def parse_json_text(text: str) -> Any:
    """Parse JSON text that is to be stored; raises ``UnstorableValue`` saying why not."""
    try:
        value = _STRICT_DECODER.decode(text)
    except RecursionError:
        raise UnstorableValue("is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise UnstorableValue(f"is not valid JSON: {exc}") from None
    problem = json_problem(value)
    if problem:
        raise UnstorableValue(problem)
    return value


def encode_json(value: Any, *, limit: int | None = None) -> str:
    """``value`` as compact JSON text that ``jsonb`` accepts, at most ``limit`` bytes.

    Raises ``UnstorableValue``: ``is not valid JSON: NaN``, ``contains a string with a NUL
    character``, ``is 5242880 bytes, over the limit of 1048576 bytes``, ``is not JSON: ...``.
    """
    try:
        text = _STRICT_ENCODER.encode(value)
    except RecursionError:
        raise UnstorableValue("is not JSON: nested too deeply") from None
    except ValueError:
        # allow_nan=False: find which number it was for the message
        raise UnstorableValue(json_problem(value) or "is not valid JSON") from None
    except TypeError as exc:
        raise UnstorableValue(f"is not JSON: {exc}") from None
    problem = json_problem(value)
    if problem:
        raise UnstorableValue(problem)
    if limit is not None:
        size = len(text.encode("utf-8"))
        if size > limit:
            raise UnstorableValue(f"is {size} bytes, over the limit of {limit} bytes")
    return text


def clean_text(text: str | None, limit: int, *, keep: str = "start") -> str | None:
    """A diagnostic text made storable: NUL shown as ``\\x00``, unpaired surrogates replaced,
    cut to ``limit`` characters (keeping the ``start`` or the ``end``)."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    if len(text) > limit:
        marker = f" [... {len(text) - limit} characters cut ...] "
        room = max(0, limit - len(marker))
        text = text[:room] + marker if keep == "start" else marker + text[len(text) - room :]
    return text


# -- names ------------------------------------------------------------------------------------
# The client (taskflow_client._names) checks the same rules before it sends; a test keeps the
# two in step.

#: A handler: letters, digits and ``_ . : / -``, starting with a letter, digit or ``_``.
HANDLER_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}\Z"
#: A label key, as Kubernetes has them: an optional DNS-subdomain prefix and ``/``, then a
#: name of at most 63 letters, digits and ``- _ .`` that starts and ends alphanumeric.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z"
)
MAX_LABELS = 64
MAX_LABEL_VALUE_CHARS = 1024

_HANDLER_RE = re.compile(HANDLER_PATTERN)
_LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN)
#: Control characters, and the invisible marks that reorder or hide text (bidirectional
#: overrides and isolates, zero-width characters): in a key or label they make one name look
#: like another in a terminal or a dashboard.
UNSAFE_CHARS = (
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
_UNSAFE_CHARS = re.compile(UNSAFE_CHARS)


def shown(value: str, limit: int = 40) -> str:
    """``repr(value)``, cut to about ``limit`` characters, for error messages."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def unsafe_char_problem(text: str) -> str | None:
    """Why ``text`` is unfit for a key or label (None: it is fine)."""
    match = _UNSAFE_CHARS.search(text)
    if match is None:
        return None
    return f"must not contain the control or invisible character U+{ord(match.group()):04X}"


def handler_problem(name: str) -> str | None:
    if _HANDLER_RE.match(name):
        return None
    if len(name) > 200:
        return f"is {len(name)} characters, at most 200 allowed"
    return (
        f"{shown(name)} is not a handler name: letters, digits and _ . : / - only, "
        "starting with a letter, digit or _"
    )


def labels_problem(labels: dict[str, str]) -> str | None:
    """Why ``labels`` cannot be stored (None: they can)."""
    if len(labels) > MAX_LABELS:
        return f"{len(labels)} labels, at most {MAX_LABELS} allowed"
    for key, value in labels.items():
        if not _LABEL_KEY_RE.match(key):
            return (
                f"key {shown(key)} is not a label key: [prefix/]name, the name at most 63 "
                "letters, digits and - _ . starting and ending alphanumeric"
            )
        if len(value) > MAX_LABEL_VALUE_CHARS:
            return f"value of {key!r} is {len(value)} characters, at most {MAX_LABEL_VALUE_CHARS}"
        problem = unsafe_char_problem(value)
        if problem:
            return f"value of {key!r} {problem}"
    return None


def labels_size(labels: dict[str, str]) -> int:
    """Bytes the labels take (they count against the payload limit)."""
    return sum(len(k.encode()) + len(v.encode("utf-8", "surrogatepass")) for k, v in labels.items())
