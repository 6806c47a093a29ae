"""Embedded Redis and PostgreSQL: real servers started, restarted, killed and refused."""

from __future__ import annotations

import errno
import os
import pwd
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from taskflow import embedded, tether
from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError, free_port
from tests.processes import wait_until_gone


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


def test_an_initdb_cut_short_leaves_nothing_to_trip_over(pg_data_dir: Path) -> None:
    staging = pg_data_dir / "pgdata.initdb"
    staging.mkdir()
    (staging / "PG_VERSION").write_text("18\n")  # what a killed initdb leaves behind
    with (
        EmbeddedPostgres(pg_data_dir, fsync=False) as server,
        psycopg.connect(server.url) as conn,
    ):
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not staging.exists()
    assert (pg_data_dir / "pgdata" / "PG_VERSION").exists()


def test_files_that_are_no_cluster_are_refused(pg_data_dir: Path) -> None:
    (pg_data_dir / "pgdata").mkdir()
    (pg_data_dir / "pgdata" / "notes.txt").write_text("mine")
    with pytest.raises(EmbeddedServerError, match="holds files but no PostgreSQL cluster"):
        EmbeddedPostgres(pg_data_dir, fsync=False).start()
    assert (pg_data_dir / "pgdata" / "notes.txt").read_text() == "mine"


def test_long_data_dir_puts_the_socket_in_a_short_directory(pg_data_dir: Path) -> None:
    deep = pg_data_dir / ("d" * 60) / ("e" * 60)
    server = EmbeddedPostgres(deep, fsync=False)
    assert len(str(server.socket_dir / ".s.PGSQL.65535")) <= 107
    with server:
        assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()


# -- Tethered to their parent --------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis

root = Path(sys.argv[1])
redis = EmbeddedRedis(root / "redis", persistent=True, die_with_parent=True)
redis.start()
postgres = EmbeddedPostgres(root / "pg", fsync=False, die_with_parent=True)
postgres.start()
print(redis.pid, redis.port, postgres.pid, postgres.port, flush=True)
time.sleep(3600)
"""


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.mark.skipif(not tether.supported(), reason="needs PR_SET_PDEATHSIG (Linux)")
def test_tethered_servers_stop_cleanly_when_their_parent_is_killed(pg_data_dir: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(pg_data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None
        redis_pid, redis_port, pg_pid, pg_port = map(int, holder.stdout.readline().split())
        assert _pid_alive(redis_pid) and _pid_alive(pg_pid)
        if os.geteuid() == 0:  # the tether took on the unprivileged identity first
            assert _uid_of(pg_pid) == pwd.getpwnam(embedded.PG_SYSTEM_USER).pw_uid
        holder.kill()
        holder.wait(timeout=30)
        wait_until_gone([redis_pid, pg_pid], 60.0)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert _port_is_free(redis_port) and _port_is_free(pg_port)
    # Redis got SIGTERM and PostgreSQL SIGINT: both shut down, neither was killed.
    assert "ready to exit, bye bye" in (pg_data_dir / "redis" / "redis.log").read_text()
    assert "database system is shut down" in (pg_data_dir / "pg" / "postgres.log").read_text()
    assert not (pg_data_dir / "pg" / "pgdata" / "postmaster.pid").exists()


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


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_free_ports_come_from_below_the_ephemeral_range() -> None:
    """Outgoing connections take their source ports from the ephemeral range: a port picked
    there can be taken by any client on the machine before the caller binds it."""
    low = embedded._ephemeral_low()
    ports = {free_port() for _ in range(20)}
    assert all(embedded.PORT_FLOOR <= p < low for p in ports), (low, sorted(ports))
    assert all(_bindable(p) for p in ports)


def test_free_port_takes_the_kernels_choice_without_room_below_the_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_low = embedded._ephemeral_low()
    monkeypatch.setattr(embedded, "_ephemeral_low", lambda: embedded.PORT_FLOOR + 10)
    port = free_port()
    assert port >= real_low  # bind(0) hands out ports of the ephemeral range
    assert _bindable(port)
