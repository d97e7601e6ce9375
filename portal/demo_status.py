"""Whether the background demo load (`manage.py seed_demo`, started by `make run`) is still running, so pages
can say "demo data is loading" instead of showing $0 and "No budgets yet" as if that were the truth.

A cache key (Redis, shared by every process) set when the load starts and deleted when it ends; its TTL
clears the banner if the load dies without cleaning up.
"""

from __future__ import annotations

import contextlib

from django.core.cache import cache

KEY = "portal:demo:loading"
TTL_SECONDS = 30 * 60  # a fresh .portal/ loads in about a minute on two cores; a crashed load stops showing


def demo_loading() -> bool:
    try:
        return bool(cache.get(KEY))
    except Exception:  # noqa: BLE001 - a cache outage must not break the home page
        return False


@contextlib.contextmanager
def demo_loading_marker():
    """Wrap the demo load: pages show the banner while it runs, and not after (even when it fails)."""
    cache.set(KEY, "1", TTL_SECONDS)
    try:
        yield
    finally:
        cache.delete(KEY)
