"""One pipelined Redis connection per event loop, for the gateway's hot path (ADR 0130).

redis-py's asyncio client spends 243–275 µs of CPU on a seven-command pipeline where a bare connection sending
the same bytes spends 51–58 (BENCHMARKS.md, "neighbours"): a pool checkout, a timeout context per reply and a
parser written for every reply type. The gateway's two round trips per request (the key's limits with its budget
reservation, the call's record) are a pipeline and a script call; here they are written to one connection per
event loop, their replies matched to their commands in order, one timeout per round trip.

Errors are redis-py's exception types (callers catch `redis.RedisError` as before): a reply error as
`ResponseError` (or `NoScriptError`, `AuthenticationError`, `ReadOnlyError`, `BusyLoadingError`), a lost or
refused connection as `ConnectionError`, a round trip that outlasts its timeout as `TimeoutError`, after which the
connection is dropped and the next round trip opens a new one. `supported(url)` says which REDIS_URLs this
speaks to (`unix://` and `redis://`, with a password and a db); for others `apps.core.redis` keeps redis-py.
"""

from __future__ import annotations

import asyncio
import collections
from urllib.parse import parse_qs, unquote, urlparse

import redis.exceptions

_ERRORS = {"NOSCRIPT": redis.exceptions.NoScriptError, "NOAUTH": redis.exceptions.AuthenticationError,
           "WRONGPASS": redis.exceptions.AuthenticationError, "READONLY": redis.exceptions.ReadOnlyError,
           "LOADING": redis.exceptions.BusyLoadingError}


def supported(url: str) -> bool:
    return urlparse(url).scheme in ("unix", "redis")


def encode(*commands: tuple) -> bytes:
    """The commands as one RESP write (one flat loop: this runs for every round trip of the hot path)."""
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for part in command:
            if not isinstance(part, bytes):
                part = (part if isinstance(part, str) else str(part)).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def error_of(message: str) -> redis.exceptions.RedisError:
    code = message.split(" ", 1)[0]
    return _ERRORS.get(code, redis.exceptions.ResponseError)(message)


class _Replies(asyncio.Protocol):
    """Parses RESP2 replies as they arrive and hands each round trip its replies, oldest round trip first: one
    future per round trip, resolved with the list of its replies once the last one is in."""

    def __init__(self):
        self.buffer = bytearray()
        self.waiting: collections.deque[tuple[int, list, asyncio.Future]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        while self.waiting:
            _count, _replies, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(redis.exceptions.ConnectionError("Redis closed the connection."))

    def expect(self, count: int, future: asyncio.Future) -> None:
        self.waiting.append((count, [], future))

    def data_received(self, data):
        self.buffer += data
        while self.waiting:
            parsed = self._parse(0)
            if parsed is None:
                return
            value, end = parsed
            del self.buffer[:end]
            count, replies, future = self.waiting[0]
            replies.append(value)
            if len(replies) == count:
                self.waiting.popleft()
                if not future.done():  # a round trip that timed out still takes its replies off the line
                    future.set_result(replies)

    def _parse(self, at: int):
        """(reply, end offset), or None while the reply is incomplete."""
        line_end = self.buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        kind, line, after = self.buffer[at], bytes(self.buffer[at + 1:line_end]), line_end + 2
        if kind == 0x2B:  # +
            return line, after
        if kind == 0x2D:  # -
            return error_of(line.decode("utf-8", "replace")), after
        if kind == 0x3A:  # :
            return int(line), after
        if kind == 0x24:  # $
            size = int(line)
            if size < 0:
                return None, after
            if len(self.buffer) < after + size + 2:
                return None
            return bytes(self.buffer[after:after + size]), after + size + 2
        if kind == 0x2A:  # *
            count = int(line)
            if count < 0:
                return None, after
            items = []
            for _ in range(count):
                parsed = self._parse(after)
                if parsed is None:
                    return None
                item, after = parsed
                items.append(item)
            return items, after
        raise redis.exceptions.InvalidResponse(f"Unexpected reply type {chr(kind)!r} from Redis.")


class _Expired(Exception):
    """A round trip's deadline passed (its future failed with this; the caller raises redis' TimeoutError)."""


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(_Expired())


class Sent:
    """Commands written by `Connection.send_now`, their replies still to come."""

    __slots__ = ("connection", "_replies", "_future", "_timer", "out")

    def __init__(self, connection: Connection, replies: _Replies, future: asyncio.Future,
                 timer: asyncio.TimerHandle, *, out: bool):
        self.connection, self._replies, self._future, self._timer, self.out = connection, replies, future, timer, out

    async def replies(self) -> list:
        return await self.connection._wait(self._replies, self._future, self._timer)


class Connection:
    """One server's pipelined connection on the running event loop (made on first use, made again once lost)."""

    def __init__(self, url: str, *, timeout: float, connect_timeout: float):
        parsed = urlparse(url)
        self.unix_path = parsed.path if parsed.scheme == "unix" else None
        self.host, self.port = parsed.hostname or "localhost", parsed.port or 6379
        query = parse_qs(parsed.query)
        db = query.get("db", [None])[0] if parsed.scheme == "unix" else (parsed.path.strip("/") or None)
        self.db = db or "0"
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.ready: asyncio.Future | None = None

    async def execute(self, commands: list[tuple]) -> list:
        """The replies to `commands`, sent in one write; reply errors come back as exception objects in place."""
        if not commands:
            return []
        replies = await self._protocol()
        return await self._round_trip(replies, commands)

    def send_now(self, commands: list[tuple]) -> Sent | None:
        """Write `commands` at once, without awaiting anything, on a connection that is up (else None: use
        execute). The bytes are in the server's socket (the kernel's) when `sent.out` is true: none waits in the
        transport's buffer. `await sent.replies()` answers as execute would."""
        ready = self.ready
        if ready is None or not ready.done() or ready.exception() is not None or ready.result().closed:
            return None
        replies = ready.result()
        future, timer = self._write(replies, commands)
        return Sent(self, replies, future, timer, out=replies.transport.get_write_buffer_size() == 0)

    def _write(self, replies: _Replies, commands: list[tuple]) -> tuple[asyncio.Future, asyncio.TimerHandle]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        replies.expect(len(commands), future)
        replies.transport.write(encode(*commands))
        # a timer, not asyncio.timeout(): the same deadline without a cancellation scope per round trip
        return future, loop.call_later(self.timeout, _expire, future)

    async def _round_trip(self, replies: _Replies, commands: list[tuple]) -> list:
        return await self._wait(replies, *self._write(replies, commands))

    async def _wait(self, replies: _Replies, future: asyncio.Future, timer: asyncio.TimerHandle) -> list:
        try:
            return await future
        except _Expired:
            replies.closed = True  # a server this slow gets a new connection on the next round trip
            replies.transport.abort()
            raise redis.exceptions.TimeoutError(f"Redis did not answer within {self.timeout} s.") from None
        finally:
            timer.cancel()

    def close(self) -> None:
        """Close the connection (replies still awaited fail with ConnectionError); a later round trip reconnects."""
        ready, self.ready = self.ready, None
        if ready is None:
            return
        if not ready.done():
            ready.cancel()
        elif ready.exception() is None and not ready.result().closed:
            ready.result().transport.close()

    async def _protocol(self) -> _Replies:
        ready = self.ready
        if ready is None or (ready.done() and (ready.exception() is not None or ready.result().closed)):
            ready = self.ready = asyncio.ensure_future(self._connect())
        return await asyncio.shield(ready)

    async def _connect(self) -> _Replies:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.unix_path:
                    _transport, replies = await loop.create_unix_connection(_Replies, self.unix_path)
                else:
                    _transport, replies = await loop.create_connection(_Replies, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise redis.exceptions.ConnectionError(f"Could not connect to Redis: {exc}") from exc
        setup = []
        if self.password:
            setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db != "0":
            setup.append(("SELECT", self.db))
        if setup:
            for answer in await self._round_trip(replies, setup):
                if isinstance(answer, Exception):
                    replies.transport.abort()
                    raise answer
        return replies
