"""Kubernetes-style conditions: set one, keep ``lastTransitionTime`` when nothing changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

TRUE, FALSE = "True", "False"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    existing: Sequence[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    found = False
    for cond in existing:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        found = True
        same = cond.get("status") == status
        out.append(
            _condition(
                type_,
                status,
                reason,
                message,
                generation,
                cond.get("lastTransitionTime") if same else None,
                now,
            )
        )
    if not found:
        out.append(_condition(type_, status, reason, message, generation, None, now))
    return out


def _condition(
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    since: str | None,
    now: str | None,
) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now or now_rfc3339(),
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def same_conditions(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> bool:
    """Equal apart from timestamps (what decides whether a status write is needed)."""

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        return (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))

    return sorted(map(key, a)) == sorted(map(key, b))
