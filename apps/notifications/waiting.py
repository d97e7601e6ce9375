"""What waits on a person: the one place the header's "waiting on you" count is computed.

Apps register a source at start-up (notifications sits at the bottom of the map and imports none of them):

    from apps.notifications.waiting import register_waiting
    register_waiting("prompt.promotion", fn)   # fn(user) -> Waiting | None; one cheap query

The header loads the count lazily (like the unread badge), so no page pays for it while rendering; the
inbox lists each source with its link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Waiting:
    key: str
    label: str  # e.g. "Promotion requests to review"
    count: int
    url: str


_sources: dict[str, Callable] = {}


def register_waiting(key: str, fn: Callable) -> None:
    """Registering a key again replaces it."""
    _sources[key] = fn


def waiting_for(user) -> list[Waiting]:
    """Each source with something waiting on `user`. A failing source is logged and left out, never a 500."""
    if not getattr(user, "is_authenticated", False):
        return []
    found = []
    for key, fn in sorted(_sources.items()):
        try:
            item = fn(user)
        except Exception:  # noqa: BLE001 - another app's count must not break every page's header
            log.exception("waiting source %s failed", key)
            continue
        if item is not None and item.count > 0:
            found.append(item)
    return found


def waiting_count(items: list[Waiting]) -> int:
    return sum(item.count for item in items)
