"""A concurrency limit per provider shared by every worker, in Redis: at most N model calls in flight.

Each call holds a slot: a member of a sorted set scored by the slot's expiry (Redis server time + TTL), so
the slot of a worker killed mid-call frees itself when the TTL passes. Acquire and release are single Lua
scripts (atomic). Each slot names the worker holding it, so the stalled-run job frees a dead worker's slots
at once instead of waiting for their TTL. Limits: `EVALS_PROVIDER_CONCURRENCY` ({provider name: N}), else
`EVALS_DEFAULT_PROVIDER_CONCURRENCY` (20).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid

from apps.core.redis import async_client
from apps.core.redis import client as redis_client  # the one pooled client (runner and bench use it here too)
from apps.evals import conf

KEY = "evals:inflight:{provider}"
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
  return 1
end
return 0
"""
_scripts: dict = {}
_local = threading.local()  # which worker holds the slots this thread takes (see set_owner)


def set_owner(owner: str) -> None:
    """Tag the slots this thread takes with its worker, so a dead worker's slots can be freed at once."""
    _local.owner = owner.replace("|", "/")


def release_owner_slots(owner: str) -> int:
    """Free every slot a (dead) worker still holds, on every provider. Returns how many."""
    client = redis_client()
    prefix = owner.replace("|", "/") + "|"
    freed = 0
    for key in client.scan_iter(match=KEY.format(provider="*"), count=100):
        members = [m for m, _ in client.zscan_iter(key, match=f"{prefix}*", count=200)]
        if members:
            freed += client.zrem(key, *members)
    return freed


class SlotTimeout(Exception):
    """No slot freed up in time."""


def _acquire_script():
    if "acquire" not in _scripts:
        _scripts["acquire"] = redis_client().register_script(_ACQUIRE)
    return _scripts["acquire"]


def limit_for(provider_name: str) -> int:
    limits = conf.get("EVALS_PROVIDER_CONCURRENCY") or {}
    return int(limits.get(provider_name) or conf.get("EVALS_DEFAULT_PROVIDER_CONCURRENCY"))


def in_flight(provider_name: str) -> int:
    client = redis_client()
    key = KEY.format(provider=provider_name)
    now = time.time()
    return int(client.zcount(key, now, "+inf"))


@contextlib.contextmanager
def provider_slot(provider_name: str, *, ttl_seconds: float = 600.0, wait_seconds: float = 900.0,
                  limit: int | None = None):
    """Hold one of the provider's slots for the duration of the block."""
    limit = limit or limit_for(provider_name)
    key = KEY.format(provider=provider_name)
    token = f"{getattr(_local, 'owner', 'unknown')}|{uuid.uuid4().hex}"
    script = _acquire_script()
    deadline = time.monotonic() + wait_seconds
    pause = 0.005
    while not script(keys=[key], args=[limit, ttl_seconds, token]):
        if time.monotonic() > deadline:
            raise SlotTimeout(f"no free slot for provider {provider_name} within {wait_seconds:.0f} s")
        time.sleep(pause + random.random() * pause)
        pause = min(0.05, pause * 1.5)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # an unreachable Redis must not hide the call's own outcome
            redis_client().zrem(key, token)


@contextlib.asynccontextmanager
async def aprovider_slot(provider_name: str, *, owner: str, ttl_seconds: float = 600.0, wait_seconds: float = 900.0,
                         limit: int | None = None):
    """provider_slot for coroutines (red-team campaigns): the same slots, on the event loop's Redis client. Yields
    `refresh()`, which pushes the slot's expiry `ttl_seconds` ahead: a holder that keeps its slot across many
    calls (one per campaign worker) refreshes it well within the TTL."""
    limit = limit or limit_for(provider_name)
    key = KEY.format(provider=provider_name)
    token = f"{owner.replace('|', '/')}|{uuid.uuid4().hex}"
    client = async_client()
    deadline = time.monotonic() + wait_seconds
    pause = 0.005
    while not await client.eval(_ACQUIRE, 1, key, limit, ttl_seconds, token):
        if time.monotonic() > deadline:
            raise SlotTimeout(f"no free slot for provider {provider_name} within {wait_seconds:.0f} s")
        await asyncio.sleep(pause + random.random() * pause)
        pause = min(0.05, pause * 1.5)

    async def refresh() -> None:
        await client.zadd(key, {token: time.time() + ttl_seconds}, xx=True)

    try:
        yield refresh
    finally:
        with contextlib.suppress(Exception):  # an unreachable Redis must not hide the call's own outcome
            await client.zrem(key, token)


def slot_ttl(provider) -> float:
    """Long enough for a call with all its retries; short enough that a dead worker's slot comes back."""
    return float(provider.timeout_seconds) * (int(provider.max_retries) + 1) + 30.0
