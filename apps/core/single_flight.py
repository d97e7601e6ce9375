"""One call in flight per slot (asyncio): the coroutines that need the same answer at once await one call.

    answer = await single_flight.shared(_loading, (key_hash, stamp), lambda: load(key_hash))

The gateway's hot path reads PostgreSQL through one thread (asgiref's sync_to_async), rarely: on a cache miss or
an expiry. Under load, every request that found the same entry missing used to ask for it, each query queued on
that thread behind the others, and the next expiry found still more requests waiting (ADR 0099). `flights` is the
caller's dict (one per kind of answer); slots are per event loop. The call runs shielded: a waiter that is
cancelled (its client left) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


async def shared(flights: dict, slot: Hashable, call: Callable[[], Awaitable[T]]) -> T:
    slot = (id(asyncio.get_running_loop()), slot)
    flight = flights.get(slot)
    if flight is None:
        flight = flights[slot] = asyncio.ensure_future(call())
        flight.add_done_callback(lambda _done: flights.pop(slot, None))
    return await asyncio.shield(flight)
