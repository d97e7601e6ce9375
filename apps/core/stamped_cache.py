"""Cache entries that are only served while their *stamp* is current (one MGET reads both).

A stamp is a random token under its own key; an entry is stored with the stamp it was built under. Replacing
the stamp (after a commit) makes every entry built under the old one unservable at once, with no delete/rebuild
race: an entry built from old rows carries the old stamp. Used by prompt resolve (a stamp per prompt) and the
API token cache (one stamp for everything authentication reads). A cache outage means building every time.

`stamp_aread(stamp_key)` reads one stamp from an event loop without a thread hop (the gateway's prompt by
reference keeps its own per-process copies of resolve payloads and compares stamps on every request).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisSerializer
from django.db import transaction

from apps.core import redis as portal_redis

log = logging.getLogger(__name__)
T = TypeVar("T")
_serializer = RedisSerializer()


def stamped_get(stamp_key: str, entry_key: str, build: Callable[[], T], *, timeout: int,
                cacheable: Callable[[T], bool] = lambda value: True) -> T:
    """The entry when its stamp is current, else `build()` (exceptions propagate), cached under the stamp."""
    try:
        got = cache.get_many([stamp_key, entry_key])
        stamp, entry = got.get(stamp_key), got.get(entry_key)
        if stamp is not None and entry is not None and entry[0] == stamp:
            return entry[1]
        if stamp is None:
            cache.add(stamp_key, uuid.uuid4().hex, timeout=None)
            stamp = cache.get(stamp_key)
    except Exception:
        log.warning("cache unavailable: building %s", entry_key, exc_info=True)
        stamp = None
    value = build()
    if stamp is not None and cacheable(value):
        stamped_set(stamp_key, entry_key, value, timeout=timeout, stamp=stamp)
    return value


def stamped_set(stamp_key: str, entry_key: str, value, *, timeout: int, stamp: str | None = None) -> None:
    """Store `value` under the given stamp, or the current one (nothing when there is none)."""
    try:
        stamp = stamp or cache.get(stamp_key)
        if stamp is not None:
            cache.set(entry_key, (stamp, value), timeout=timeout)
    except Exception:
        log.warning("cache unavailable: %s not stored", entry_key, exc_info=True)


def new_stamp() -> str:
    return uuid.uuid4().hex


def stamp_replace(stamp_key: str) -> None:
    """A new stamp under `stamp_key` now: every entry built under the old one is asked again. A cache outage is
    logged: entries then die with their timeout."""
    try:
        cache.set(stamp_key, new_stamp(), timeout=None)
    except Exception:
        log.warning("cache unavailable: stamp %s not renewed", stamp_key, exc_info=True)


def stamp_renew(stamp_key: str) -> None:
    """Make every entry built under `stamp_key` unservable, now and again after the current transaction commits (a
    reader that rebuilt in between from the old rows gets the stamp replaced under it)."""
    stamp_replace(stamp_key)
    transaction.on_commit(lambda: stamp_replace(stamp_key))


async def stamp_aread(stamp_key: str) -> str | None:
    """The current stamp, read with the event loop's Redis client when the cache lives on settings.REDIS_URL
    (one GET), else through the cache in a thread. None when there is none or the cache is unavailable."""
    try:
        if settings.CACHES["default"].get("LOCATION") == settings.REDIS_URL:
            raw = await portal_redis.async_client().get(cache.make_and_validate_key(stamp_key))
            return None if raw is None else _serializer.loads(raw)
        return await cache.aget(stamp_key)
    except Exception:
        log.warning("cache unavailable: stamp %s not read", stamp_key, exc_info=True)
        return None
