"""The harness itself: the fault proxy does to real Redis traffic what it claims, and the checks
flag what they must (a fault suite whose faults never happen, or whose checks cannot fail,
proves nothing)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from taskflow.embedded import EmbeddedRedis
from tests.chaos.checks import AttemptRow, Findings, Start, TaskRow, check_task
from tests.chaos.load import TaskPlan
from tests.chaos.proxy import FaultProxy, ends_attempt, split_commands

pytestmark = pytest.mark.chaos

ACK_LIKE = "return redis.call('INCR', KEYS[1])"


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[FaultProxy, redis.Redis, redis.Redis]]:
    """A proxy in front of a fresh Redis, a client through it (no retries of its own) and one
    straight to Redis."""
    with EmbeddedRedis(tmp_path / "redis", persistent=False) as server:
        proxy = FaultProxy(server.port)
        proxy.start()
        through = redis.Redis(port=proxy.port, retry=Retry(NoBackoff(), 0), socket_timeout=5)
        direct = redis.Redis(port=server.port)
        try:
            yield proxy, through, direct
        finally:
            through.close()
            direct.close()
            proxy.close()


def test_split_commands_keeps_partial_commands() -> None:
    raw = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv"
    commands, rest = split_commands(raw)
    assert [args for _, args in commands] == [[b"GET", b"k"]]
    assert rest == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv"
    more, rest = split_commands(rest + b"1\r\n")
    assert [args for _, args in more] == [[b"SET", b"k", b"v1"]] and rest == b""


def test_ends_attempt_matches_outcome_words_in_script_calls_only() -> None:
    assert ends_attempt([b"EVALSHA", b"abc", b"2", b"k1", b"k2", b"id", b"tok", b"succeeded"])
    assert ends_attempt([b"evalsha", b"abc", b"0", b"x", b"1", b"retry"])
    assert not ends_attempt([b"EVALSHA", b"abc", b"1", b"k", b"claim", b"10", b"worker-1"])
    assert not ends_attempt([b"SET", b"k", b"succeeded"])


def test_dropped_commands_never_reach_redis(
    proxied: tuple[FaultProxy, redis.Redis, redis.Redis],
) -> None:
    proxy, through, direct = proxied
    script = through.register_script(ACK_LIKE)
    assert script(keys=["n"], args=["succeeded"]) == 1
    proxy.fail_commands(ends_attempt, seconds=5)
    with pytest.raises(redis.ConnectionError):
        script(keys=["n"], args=["succeeded"])  # first hit: dropped
    assert direct.get("n") == b"1"
    with pytest.raises(redis.ConnectionError):
        script(keys=["n"], args=["succeeded"])  # second hit: runs, reply lost
    assert direct.get("n") == b"2"
    assert proxy.stats["dropped"] == 1 and proxy.stats["reply_lost"] == 1
    assert through.get("n") == b"2"  # other commands pass


def test_pause_holds_traffic_until_resume(
    proxied: tuple[FaultProxy, redis.Redis, redis.Redis],
) -> None:
    proxy, through, direct = proxied
    through.ping()
    proxy.pause()
    done = threading.Event()

    def write() -> None:
        through.set("k", "v")
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.5), "the command went through a paused proxy"
    assert direct.get("k") is None
    proxy.resume()
    assert done.wait(5), "the command did not go through after resume"
    writer.join()
    assert direct.get("k") == b"v"


def test_refuse_resets_connections_for_a_while(
    proxied: tuple[FaultProxy, redis.Redis, redis.Redis],
) -> None:
    proxy, through, _ = proxied
    through.ping()
    proxy.refuse(1.0)
    with pytest.raises(redis.ConnectionError):
        through.ping()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert through.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the proxy kept refusing after the window"
            time.sleep(0.1)
    assert proxy.stats["connections_refused"] >= 1


def _findings(
    history: list[tuple[int, str]], starts: list[int], state: str = "succeeded"
) -> Findings:
    plan = TaskPlan("k-1", "quick", "work", {}, 3, "succeeded", 1)
    row = TaskRow(
        "t1", "k-1", state, max(n for n, _ in history), 0, 3, None,
        tuple(AttemptRow(n, outcome, "w", None) for n, outcome in history),
    )  # fmt: skip
    f = Findings("unit", accepted=1, rows={"t1": row})
    f.starts_by_task = {"t1": [Start("t1", n, 1, 0.0, "work") for n in starts]}
    check_task(f, plan, row, f.starts_by_task["t1"])
    return f


def test_a_clean_task_breaks_nothing() -> None:
    assert _findings([(1, "succeeded")], [1]).violations() == []


def test_two_successes_a_rerun_and_a_running_row_are_flagged() -> None:
    f = _findings([(1, "running"), (2, "succeeded"), (3, "succeeded")], [1, 2, 3])
    assert f.double_recorded == ["t1"] and f.reruns == ["t1"] and f.running_attempts
    assert f.violations(reruns_allowed=True)  # still broken: recorded twice


def test_a_reused_attempt_number_and_an_unrecorded_start_are_flagged() -> None:
    f = _findings([(1, "released")], [1, 1])
    assert f.reused_attempts and f.history_mismatch  # succeeded without a succeeded attempt
    g = _findings([(1, "failed"), (3, "succeeded")], [1, 2, 3])
    assert g.unrecorded_starts
