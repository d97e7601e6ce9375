"""The one way to reach Redis directly (outside Django's cache): pooled clients per process, and key names.

`client()` is the synchronous client (one connection pool per process), `async_client()` the asyncio one (one
per event loop). The gateway's hot path (`hot_pipeline()`, and `Script.arun` for every async script) goes over one
pipelined connection per event loop instead (`resp.py`, ADR 0130), where the URL allows. Both read settings.REDIS_URL, so tests and replicas agree on the
server. A loop's clients are forgotten once the loop is closed, and `close_loop_clients()` closes them before a
loop ends. `key(...)` prefixes names with the cache's KEY_PREFIX, which keeps parallel test runs and several
portals on one Redis apart.

Callers choose their own timeouts by operation, not by client: a failing Redis raises redis.RedisError, and
each caller decides whether that fails open (throttling) or closed (budgets). redis-py sets the read timeout
per connection, not per command, so a caller that must give up sooner than SOCKET_TIMEOUT_SECONDS (sign-in
throttling, which fails open after 2 s) asks for `client(socket_timeout=2)`: a second pool, also one per process.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import threading
import weakref

import redis
import redis.asyncio
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from apps.core import resp

SOCKET_TIMEOUT_SECONDS = 10
CONNECT_TIMEOUT_SECONDS = 2
ASYNC_MAX_CONNECTIONS = 100  # per event loop

_lock = threading.Lock()
_sync: dict[tuple[str, float], redis.Redis] = {}
# Per event loop. A loop's clients hold it (their transports do), so these weak keys never die on their own: a loop
# is forgotten once it is closed (`_of_loop`), and the collector then closes its connections.
_async: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_hot: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _of_loop(registry: weakref.WeakKeyDictionary) -> dict:
    """The running loop's entry in `registry`. A loop seen for the first time also clears out the closed ones: a
    Celery task that runs `asyncio.run` (the red-team runner) would otherwise keep each run's connections open
    until the worker ends."""
    loop = asyncio.get_running_loop()
    found = registry.get(loop)
    if found is None:
        for old in [old for old in list(registry.keys()) if old.is_closed()]:
            registry.pop(old, None)
        found = registry[loop] = {}
    return found


def client(*, socket_timeout: float = SOCKET_TIMEOUT_SECONDS) -> redis.Redis:
    """This process's synchronous client for settings.REDIS_URL (thread-safe; created on first use)."""
    wanted = (settings.REDIS_URL, socket_timeout)
    found = _sync.get(wanted)
    if found is None:
        with _lock:
            found = _sync.get(wanted)
            if found is None:
                found = redis.Redis.from_url(wanted[0], socket_timeout=socket_timeout,
                                             socket_connect_timeout=min(CONNECT_TIMEOUT_SECONDS, socket_timeout))
                _sync[wanted] = found
    return found


def async_client() -> redis.asyncio.Redis:
    """The running event loop's asyncio client for settings.REDIS_URL (a pool is bound to its loop)."""
    per_loop = _of_loop(_async)
    url = settings.REDIS_URL
    found = per_loop.get(url)
    if found is None:
        # A blocking pool: past ASYNC_MAX_CONNECTIONS commands wait for a connection (up to the socket
        # timeout) instead of failing at once with "Too many connections" under a burst (ADR 0077).
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=ASYNC_MAX_CONNECTIONS, timeout=SOCKET_TIMEOUT_SECONDS,
            socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
        found = redis.asyncio.Redis(connection_pool=pool)
        per_loop[url] = found
    return found


async def close_loop_clients() -> None:
    """Close the running loop's Redis connections and forget them: for a loop about to end (`asyncio.run` in a
    worker task). Any later use on this loop connects again."""
    loop = asyncio.get_running_loop()
    for connection in (_hot.pop(loop, None) or {}).values():
        if connection is not None:
            connection.close()
    for found in (_async.pop(loop, None) or {}).values():
        await found.aclose(close_connection_pool=True)


def _hot_connection() -> resp.Connection | None:
    """The running event loop's pipelined connection to settings.REDIS_URL (ADR 0130), or None for a URL it does
    not speak to (TLS, sentinel…), where the hot path uses `async_client()`."""
    url = settings.REDIS_URL
    per_loop = _of_loop(_hot)
    if url not in per_loop:  # the URL is parsed once per loop, not per round trip
        per_loop[url] = resp.Connection(url, timeout=SOCKET_TIMEOUT_SECONDS, connect_timeout=CONNECT_TIMEOUT_SECONDS
                                        ) if resp.supported(url) else None
    return per_loop[url]


class HotPipeline:
    """The gateway's per-request pipeline (limits, the key stamp, a queued script) on the loop's pipelined
    connection: the commands go in one write, `execute` answers their replies in order, as redis-py's pipeline
    does (EXPIRE as a bool; `raise_on_error=False` leaves a failed command's exception in its place)."""

    def __init__(self, connection: resp.Connection):
        self.connection, self.commands = connection, []

    def get(self, name: str):
        self.commands.append(("GET", name))
        return self

    def incr(self, name: str, amount: int = 1):
        self.commands.append(("INCRBY", name, amount))
        return self

    def decr(self, name: str, amount: int = 1):
        self.commands.append(("DECRBY", name, amount))
        return self

    def expire(self, name: str, seconds: int):
        self.commands.append(("EXPIRE", name, seconds))
        return self

    def evalsha(self, sha: str, numkeys: int, *keys_and_args):
        self.commands.append(("EVALSHA", sha, numkeys, *keys_and_args))
        return self

    async def execute(self, raise_on_error: bool = True) -> list:
        commands, self.commands = self.commands, []
        replies = await self.connection.execute(commands)
        replies = [bool(r) if c[0] == "EXPIRE" and isinstance(r, int) else r for c, r in zip(commands, replies,
                                                                                              strict=True)]
        if raise_on_error:
            failed = next((r for r in replies if isinstance(r, Exception)), None)
            if failed is not None:
                raise failed
        return replies


def hot_pipeline():
    """A pipeline for the gateway's hot path: `HotPipeline` where the URL allows, else redis-py's."""
    connection = _hot_connection()
    if connection is None:
        return async_client().pipeline(transaction=False)
    return HotPipeline(connection)


def key(*parts: object) -> str:
    """A Redis key under this portal's prefix: key("gateway", "keys") -> "<KEY_PREFIX>:gateway:keys"."""
    return ":".join([_key_prefix(), *(part if isinstance(part, str) else str(part) for part in parts)])


@functools.cache  # why: a gateway request names a dozen keys, and a settings lookup costs more than the join
def _key_prefix() -> str:
    return settings.CACHES["default"].get("KEY_PREFIX", "") or "portal"


@receiver(setting_changed)
def _forget_key_prefix(*, setting: str, **kwargs) -> None:
    if setting == "CACHES":
        _key_prefix.cache_clear()


class Script:
    """A Lua script run by its SHA (EVALSHA: the body is sent only the first time, and again after a Redis
    restart or SCRIPT FLUSH), with either client."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

    async def arun(self, keys: list[str], args: list):
        connection = _hot_connection()  # the gateway's hot path (ADR 0130); redis-py where the URL needs it
        if connection is None:
            redis_client = async_client()
            try:
                return await redis_client.evalsha(self.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                return await redis_client.eval(self.source, len(keys), *keys, *args)
        (answer,) = await connection.execute([("EVALSHA", self.sha, len(keys), *keys, *args)])
        return await self._answered(connection, answer, keys, args)

    def send_now(self, keys: list[str], args: list) -> resp.Sent | None:
        """The script's EVALSHA written at once, nothing awaited, on the loop's pipelined connection (None where
        there is none, or it is not up yet: use arun). Its answer: `await script.answer(sent, keys, args)`."""
        connection = _hot_connection()
        return None if connection is None else connection.send_now([("EVALSHA", self.sha, len(keys), *keys, *args)])

    async def answer(self, sent: resp.Sent, keys: list[str], args: list):
        """What `arun` answers, for a call written by send_now (a script Redis lost is sent again, whole)."""
        (answer,) = await sent.replies()
        return await self._answered(sent.connection, answer, keys, args)

    async def _answered(self, connection: resp.Connection, answer, keys: list[str], args: list):
        if isinstance(answer, redis.exceptions.NoScriptError):
            (answer,) = await connection.execute([("EVAL", self.source, len(keys), *keys, *args)])
        if isinstance(answer, Exception):
            raise answer
        return answer

    def queue(self, pipe, keys: list[str], args: list) -> None:
        """Queue the script on a pipeline (either client's) by its SHA; a script Redis does not have answers
        NoScriptError in the pipeline's results, which the caller reads as "not run"."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    def run(self, keys: list[str], args: list):
        redis_client = client()
        try:
            return redis_client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return redis_client.eval(self.source, len(keys), *keys, *args)
