"""The tokens file, the registry and the token bucket, without a server."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from taskflow.api.tokens import (
    Role,
    TokenBucket,
    TokenFileError,
    TokenRegistry,
    parse_tokens,
    sha256_hex,
)
from taskflow.errors import PermissionDenied, Unauthenticated

TOKEN = "a-long-enough-token-1"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tokens: [{name: a, token: short, namespaces: [x], roles: [read]}]", "at least 16"),
        (f"tokens: [{{name: a, token: {TOKEN}, sha256: ab, namespaces: [x], roles: [read]}}]",
         "exactly one of"),
        (f"tokens: [{{name: a, token: {TOKEN}, namespaces: [], roles: [read]}}]", "namespaces"),
        (f"tokens: [{{name: a, token: {TOKEN}, namespaces: '*', roles: [root]}}]",
         "roles[0]: unknown role 'root'"),
        (f"tokens: [{{name: a, token: {TOKEN}, namespaces: '*', roles: [read], rate: -1}}]",
         "rate: must be a positive number"),
        (f"tokens: [{{name: a, token: {TOKEN}, namespaces: '*', roles: [read], colour: x}}]",
         "unknown field(s) colour"),
        (f"tokens: [{{name: a, token: {TOKEN}, namespaces: '*', roles: [read]}},"
         f" {{name: a, token: {TOKEN}x, namespaces: '*', roles: [read]}}]", "used twice"),
        ("tokens: {a: b}", "expected a list"),
        ("tokens: [", "not YAML or JSON"),
    ],
)  # fmt: skip
def test_a_bad_tokens_file_is_refused_naming_the_entry(text: str, problem: str) -> None:
    with pytest.raises(TokenFileError, match=re.escape(problem)):
        parse_tokens(text)


def test_roles_and_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        f"  - {{name: a, sha256: {sha256_hex(TOKEN)}, namespaces: [team-a], roles: [admin]}}\n"
    )
    registry = TokenRegistry("static-admin-token", path)
    principal = registry.authenticate(TOKEN)
    assert principal is not None and principal.name == "a"
    assert principal.has(Role.SUBMIT) and principal.has(Role.READ)
    assert not principal.has(Role.METRICS)  # metrics span every namespace
    assert principal.sees("team-a") and not principal.sees("team-b")
    static = registry.authenticate("static-admin-token")
    assert static is not None and static.has(Role.METRICS) and static.sees("anything")
    assert registry.authenticate("nope-nope-nope-nope") is None
    assert registry.authenticate(None) is None
    assert registry.authorize(TOKEN, "team-a", Role.ADMIN).name == "a"
    with pytest.raises(PermissionDenied, match="namespace 'team-b'"):
        registry.authorize(TOKEN, "team-b", Role.READ)
    with pytest.raises(PermissionDenied, match="'metrics'"):
        registry.authorize(TOKEN, "team-a", Role.METRICS)
    with pytest.raises(Unauthenticated):
        registry.authorize("wrong-wrong-wrong-wrong", "team-a", Role.READ)


def test_without_any_token_every_caller_is_an_admin() -> None:
    registry = TokenRegistry()
    assert not registry.enabled
    principal = registry.authenticate(None)
    assert principal is not None and principal.has(Role.ADMIN) and not principal.scoped


def test_the_bucket_refills_at_its_rate_and_caps_at_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert bucket.take(5) == 0
    assert bucket.take(1) == pytest.approx(0.1)
    clock.now = 0.3
    assert bucket.take(3) == 0
    assert math.isinf(bucket.take(6))
    clock.now = 100
    assert bucket.take(5) == 0 and bucket.take(1) > 0


def test_a_reload_keeps_the_bucket_of_an_unchanged_token(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "tokens.yaml"
    entry = f"{{name: a, token: {TOKEN}, namespaces: '*', roles: [submit], rate: 1, burst: 2}}"
    path.write_text(f"tokens: [{entry}]\n")
    registry = TokenRegistry("", path, poll_interval=0, clock=clock)
    first = registry.authenticate(TOKEN)
    assert first is not None and first.bucket is not None
    assert first.bucket.take(2) == 0
    path.write_text(
        f"tokens: [{entry}, {{name: b, token: {TOKEN}b, namespaces: '*', roles: [read]}}]\n"
    )
    again = registry.authenticate(TOKEN)
    assert again is not None and again.bucket is first.bucket  # rotation does not reset limits
    assert registry.names == ["a", "b"]
