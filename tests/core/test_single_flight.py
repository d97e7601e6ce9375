"""apps/core/single_flight.py: the coroutines that need the same answer at once share one call."""

from __future__ import annotations

import asyncio

import pytest

from apps.core import single_flight


def test_waiters_share_one_call_and_its_failure_and_a_cancelled_waiter_does_not_stop_it():
    calls = []

    async def load(value):
        calls.append(value)
        await asyncio.sleep(0.01)
        if value == "bad":
            raise LookupError(value)
        return value.upper()

    async def scenario():
        flights: dict = {}
        waiters = [asyncio.ensure_future(single_flight.shared(flights, "a", lambda: load("a"))) for _ in range(5)]
        await asyncio.sleep(0)
        waiters[0].cancel()  # its client left: the others still get the answer
        answers = await asyncio.gather(*waiters[1:])
        failed = await asyncio.gather(*(single_flight.shared(flights, "b", lambda: load("bad")) for _ in range(3)),
                                      return_exceptions=True)
        again = await single_flight.shared(flights, "a", lambda: load("a"))  # done calls are not kept
        return answers, failed, again, flights

    answers, failed, again, flights = asyncio.run(scenario())
    assert answers == ["A"] * 4 and again == "A" and flights == {}
    assert all(isinstance(f, LookupError) for f in failed)
    assert calls == ["a", "bad", "a"]


def test_a_slot_is_per_event_loop():
    async def one():
        return await single_flight.shared(flights, "x", lambda: asyncio.sleep(0, result=1))

    flights: dict = {}
    assert asyncio.run(one()) == asyncio.run(one()) == 1
    with pytest.raises(TypeError):
        asyncio.run(single_flight.shared(flights, "y", lambda: None))  # the call must be a coroutine
