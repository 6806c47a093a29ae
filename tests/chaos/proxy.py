"""A TCP proxy between some clients (the workers) and Redis that can hurt their traffic.

It understands just enough of the Redis protocol to split the client's byte stream into
commands, so a fault can hit chosen commands: the scripts that end an attempt (ack, retry,
recognised by an argument that is an outcome word such as ``succeeded`` or ``retry``). Faults:

* ``pause`` / ``resume``: hold every byte in both directions (Redis looks frozen to these
  clients only: their leases run out while everyone else carries on);
* ``reset_all``: reset every open connection (TCP RST);
* ``refuse(seconds)``: reset every open connection and every new one for a while;
* ``fail_commands(predicate, seconds)``: for a while, each matching command either never
  reaches Redis (``dropped``: the connection is reset before it is forwarded) or runs and its
  reply never comes back (``reply_lost``: the connection is reset once Redis started
  answering), alternately.

The proxy runs an event loop in a thread of the test process; the control methods are called
from the test's thread. ``reply_lost`` relies on a client sending one command and reading its
reply before the next on a connection (redis-py's pool does), so the first reply bytes after a
forwarded command belong to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from taskflow.embedded import free_port

T = TypeVar("T")
Command = list[bytes]
Predicate = Callable[[Command], bool]

_SCRIPT_COMMANDS = {b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"}
_OUTCOME_WORDS = (b"succeeded", b"failed", b"cancelled", b"retry")


def ends_attempt(command: Command) -> bool:
    """A script call that acks or retries a claimed task: one of its arguments is an outcome
    word, bare or as a JSON string."""
    if not command or command[0].upper() not in _SCRIPT_COMMANDS:
        return False
    for arg in command[3:]:
        for word in _OUTCOME_WORDS:
            if arg == word or b'"' + word + b'"' in arg:
                return True
    return False


def split_commands(buf: bytes) -> tuple[list[tuple[bytes, Command]], bytes]:
    """Complete commands at the start of ``buf`` (raw bytes and arguments), and the rest."""
    out: list[tuple[bytes, Command]] = []
    pos = 0
    while pos < len(buf):
        parsed = _one_command(buf, pos)
        if parsed is None:
            break
        end, args = parsed
        out.append((buf[pos:end], args))
        pos = end
    return out, buf[pos:]


def _one_command(buf: bytes, pos: int) -> tuple[int, Command] | None:
    line_end = buf.find(b"\r\n", pos)
    if line_end < 0:
        return None
    if buf[pos : pos + 1] != b"*":  # inline command
        return line_end + 2, buf[pos:line_end].split()
    count = int(buf[pos + 1 : line_end])
    args: Command = []
    cur = line_end + 2
    for _ in range(count):
        head_end = buf.find(b"\r\n", cur)
        if head_end < 0 or buf[cur : cur + 1] != b"$":
            return None
        size = int(buf[cur + 1 : head_end])
        start = head_end + 2
        if len(buf) < start + size + 2:
            return None
        args.append(buf[start : start + size])
        cur = start + size + 2
    return cur, args


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST, as a crashed peer or a dropped route would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    lose_next_reply: bool = False
    closed: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        if not self.closed:
            self.closed = True
            _reset(self.client)
            _reset(self.server)
        self.ended.set()


@dataclass
class _CommandFault:
    predicate: Predicate
    until: float
    next_mode: str = "dropped"


@dataclass
class FaultProxy:
    target_port: int
    target_host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="redis-proxy")
        self._links: set[_Link] = set()
        self._flowing: asyncio.Event | None = None
        self._refuse_until = 0.0
        self._fault: _CommandFault | None = None
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- control (test thread) ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def pause(self) -> None:
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        self._call(self._set_flowing(True))

    def reset_all(self) -> int:
        return self._call(self._reset_all())

    def refuse(self, seconds: float) -> None:
        self._call(self._refuse(seconds))

    def fail_commands(self, predicate: Predicate, seconds: float) -> None:
        self._call(self._arm(predicate, seconds))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- the event loop's side ----------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._flowing is not None:
            self._flowing.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self._reset_all()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self.stats["pauses"] += 1
            self._flowing.clear()

    async def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.reset()
        self._links.clear()
        self.stats["connections_reset"] += len(links)
        return len(links)

    async def _refuse(self, seconds: float) -> None:
        self._refuse_until = self._loop.time() + seconds
        self.stats["refusal_windows"] += 1
        await self._reset_all()

    async def _arm(self, predicate: Predicate, seconds: float) -> None:
        self._fault = _CommandFault(predicate, self._loop.time() + seconds)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._loop.time() < self._refuse_until:
            self.stats["connections_refused"] += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self.stats["upstream_unreachable"] += 1
            _reset(writer)
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        self.stats["connections"] += 1
        pumps = [
            asyncio.create_task(self._client_to_server(link, reader)),
            asyncio.create_task(self._server_to_client(link, up_reader)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._links.discard(link)
            if not link.closed:
                link.closed = True
                writer.close()
                up_writer.close()

    async def _client_to_server(self, link: _Link, reader: asyncio.StreamReader) -> None:
        assert self._flowing is not None
        pending = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            await self._flowing.wait()
            commands, pending = split_commands(pending + data)
            out = bytearray()
            for raw, args in commands:
                mode = self._fault_mode(args)
                if mode is None:
                    out += raw
                    continue
                self.stats[f"{mode}"] += 1
                if mode == "dropped":
                    link.server.write(bytes(out))
                    link.reset()
                    return
                link.lose_next_reply = True
                out += raw
                break  # nothing after it: the connection ends with its reply
            if out:
                link.server.write(bytes(out))
                await link.server.drain()
            if link.lose_next_reply:
                await link.ended.wait()  # forward nothing more; the reply ends the link
                return

    async def _server_to_client(self, link: _Link, reader: asyncio.StreamReader) -> None:
        assert self._flowing is not None
        while True:
            data = await reader.read(65536)
            if not data:
                return
            await self._flowing.wait()
            if link.lose_next_reply:
                link.reset()
                return
            link.client.write(data)
            await link.client.drain()

    def _fault_mode(self, args: Command) -> str | None:
        fault = self._fault
        if fault is None or self._loop.time() >= fault.until or not fault.predicate(args):
            return None
        mode = fault.next_mode
        fault.next_mode = "reply_lost" if mode == "dropped" else "dropped"
        return mode
