"""apps/core/stamped_cache.py: an entry is served only under the stamp it was built with."""

import asyncio
import uuid

from django.core.cache import cache

from apps.core.stamped_cache import new_stamp, stamp_aread, stamped_get


def keys(name: str) -> tuple[str, str]:
    run = uuid.uuid4().hex  # the test Redis outlives a run: fresh keys every time
    return f"{name}:{run}:stamp", f"{name}:{run}:entry"


def test_an_entry_is_served_until_its_stamp_is_replaced():
    stamp, entry = keys("served")
    built = []

    def build():
        built.append(1)
        return len(built)

    assert stamped_get(stamp, entry, build, timeout=60) == 1
    assert stamped_get(stamp, entry, build, timeout=60) == 1  # from the cache
    cache.set(stamp, new_stamp())
    assert stamped_get(stamp, entry, build, timeout=60) == 2  # rebuilt under the new stamp


def test_values_that_are_not_cacheable_are_built_every_time():
    stamp, entry = keys("uncacheable")
    calls = []
    for _ in range(2):
        stamped_get(stamp, entry, lambda: calls.append(1), timeout=60, cacheable=lambda v: v is not None)
    assert len(calls) == 2 and cache.get(entry) is None


def test_a_stamp_read_from_an_event_loop_is_the_caches_stamp():
    stamp, entry = keys("aread")
    assert asyncio.run(stamp_aread(stamp)) is None  # no stamp yet
    stamped_get(stamp, entry, lambda: 1, timeout=60)
    assert asyncio.run(stamp_aread(stamp)) == cache.get(stamp)
    cache.set(stamp, new_stamp())
    assert asyncio.run(stamp_aread(stamp)) == cache.get(stamp)
