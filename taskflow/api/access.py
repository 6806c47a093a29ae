"""What the caller of the current RPC may do: the checks at the top of every RPC.

The auth interceptor resolves the caller's token to a ``Principal`` and runs the RPC with it as
``current()``. Checks fail closed: an RPC that runs without a principal is refused.

- a role the token lacks → ``PermissionDenied`` (PERMISSION_DENIED);
- a namespace named in the request that the token may not use → ``PermissionDenied``;
- an object reached by id (task, DAG run) that lives in another namespace → ``NotFound``
  with the very message of an object that does not exist: a token never learns that it does.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterable
from typing import TypeVar

from taskflow.api.tokens import ANONYMOUS, Principal, Role, TokenRegistry
from taskflow.errors import NotFound, PermissionDenied, RateLimited, Unauthenticated

__all__ = [
    "ANONYMOUS",
    "authorize",
    "charge",
    "current",
    "require",
    "require_namespace",
    "reveal",
    "visible",
]

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "taskflow_principal", default=None
)

T = TypeVar("T")


def bind(principal: Principal) -> None:
    """Make ``principal`` the caller of the RPC running in this context."""
    _current.set(principal)


def current() -> Principal:
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no caller identity for this call")
    return principal


def require(role: Role, *, alternative: Role | None = None) -> Principal:
    """The caller, if it holds ``role`` (or ``alternative``)."""
    principal = current()
    if principal.has(role) or (alternative is not None and principal.has(alternative)):
        return principal
    raise PermissionDenied(f"token {principal.name!r} lacks the role {role.value!r}")


def require_namespace(role: Role, namespace: str, *, alternative: Role | None = None) -> None:
    """The caller holds ``role`` and may use ``namespace`` (empty means ``default``)."""
    principal = require(role, alternative=alternative)
    if not principal.sees(namespace):
        raise PermissionDenied(
            f"token {principal.name!r} may not use namespace {namespace or 'default'!r}"
        )


def reveal(namespace: str, not_found: str) -> None:
    """Raise ``NotFound(not_found)`` if the caller may not see ``namespace``."""
    if not current().sees(namespace):
        raise NotFound(not_found)


def visible(items: Iterable[T], namespace_of: str) -> list[T]:
    """The items (with a ``namespace_of`` attribute) whose namespace the caller may see."""
    principal = current()
    return [i for i in items if principal.sees(getattr(i, namespace_of))]


def charge(tasks: int) -> None:
    """Spend ``tasks`` from the caller's submission rate limit, or raise ``RateLimited``."""
    principal = current()
    bucket = principal.bucket
    if bucket is None or tasks <= 0:
        return
    wait = bucket.take(tasks)
    if wait == 0:
        return
    if math.isinf(wait):
        raise RateLimited(
            f"token {principal.name!r}: {tasks} tasks exceed its burst of {bucket.burst:g}; "
            "submit them in smaller batches",
            wait,
        )
    raise RateLimited(
        f"token {principal.name!r} is limited to {bucket.rate:g} tasks/s; retry after {wait:.3f}s",
        wait,
    )


def authorize(registry: TokenRegistry, token: str | None, namespace: str, role: Role) -> Principal:
    """``registry.authorize``: for HTTP endpoints outside gRPC (the dashboard)."""
    return registry.authorize(token, namespace, role)
