"""Per-key limits in Redis: requests and tokens per minute and per day (fixed UTC windows).

`admit()` is one pipelined round trip before the call: it counts the request in the request windows and reads
the token windows; `charge_windows()` names the windows the tokens a call used are added to after it, in the round
trip that records the call (apps/gateway/recording.py: no round trip of its own, ADRs 0099 and 0125). A key without limits costs no round trip. For a key cached in the front door, `stamp_and_count()` makes that count in the round trip
that reads the gateway stamp instead, `verdict()` judges it and `uncount()` takes it back when the request
ends before (ADR 0077). Counters expire on their own after their window. The key's dollars per day are not here:
they are reserved before the call with the budgets that apply (apps/gateway/budgets.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from apps.core import redis as portal_redis
from apps.gateway import keys
from apps.gateway.keys import KeyCache, KeyInfo

MINUTE, DAY = 60, 86_400
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LimitHit:
    message: str
    retry_after: int  # seconds until the window that refused resets
    field: str = ""  # the key's limit that refused (requests_per_minute, …)
    used: Decimal = Decimal(0)  # what the window held (this request included, for requests)


def _keys(key_id: int, now: float) -> dict[str, str]:
    minute, day = int(now // MINUTE), int(now // DAY)
    return {"req_m": portal_redis.key("gateway", "lim", key_id, "rm", minute),
            "req_d": portal_redis.key("gateway", "lim", key_id, "rd", day),
            "tok_m": portal_redis.key("gateway", "lim", key_id, "tm", minute),
            "tok_d": portal_redis.key("gateway", "lim", key_id, "td", day)}


def _until(now: float, window: int) -> int:
    return max(1, int(window - now % window + 0.999))


def _checks(info: KeyInfo) -> list[tuple[str, int, int, str]]:
    checks = [("req_m", info.requests_per_minute, MINUTE, "requests per minute"),
              ("req_d", info.requests_per_day, DAY, "requests per day"),
              ("tok_m", info.tokens_per_minute, MINUTE, "tokens per minute"),
              ("tok_d", info.tokens_per_day, DAY, "tokens per day")]
    return [c for c in checks if c[1] is not None]


def _queue(pipe, checks: list, names: dict[str, str]) -> None:
    for slot, _limit, window, _label in checks:
        if slot.startswith("req"):
            pipe.incr(names[slot])
            pipe.expire(names[slot], window + 60)
        else:
            pipe.get(names[slot])


def _verdict(checks: list, results: list, now: float) -> LimitHit | None:
    position = 0
    for slot, limit, window, label in checks:
        value = results[position]
        position += 2 if slot.startswith("req") else 1
        used = int(value) if value else 0  # INCRBY counters: an int reply, or a GET's digits (None when unset)
        over = used > limit if slot.startswith("req") else used >= limit
        if over:
            return LimitHit(f"This gateway key's limit of {limit} {label} is reached.", _until(now, window),
                            field=label.replace(" ", "_"), used=Decimal(used))
    return None


async def admit(info: KeyInfo, now: float | None = None) -> LimitHit | None:
    checks = _checks(info)
    if not checks:
        return None
    now = time.time() if now is None else now
    pipe = portal_redis.hot_pipeline()
    _queue(pipe, checks, _keys(info.id, now))
    return _verdict(checks, await pipe.execute(), now)


@dataclass(frozen=True)
class Counted:
    """A request counted in its key's windows ahead of `admit` (`stamp_and_count`): judged by `verdict`, or taken
    back by `uncount` when the request ends before it (refused earlier, or the key changed)."""

    info: KeyInfo
    now: float
    checks: list
    results: list


async def stamp_and_count(cache: KeyCache, key_hash: str, ahead=None) -> tuple[bytes, Counted | None]:
    """The gateway stamp, and for a key this process knows (valid when it was cached) its limit windows counted in
    the same pipeline: one round trip where the stamp GET and `admit` took two (ADR 0077). When the stamp moved
    since the key was cached, the count is taken back (`uncount`) and the caller reloads the key and counts
    it in `admit` as usual (the rare path).

    `ahead(info)`: the call's budget reservation to make in the same round trip (budgets.Ahead, or None; ADR 0126),
    taken back with the count when the stamp moved. Whether it held is the Ahead's to say (`took`)."""
    entry = cache.latest(key_hash)
    if entry is None or entry[1] is None or entry[1].refusal() is not None:
        return await keys.stamp_read(), None
    cached_stamp, info = entry
    reservation = await ahead(info) if ahead is not None else None
    now = time.time()
    checks = _checks(info)
    pipe = portal_redis.hot_pipeline()
    pipe.get(keys.stamp_key())
    _queue(pipe, checks, _keys(info.id, now))
    if reservation is None:
        stamp, *results = await pipe.execute()
    else:
        reservation.queue(pipe)
        # the reservation's own failure (its script not loaded yet) holds nothing; the call reserves as usual
        stamp, *results, reserved = await pipe.execute(raise_on_error=False)
        reservation.took(reserved)
        failed = next((answer for answer in (stamp, *results) if isinstance(answer, Exception)), None)
        if failed is not None:
            await reservation.hold.release_unused()
            raise failed
    stamp = stamp or b"0"
    counted = Counted(info, now, checks, results) if checks else None
    if stamp != cached_stamp:
        await uncount(counted)
        if reservation is not None:
            await reservation.hold.release_unused()
        return stamp, None
    return stamp, counted


def verdict(counted: Counted) -> LimitHit | None:
    return _verdict(counted.checks, counted.results, counted.now)


async def uncount(counted: Counted | None) -> None:
    """Take back a request counted ahead (`stamp_and_count`) that was never judged: the same windows, DECR.
    Logged, not raised, when Redis fails (the windows are over by one request until they reset)."""
    if counted is None:
        return
    names = _keys(counted.info.id, counted.now)
    slots = [slot for slot, *_rest in counted.checks if slot.startswith("req")]
    if not slots:
        return
    pipe = portal_redis.hot_pipeline()
    for slot in slots:
        pipe.decr(names[slot])
    try:
        await pipe.execute()
    except Exception:  # noqa: BLE001 - see the docstring
        log.warning("gateway request not taken back from key %s's limits", counted.info.prefix, exc_info=True)


def charge_windows(info: KeyInfo, *, tokens: int, now: float | None = None) -> list[tuple[str, int]]:
    """The token windows (name, expiry in seconds) a call that used `tokens` is charged to, for a key that limits
    tokens; [] when there is nothing to count. The recorder charges them in the round trip that records the call
    (apps/gateway/recording.py: INCRBY and EXPIRE each; a failure is logged there, not raised: the count is short by
    one call)."""
    wants_tokens = info.tokens_per_minute is not None or info.tokens_per_day is not None
    if not (wants_tokens and tokens):
        return []
    names = _keys(info.id, time.time() if now is None else now)
    return [(names["tok_m"], MINUTE + 60), (names["tok_d"], DAY + 60)]
