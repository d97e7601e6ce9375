"""apps.core.redis: one pooled client per process (sync) and per event loop (asyncio), keys under the prefix."""

import asyncio

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
