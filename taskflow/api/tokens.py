"""Scoped API tokens: who may call, in which namespaces, with which roles, how fast.

A tokens file (YAML or JSON) lists the tokens::

    tokens:
      - name: team-a                 # shown in logs and errors; never the token itself
        sha256: 9f86d081...          # hex digest of the token (or `token: <plain text>`)
        namespaces: [team-a]         # or "*" for every namespace
        roles: [submit, read]        # any of submit, read, admin, metrics
        rate: 50                     # optional: tasks per second this token may submit
        burst: 100                   # optional: how many at once (default: max(rate, 1))

The file is read again when it changes (its mtime, size or inode), so tokens can be added,
rotated and revoked without a restart. A file that fails to parse keeps the previous tokens in
force (and is logged); at start-up it is an error. The single ``TASKFLOW_API_TOKEN`` keeps
working beside the file as an admin token for every namespace.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from taskflow.errors import PermissionDenied, Unauthenticated

log = logging.getLogger("taskflow.api.auth")

__all__ = [
    "ANONYMOUS",
    "Principal",
    "Role",
    "TokenBucket",
    "TokenFileError",
    "TokenRegistry",
    "TokenRule",
    "parse_tokens",
]


class Role(StrEnum):
    #: Submit tasks and DAG runs, cancel tasks and runs of its namespaces.
    SUBMIT = "submit"
    #: Get, watch and list tasks, runs, queues, dead letters and schedules.
    READ = "read"
    #: Everything: also replay dead letters, retry runs, create, change and delete schedules.
    ADMIN = "admin"
    #: Scrape the HTTP ``/metrics`` endpoint (its figures span every namespace).
    METRICS = "metrics"


ALL_ROLES = frozenset(Role)


class TokenFileError(ValueError):
    """The tokens file cannot be used; the message names the entry and field."""


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Thread-safe."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._level = burst
        self._at = clock()
        self._lock = threading.Lock()

    def take(self, cost: float) -> float:
        """Take ``cost`` tokens and return 0, or take nothing and return the seconds to wait
        until they are there (``inf`` if ``cost`` exceeds the burst: it never will be)."""
        with self._lock:
            now = self._clock()
            self._level = min(self.burst, self._level + (now - self._at) * self.rate)
            self._at = now
            if cost <= self._level:
                self._level -= cost
                return 0.0
            if cost > self.burst:
                return math.inf
            return (cost - self._level) / self.rate


@dataclass(frozen=True)
class Principal:
    """The caller of an RPC: a token's name, namespaces (``None``: all) and roles."""

    name: str
    namespaces: frozenset[str] | None
    roles: frozenset[Role]
    bucket: TokenBucket | None = field(default=None, compare=False, repr=False)

    @property
    def scoped(self) -> bool:
        """True when some namespaces are out of reach."""
        return self.namespaces is not None

    def sees(self, namespace: str) -> bool:
        return self.namespaces is None or (namespace or "default") in self.namespaces

    def has(self, role: Role) -> bool:
        """Admin implies submit and read; metrics (which span every namespace) need the
        metrics role or an admin of every namespace."""
        if role in self.roles:
            return True
        if Role.ADMIN not in self.roles:
            return False
        return role is not Role.METRICS or self.namespaces is None


#: The caller when the server runs without authentication.
ANONYMOUS = Principal("anonymous", None, ALL_ROLES)
#: The caller holding ``TASKFLOW_API_TOKEN``.
STATIC_ADMIN = Principal("api-token", None, ALL_ROLES)


@dataclass(frozen=True)
class TokenRule:
    """One entry of the tokens file."""

    name: str
    digest: bytes
    namespaces: frozenset[str] | None
    roles: frozenset[Role]
    rate: float | None = None
    burst: float | None = None


def _field_error(where: str, problem: str) -> TokenFileError:
    return TokenFileError(f"{where}: {problem}")


def _rule(raw: Any, where: str) -> TokenRule:
    if not isinstance(raw, Mapping):
        raise _field_error(where, "must be a mapping")
    unknown = set(raw) - {"name", "token", "sha256", "namespaces", "roles", "rate", "burst"}
    if unknown:
        raise _field_error(where, f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _field_error(f"{where}.name", "is required")
    where = f"{where} ({name})"
    token, sha = raw.get("token"), raw.get("sha256")
    if (token is None) == (sha is None):
        raise _field_error(where, "set exactly one of 'token' and 'sha256'")
    if token is not None:
        if not isinstance(token, str) or len(token) < 16:
            raise _field_error(f"{where}.token", "must be a string of at least 16 characters")
        digest = hashlib.sha256(token.encode()).digest()
    else:
        try:
            digest = bytes.fromhex(str(sha))
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise _field_error(f"{where}.sha256", "must be 64 hexadecimal digits")
    spaces = raw.get("namespaces")
    namespaces: frozenset[str] | None
    if spaces == "*" or spaces == ["*"]:
        namespaces = None
    elif isinstance(spaces, list) and spaces and all(isinstance(n, str) and n for n in spaces):
        namespaces = frozenset(spaces)
    else:
        raise _field_error(f"{where}.namespaces", "must be a non-empty list of names or '*'")
    roles_raw = raw.get("roles")
    if not isinstance(roles_raw, list) or not roles_raw:
        raise _field_error(f"{where}.roles", f"must list some of {', '.join(Role)}")
    roles: set[Role] = set()
    for i, role in enumerate(roles_raw):
        if role not in Role.__members__.values():
            raise _field_error(
                f"{where}.roles[{i}]", f"unknown role {role!r}; one of {', '.join(Role)}"
            )
        roles.add(Role(role))
    rate = _positive(raw.get("rate"), f"{where}.rate")
    burst = _positive(raw.get("burst"), f"{where}.burst")
    if burst is not None and rate is None:
        raise _field_error(f"{where}.burst", "needs a rate")
    return TokenRule(name, digest, namespaces, frozenset(roles), rate, burst)


def _positive(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _field_error(where, "must be a positive number")
    if not math.isfinite(value):
        raise _field_error(where, "must be finite")
    return float(value)


def parse_tokens(text: str, source: str = "tokens file") -> list[TokenRule]:
    """The rules of a tokens file's text (YAML, of which JSON is a subset)."""
    try:
        doc = yaml.safe_load(text) if text.strip() else {"tokens": []}
    except yaml.YAMLError as exc:
        raise TokenFileError(f"{source}: not YAML or JSON: {exc}") from None
    entries = doc.get("tokens") if isinstance(doc, Mapping) else doc
    if not isinstance(entries, list):
        raise TokenFileError(f"{source}: expected a list under 'tokens'")
    rules = [_rule(e, f"{source}: tokens[{i}]") for i, e in enumerate(entries)]
    seen: dict[str, int] = {}
    digests: set[bytes] = set()
    for i, rule in enumerate(rules):
        if rule.name in seen:
            raise TokenFileError(f"{source}: tokens[{i}]: name {rule.name!r} is used twice")
        if rule.digest in digests:
            raise TokenFileError(f"{source}: tokens[{i}] ({rule.name}): the same token twice")
        seen[rule.name] = i
        digests.add(rule.digest)
    return rules


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class TokenRegistry:
    """Answers "who is this token?" from the static token and the (re-read) tokens file."""

    def __init__(
        self,
        static_token: str = "",
        tokens_file: str | Path | None = None,
        *,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = hashlib.sha256(static_token.encode()).digest() if static_token else None
        self._path = Path(tokens_file) if tokens_file else None
        self._poll = poll_interval
        self._clock = clock
        self._checked = -math.inf
        self._stamp: tuple[int, int, int] | None = None
        self._principals: list[tuple[bytes, Principal]] = []
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        if self._path is not None:
            self._load(initial=True)

    @property
    def enabled(self) -> bool:
        """Whether calls need a token at all."""
        return self._static is not None or self._path is not None

    @property
    def names(self) -> list[str]:
        """Names of the tokens in force (for logs and tests)."""
        self.refresh()
        return [p.name for _, p in self._principals]

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the tokens file if it changed since it was last read (at most once per
        ``poll_interval`` unless ``force``)."""
        if self._path is None:
            return
        now = self._clock()
        if not force and now - self._checked < self._poll:
            return
        with self._lock:
            self._checked = now
            self._load(initial=False)

    def _load(self, *, initial: bool) -> None:
        assert self._path is not None
        try:
            stamp = _stamp(self._path)
            if stamp == self._stamp:
                return
            rules = parse_tokens(self._path.read_text(encoding="utf-8"), str(self._path))
        except (OSError, UnicodeDecodeError, TokenFileError) as exc:
            if initial:
                raise TokenFileError(str(exc)) from None
            log.error("tokens file not reloaded, the previous tokens stay in force: %s", exc)
            return
        self._stamp = stamp
        self._principals = [(r.digest, self._principal(r)) for r in rules]
        log.info("tokens loaded from %s: %s", self._path, ", ".join(r.name for r in rules))

    def _principal(self, rule: TokenRule) -> Principal:
        bucket = None
        if rule.rate is not None:
            burst = rule.burst if rule.burst is not None else max(rule.rate, 1.0)
            bucket = self._buckets.get(rule.name)
            if bucket is None or (bucket.rate, bucket.burst) != (rule.rate, burst):
                bucket = TokenBucket(rule.rate, burst, self._clock)
                self._buckets[rule.name] = bucket
        return Principal(rule.name, rule.namespaces, rule.roles, bucket)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of ``token``; ``ANONYMOUS`` when auth is off; None when refused."""
        if not self.enabled:
            return ANONYMOUS
        if not token:
            return None
        self.refresh()
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        # Compare against every entry, so timing does not tell which one (or none) matched.
        if self._static is not None and hmac.compare_digest(digest, self._static):
            found = STATIC_ADMIN
        for known, principal in self._principals:
            if hmac.compare_digest(digest, known) and found is None:
                found = principal
        return found

    def authorize(self, token: str | None, namespace: str, role: Role) -> Principal:
        """For HTTP endpoints (the dashboard's cancel and replay): the principal of ``token``
        if it may act as ``role`` in ``namespace``; raises ``taskflow.errors.Unauthenticated``
        (no or unknown token: HTTP 401) or ``PermissionDenied`` (HTTP 403)."""
        principal = self.authenticate(token)
        if principal is None:
            raise Unauthenticated("missing or invalid token")
        if not principal.has(role):
            raise PermissionDenied(f"token {principal.name!r} lacks the role {role.value!r}")
        if not principal.sees(namespace):
            raise PermissionDenied(
                f"token {principal.name!r} may not use namespace {namespace or 'default'!r}"
            )
        return principal


def sha256_hex(token: str) -> str:
    """What to write as ``sha256:`` in a tokens file for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def dump_rules(rules: Iterable[Mapping[str, Any]]) -> str:
    """A tokens file's text (JSON) for ``rules`` (used by tests and tooling)."""
    return json.dumps({"tokens": list(rules)}, indent=2)
