"""Whether a live object still matches what the operator wants (API-server defaults aside)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity


def drifted(wanted: Any, live: Any, path: str = "") -> list[str]:
    """Paths where ``live`` departs from ``wanted``; keys only ``live`` has are defaults."""
    if isinstance(wanted, dict):
        if not isinstance(live, dict):
            return [path or "."]
        out: list[str] = []
        for key, value in wanted.items():
            sub = f"{path}.{key}" if path else key
            if key in ("limits", "requests") and isinstance(value, dict):
                out += _quantities(value, live.get(key), sub)
            else:
                out += drifted(value, live.get(key), sub)
        return out
    if isinstance(wanted, list):
        if not isinstance(live, list) or len(live) != len(wanted):
            return [path]
        return [
            p
            for i, (w, v) in enumerate(zip(wanted, live, strict=True))
            for p in drifted(w, v, f"{path}[{i}]")
        ]
    return [] if wanted == live else [path]


def _quantities(wanted: dict[str, Any], live: Any, path: str) -> list[str]:
    if not isinstance(live, dict) or set(live) != set(wanted):
        return [path]
    return [f"{path}.{k}" for k, v in wanted.items() if _q(v) != _q(live[k])]


def _q(value: Any) -> Decimal | None:
    try:
        return Decimal(parse_quantity(value))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return None
