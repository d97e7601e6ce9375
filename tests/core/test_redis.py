"""apps.core.redis: one pooled client per process (sync) and per event loop (asyncio), keys under the prefix."""

import asyncio
import gc
import time

from django.conf import settings

from apps.core import redis as core_redis


def test_a_caller_that_must_give_up_sooner_gets_its_own_shared_client():
    short = core_redis.client(socket_timeout=2)
    assert short is core_redis.client(socket_timeout=2) and short is not core_redis.client()
    assert short.connection_pool.connection_kwargs["socket_timeout"] == 2
    assert core_redis.client().connection_pool.connection_kwargs["socket_timeout"] == core_redis.SOCKET_TIMEOUT_SECONDS


def test_the_sync_client_is_shared_and_reaches_the_configured_server():
    first, second = core_redis.client(), core_redis.client()
    assert first is second
    first.set(core_redis.key("test", "ping"), "pong", ex=5)
    assert first.get(core_redis.key("test", "ping")) == b"pong"


def test_each_event_loop_gets_its_own_async_client_on_the_same_server():
    async def read():
        found = core_redis.async_client()
        assert found is core_redis.async_client()
        await found.set(core_redis.key("test", "async"), "yes", ex=5)
        value = await found.get(core_redis.key("test", "async"))
        await found.aclose()
        return found, value

    first, value = asyncio.run(read())
    second, _ = asyncio.run(read())
    assert value == b"yes"
    assert first is not second  # a pool is bound to the loop that made it


def test_keys_carry_the_cache_prefix():
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "portal"
    assert core_redis.key("gateway", "keys", 7) == f"{prefix}:gateway:keys:7"


def test_a_changed_cache_prefix_is_seen_by_the_next_key(settings):
    core_redis.key("warm")  # the prefix is remembered per process…
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "KEY_PREFIX": "elsewhere"}}

    assert core_redis.key("gateway", "keys") == "elsewhere:gateway:keys"  # …until the setting changes


async def _connection_ids() -> set[int]:
    """The server-side ids of this loop's two connections: the hot path's and redis-py's."""
    (hot_id,) = await core_redis._hot_connection().execute([("CLIENT", "ID")])
    return {hot_id, await core_redis.async_client().client_id()}


def _open_ids() -> set[int]:
    return {int(c["id"]) for c in core_redis.client().client_list()}


def _closed_soon(ids: set[int]) -> bool:
    deadline = time.monotonic() + 3
    while ids & _open_ids() and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    return not ids & _open_ids()


def test_a_loop_that_ended_leaves_no_connection_open_once_another_loop_uses_redis():
    """A Celery task that runs asyncio.run each time must not keep each run's connections (a leak per run)."""
    first = asyncio.run(_connection_ids())
    second = asyncio.run(_connection_ids())

    assert _closed_soon(first)  # forgotten when the second loop came; the collector closed them
    assert second <= _open_ids()  # the last loop's stay until the next one comes


def test_a_loop_about_to_end_can_close_its_connections_itself_and_connect_again_if_used():
    async def run():
        ids = await _connection_ids()
        await core_redis.close_loop_clients()
        again = await _connection_ids()  # a use after the close connects anew
        await core_redis.close_loop_clients()
        return ids, again

    ids, again = asyncio.run(run())

    assert ids.isdisjoint(again)
    assert _closed_soon(ids | again)
