"""Embedded Redis and PostgreSQL: real servers started, restarted, killed and refused."""

from __future__ import annotations

import errno
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from taskflow import embedded
from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError, free_port


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- Redis --------------------------------------------------------------------------------------


def test_redis_starts_answers_and_stop_frees_the_port(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, persistent=False)
    server.start()
    port, pid = server.port, server.pid
    assert pid is not None
    assert server.url == f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()

    server.stop()

    assert server.pid is None
    assert not _pid_alive(pid)
    assert _port_is_free(port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_persistent_redis_keeps_keys_across_restart(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedRedis(tmp_path, port=port) as server:
        client = redis.Redis.from_url(server.url)
        client.zadd("q:{default}:ready", {"task-1": 1.0})
        client.close()

    assert (tmp_path / "appendonly.aof").exists()
    with EmbeddedRedis(tmp_path, port=port) as server:
        client = redis.Redis.from_url(server.url)
        assert client.zrange("q:{default}:ready", 0, -1) == [b"task-1"]
        client.close()


def test_non_persistent_redis_forgets_keys(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, persistent=False) as server:
        redis.Redis.from_url(server.url).set("k", "v")
    with EmbeddedRedis(tmp_path, persistent=False) as server:
        assert redis.Redis.from_url(server.url).get("k") is None


def test_redis_on_a_taken_port_fails_naming_the_port(tmp_path: Path, listening_port: int) -> None:
    with pytest.raises(EmbeddedServerError, match=str(listening_port)):
        EmbeddedRedis(tmp_path, port=listening_port).start()


def test_redis_exit_on_a_taken_port_is_reported_with_its_log(
    tmp_path: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the up-front port check (a race), the server's own bind failure is reported."""
    monkeypatch.setattr(embedded, "_ensure_port_free", lambda *_: None)
    server = EmbeddedRedis(tmp_path, port=listening_port)
    with pytest.raises(EmbeddedServerError, match=str(listening_port)) as caught:
        server.start()
    assert "exited" in str(caught.value)
    assert server.pid is None


# -- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_keeps_a_table_across_restart(pg_data_dir: Path) -> None:
    port = free_port()
    with EmbeddedPostgres(pg_data_dir, port=port, fsync=False) as server:
        assert server.url == f"postgresql://postgres@127.0.0.1:{port}/taskflow"
        with psycopg.connect(server.url) as conn:
            conn.execute("CREATE TABLE kept (id int PRIMARY KEY)")
            conn.execute("INSERT INTO kept VALUES (7)")
        pid = server.pid
    assert pid is not None and not _pid_alive(pid)
    assert _port_is_free(port)

    with (
        EmbeddedPostgres(pg_data_dir, port=port, fsync=False) as server,
        psycopg.connect(server.url) as conn,
    ):
        assert conn.execute("SELECT id FROM kept").fetchall() == [(7,)]


def test_stale_postmaster_pid_of_a_killed_postgres_is_cleared(pg_data_dir: Path) -> None:
    server = EmbeddedPostgres(pg_data_dir, fsync=False)
    server.start()
    with psycopg.connect(server.url) as conn:
        conn.execute("CREATE TABLE survivor (id int)")
        conn.commit()
        conn.execute("CHECKPOINT")  # synchronous_commit is off: make the table outlive SIGKILL
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    server.stop()  # reaps the killed process
    assert (server.pgdata / "postmaster.pid").exists()

    with (
        EmbeddedPostgres(pg_data_dir, fsync=False) as restarted,
        psycopg.connect(restarted.url) as conn,
    ):
        assert conn.execute("SELECT count(*) FROM survivor").fetchone() == (0,)


def test_second_postgres_on_a_running_data_dir_is_refused(pg_data_dir: Path) -> None:
    with EmbeddedPostgres(pg_data_dir, fsync=False) as server:
        with pytest.raises(EmbeddedServerError, match="still running"):
            EmbeddedPostgres(pg_data_dir, fsync=False).start()
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_on_a_taken_port_fails_naming_the_port(
    pg_data_dir: Path, listening_port: int
) -> None:
    with pytest.raises(EmbeddedServerError, match=str(listening_port)):
        EmbeddedPostgres(pg_data_dir, port=listening_port, fsync=False).start()


def test_postgres_exit_on_a_taken_port_is_reported_with_its_log(
    pg_data_dir: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the up-front port check (a race), the server's own bind failure is reported."""
    monkeypatch.setattr(embedded, "_ensure_port_free", lambda *_: None)
    server = EmbeddedPostgres(pg_data_dir, port=listening_port, fsync=False)
    with pytest.raises(EmbeddedServerError, match=str(listening_port)) as caught:
        server.start()
    assert "Address already in use" in str(caught.value)
    assert server.pid is None


def test_long_data_dir_puts_the_socket_in_a_short_directory(pg_data_dir: Path) -> None:
    deep = pg_data_dir / ("d" * 60) / ("e" * 60)
    server = EmbeddedPostgres(deep, fsync=False)
    assert len(str(server.socket_dir / ".s.PGSQL.65535")) <= 107
    with server:
        assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()


# -- Session fixtures ---------------------------------------------------------------------------


@pytest.mark.parametrize("round_", [1, 2])
def test_redis_url_starts_empty(redis_url: str, round_: int) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("left-behind", round_)
    client.close()


@pytest.mark.parametrize("round_", [1, 2])
def test_database_url_is_a_fresh_empty_database(database_url: str, round_: int) -> None:
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        name = conn.execute("SELECT current_database()").fetchone()
        assert name is not None and str(name[0]).startswith("t_test_database_url_is_a_fresh")
        conn.execute("CREATE TABLE left_behind (id int)")
