"""The gateway with its async Redis pipelines and scripts on a bare RESP connection instead of redis-py's asyncio
client, for measuring what that client costs per request (ADR 0129, "what is left"; `bench/redis_round_trip.py`
measures one round trip alone).

    .venv/bin/python -m bench.gateway_fast --rates 200,500 --workers 2 --no-floor --contender \
        '{"name": "lean_2w", "workers": 2, "app": "bench.gateway_lean_redis:application"}'

`apps.core.redis.async_client()` answers a client whose pipelines and EVALSHA/EVAL go over one pipelined
connection per event loop (replies matched to their commands in order), one timeout per round trip; everything
else goes to redis-py's client as before. A bench contender, not the served gateway: commands with keyword
arguments in a pipeline, reconnects and replies other than RESP2's are not handled.
"""

from __future__ import annotations

import asyncio
import collections
from urllib.parse import parse_qs, urlparse

import redis.exceptions
from django.conf import settings

from apps.core import redis as portal_redis
from portal.gateway_asgi import application  # noqa: F401  (served: the gateway, Django set up)

_redis_py_client = portal_redis.async_client


def _command(parts) -> bytes:
    encoded = [p if isinstance(p, bytes) else str(p).encode() for p in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)


def _error(message: str) -> Exception:
    if message.startswith("NOSCRIPT"):
        return redis.exceptions.NoScriptError(message)
    return redis.exceptions.ResponseError(message)


class _Protocol(asyncio.Protocol):
    def __init__(self):
        self.buffer = bytearray()
        self.waiting: collections.deque = collections.deque()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(redis.exceptions.ConnectionError("connection lost"))

    def data_received(self, data):
        self.buffer += data
        while self.waiting:
            parsed = self._parse(0)
            if parsed is None:
                return
            value, end = parsed
            del self.buffer[:end]
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(value)

    def _parse(self, at: int):
        line_end = self.buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        kind, line = self.buffer[at:at + 1], bytes(self.buffer[at + 1:line_end])
        after = line_end + 2
        if kind == b"+":
            return line, after
        if kind == b"-":
            return _error(line.decode()), after
        if kind == b":":
            return int(line), after
        if kind == b"$":
            size = int(line)
            if size < 0:
                return None, after
            if len(self.buffer) < after + size + 2:
                return None
            return bytes(self.buffer[after:after + size]), after + size + 2
        if kind == b"*":
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
        raise redis.exceptions.ResponseError(f"unexpected reply {kind!r}")


class _Lean:
    def __init__(self):
        self.ready: asyncio.Future | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        url = urlparse(settings.REDIS_URL)
        if url.scheme == "unix":
            _transport, protocol = await loop.create_unix_connection(_Protocol, url.path)
            db = parse_qs(url.query).get("db", ["0"])[0]
        else:
            _transport, protocol = await loop.create_connection(_Protocol, url.hostname, url.port or 6379)
            db = url.path.strip("/") or "0"
        await self._round_trip(protocol, [("SELECT", db)])
        return protocol

    async def _round_trip(self, protocol: _Protocol, commands: list) -> list:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        protocol.waiting.extend(futures)
        protocol.transport.write(b"".join(_command(c) for c in commands))
        async with asyncio.timeout(portal_redis.SOCKET_TIMEOUT_SECONDS):
            return [await future for future in futures]

    async def execute(self, commands: list) -> list:
        if self.ready is None:  # one connection per event loop, made once (no reconnect: a bench contender)
            self.ready = asyncio.ensure_future(self._connect())
        protocol = await asyncio.shield(self.ready)
        return await self._round_trip(protocol, commands)


class _Pipeline:
    def __init__(self, lean: _Lean):
        self.lean, self.commands = lean, []

    def __getattr__(self, name):
        def queue(*args):
            self.commands.append((name.upper(), *args))
            return self
        return queue

    async def execute(self, raise_on_error: bool = True) -> list:
        commands, self.commands = self.commands, []
        replies = await self.lean.execute(commands)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies


class _Client:
    def __init__(self, lean: _Lean, fallback):
        self.lean, self.fallback = lean, fallback

    def pipeline(self, transaction: bool = False):
        return _Pipeline(self.lean)

    async def evalsha(self, *args):
        return await self._one(("EVALSHA", *args))

    async def eval(self, *args):
        return await self._one(("EVAL", *args))

    async def _one(self, command):
        reply = (await self.lean.execute([command]))[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def __getattr__(self, name):
        return getattr(self.fallback, name)


_clients: dict = {}


def _lean_client():
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        found = _clients[loop] = _Client(_Lean(), _redis_py_client())
    return found


portal_redis.async_client = _lean_client
