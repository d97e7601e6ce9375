"""Budgets before the call: the worst case is reserved in Redis, atomically, before the gateway forwards a call.

One Lua script covers every budget that applies to a call — the key's own dollars per day and each active costs
Budget with a hard cap whose team / feature / tenant / use case (the key's use_case_id) matches — and reserves the
call's worst-case cost on all of them or on none (ADR 0072): the input estimate plus GATEWAY_BUDGET_INPUT_MARGIN, and max_tokens of output (or
GATEWAY_BUDGET_DEFAULT_MAX_TOKENS when the request has none), at the dearest deployment the call may reach. The gateway hot path never writes PostgreSQL: Redis holds the live counters.

A counter (one Redis hash per budget period, one per key and UTC day) has

    base     what the ledger holds against the budget period (costs.selectors.budget_usage: settled spend of its
             scope, every source, plus the portal's own PostgreSQL reservations); budget counters only
    pend     cost the gateway settled here that the ledger does not hold yet (per request in `<counter>:p`)
    spent    cost settled here for good (key counters: Redis is their only counter)
    held     worst cases reserved by calls in flight
    gen      moves whenever `base` does

and a call may reserve `w` when base + pend + spent + held + w <= cap. Life of a reservation:

    reserve  (preflight hook, before the call)         held += w on every counter, or a 429 naming the budget
    settle   (the call's one CallRecord is recorded)   held -= w; pend (or spent) += the call's real cost
    release  (a failed call: its record has no usage)  settle with cost 0
    ledger   (gateway_recorder wrote the record)       pend -= cost and base = the ledger again, in one step
    sweep    (gateway_recorder, every GATEWAY_BUDGET_SYNC_SECONDS)  reservations past their TTL are released;
             settled costs the writer never confirmed leave `pend`; every live counter's base is re-read

A counter is seeded from the ledger the first time a period is used (a read, on the hot path only then), and
re-read by the writer, so the portal's own calls and ingested usage reach the gateway's counters within
GATEWAY_BUDGET_SYNC_SECONDS. A base re-read applies only if `gen` did not move meanwhile, so an older read can
never replace a newer one. Refusals are 429 `insufficient_quota` (OpenAI's code for quota): when settled spend
alone leaves no room, with `x-should-retry: false` and Retry-After at the period's reset; when calls in flight
hold the room, Retry-After 1 (the SDK retries).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.core import redis as portal_redis
from apps.core import single_flight
from apps.costs import selectors as costs_selectors
from apps.costs.budgets import ROLLING_DAYS, PeriodBounds, period_bounds, refusal_message
from apps.costs.models import Budget, BudgetPeriodKind
from apps.gateway.keys import KeyInfo
from apps.gateway.wire import GatewayError, error_json
from apps.llm import callcore
from apps.llm.acalls import PreflightCheck
from apps.llm.results import CallRecord
from apps.llm.routing import aresolve

log = logging.getLogger(__name__)
DAY = 86_400
UNIT = Decimal("0.00000001")  # counters count whole units of the ledger's smallest cost
KEEP_AFTER_PERIOD = 2 * DAY  # a counter outlives its period by this much (late settles still find it)

# -- the scripts (each runs atomically in Redis) ------------------------------------------------------------

_RESERVE = """
-- KEYS: stamp, reservation, held zset, live zset, counters...
-- ARGV: expected stamp, request id, amount, expires at, now, counter prefix, then per counter: cap, expire at,
--       kind ('b' budget: seeded from the ledger, 'k' key), short name
local stamp = redis.call('GET', KEYS[1]) or ''
if stamp ~= ARGV[1] then return {'stale', stamp} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'dup'} end
local amount = tonumber(ARGV[3])
local n = #KEYS - 4
for i = 1, n do
  local c = KEYS[4 + i]
  if ARGV[5 + 4 * i] == 'b' and redis.call('EXISTS', c) == 0 then return {'seed', tostring(i)} end
  local v = redis.call('HMGET', c, 'base', 'spent', 'pend', 'held')
  local held = tonumber(v[4]) or 0
  local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0) + held
  if used + amount > tonumber(ARGV[3 + 4 * i]) then
    return {'over', tostring(i), string.format('%d', used), string.format('%d', held)}
  end
end
local budgets, keys = {}, {}
for i = 1, n do
  local c = KEYS[4 + i]
  redis.call('HINCRBY', c, 'held', ARGV[3])
  redis.call('EXPIREAT', c, ARGV[4 + 4 * i])
  if ARGV[5 + 4 * i] == 'b' then
    budgets[#budgets + 1] = ARGV[6 + 4 * i]
    redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6 + 4 * i])
  else
    keys[#keys + 1] = ARGV[6 + 4 * i]
  end
end
redis.call('HSET', KEYS[2], 'amt', ARGV[3], 'b', table.concat(budgets, ' '), 'k', table.concat(keys, ' '), 'st', 'h')
redis.call('EXPIREAT', KEYS[2], tonumber(ARGV[4]) + 7 * 86400)  -- litter only: the sweeper removes it long before
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return {'ok'}
"""

# The settle, as a Lua function: the SETTLE script below, and the recorder's script (apps/gateway/recording.py),
# which settles a call's hold in the round trip that puts its record on the stream (ADR 0125).
SETTLE_LUA = """
local function settle(reservation, held_zset, pending_zset, rid, cost_units, pending_expires, prefix)
  local r = redis.call('HMGET', reservation, 'amt', 'b', 'k', 'st')
  if not r[1] or r[4] ~= 'h' then return 0 end
  local cost = tonumber(cost_units)
  for c in string.gmatch(r[3], '%S+') do
    local key = prefix .. c
    if redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBY', key, 'held', '-' .. r[1])
      if cost > 0 then redis.call('HINCRBY', key, 'spent', cost_units) end
    end
  end
  local pending = {}
  for c in string.gmatch(r[2], '%S+') do
    local key = prefix .. c
    if redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBY', key, 'held', '-' .. r[1])
      if cost > 0 then
        redis.call('HSET', key .. ':p', rid, cost_units)
        local ttl = redis.call('TTL', key)
        if ttl > 0 then redis.call('EXPIRE', key .. ':p', ttl) end
        redis.call('HINCRBY', key, 'pend', cost_units)
        pending[#pending + 1] = c
      end
    end
  end
  redis.call('ZREM', held_zset, rid)
  if #pending > 0 then
    redis.call('HSET', reservation, 'st', 's', 'b', table.concat(pending, ' '), 'k', '', 'cost', cost_units)
    redis.call('ZADD', pending_zset, pending_expires, rid)
  else
    redis.call('DEL', reservation)
  end
  return 1
end
"""

_SETTLE = SETTLE_LUA + """
-- KEYS: reservation, held zset, pending zset. ARGV: request id, cost, pending expires at, counter prefix
return settle(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""

_REBASE = """
-- KEYS: counter, its pending hash. ARGV: expected gen, new base ('' keeps it), request ids now on the ledger...
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if (redis.call('HGET', KEYS[1], 'gen') or '0') ~= ARGV[1] then return 0 end
for i = 3, #ARGV do
  local cost = redis.call('HGET', KEYS[2], ARGV[i])
  if cost then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HINCRBY', KEYS[1], 'pend', '-' .. cost)
  end
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'base', ARGV[2]) end
redis.call('HINCRBY', KEYS[1], 'gen', 1)
return 1
"""

_SWEEP = """
-- KEYS: held zset, pending zset. ARGV: now, limit, reservation prefix, counter prefix
local n = 0
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  local r = redis.call('HMGET', ARGV[3] .. rid, 'amt', 'b', 'k', 'st')
  if r[1] and r[4] == 'h' then
    for c in string.gmatch(r[2] .. ' ' .. r[3], '%S+') do
      local key = ARGV[4] .. c
      if redis.call('EXISTS', key) == 1 then redis.call('HINCRBY', key, 'held', '-' .. r[1]) end
    end
    redis.call('DEL', ARGV[3] .. rid)
  end
  redis.call('ZREM', KEYS[1], rid)
  n = n + 1
end
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  local r = redis.call('HMGET', ARGV[3] .. rid, 'b', 'st')
  if r[2] == 's' then
    for c in string.gmatch(r[1], '%S+') do
      local key = ARGV[4] .. c
      local cost = redis.call('HGET', key .. ':p', rid)
      if cost then
        redis.call('HDEL', key .. ':p', rid)
        redis.call('HINCRBY', key, 'pend', '-' .. cost)
      end
    end
    redis.call('DEL', ARGV[3] .. rid)
  end
  redis.call('ZREM', KEYS[2], rid)
  n = n + 1
end
return n
"""


RESERVE, SETTLE, REBASE, SWEEP = (portal_redis.Script(s) for s in (_RESERVE, _SETTLE, _REBASE, _SWEEP))


# -- names ----------------------------------------------------------------------------------------------------


def counter_prefix() -> str:
    return portal_redis.key("gateway", "budget", "c", "")


def reservation_prefix() -> str:
    return portal_redis.key("gateway", "budget", "r", "")


def held_key() -> str:
    """Reservations of calls in flight, by expiry (unix seconds)."""
    return portal_redis.key("gateway", "budget", "held")


def pending_key() -> str:
    """Settled calls the ledger has not confirmed yet, by expiry."""
    return portal_redis.key("gateway", "budget", "pending")


def live_key() -> str:
    """Budget counters in use, by last reservation: the ones the writer re-reads from the ledger."""
    return portal_redis.key("gateway", "budget", "live")


def units(amount: Decimal) -> int:
    """Dollars as whole UNITs (the ledger's 8 decimals), rounded up: Redis adds integers exactly, and Lua's
    doubles hold them exactly up to $90 million."""
    return int((amount / UNIT).to_integral_value(rounding=ROUND_CEILING))


def dollars(value) -> Decimal:
    return Decimal(int(value)) * UNIT


@dataclass(frozen=True)
class Counter:
    """One limit a call must fit in: a budget's period, or a key's UTC day."""

    name: str  # b<budget id>-<period counted from, unix s> or k<key id>-<unix day>
    cap: Decimal
    expire_at: int
    budget: Budget | None = None
    bounds: PeriodBounds | None = None

    @property
    def key(self) -> str:
        return counter_prefix() + self.name

    @property
    def kind(self) -> str:
        return "b" if self.budget is not None else "k"

    @functools.cached_property
    def cap_units(self) -> int:
        return units(self.cap)


def budget_counter(budget: Budget, at: datetime) -> Counter:
    bounds = period_bounds(budget.period, at)
    counted_from = int(bounds.counted_from.timestamp())
    # a rolling budget's counter is replaced every day (its window slides): it serves the window's last day
    until = bounds.end or bounds.counted_from + timedelta(days=ROLLING_DAYS)
    return Counter(name=f"b{budget.pk}-{counted_from}", cap=budget.hard_cap, budget=budget, bounds=bounds,
                   expire_at=int(until.timestamp()) + KEEP_AFTER_PERIOD)


def key_counter(info: KeyInfo, now: float) -> Counter:
    day = int(now // DAY)
    return Counter(name=f"k{info.id}-{day}", cap=info.dollars_per_day, expire_at=(day + 1) * DAY + KEEP_AFTER_PERIOD)


def _bounds_of(budget: Budget, name: str) -> PeriodBounds:
    """The period a budget counter's name stands for."""
    counted_from = datetime.fromtimestamp(int(name.rsplit("-", 1)[1]), UTC)
    if budget.period == BudgetPeriodKind.ROLLING_30D:
        counted_from += timedelta(days=ROLLING_DAYS - 1)  # the day whose window starts there
    return period_bounds(budget.period, counted_from)


# -- refusals -------------------------------------------------------------------------------------------------


class HookError(GatewayError):
    """An answer raised inside the call path's preflight hook: the call path recorded it already (refused)."""

    recorded = True
    headers: tuple = ()

    @property
    def error_type(self) -> str:  # what the ledger records (callcore.error_type_of): the wire code
        return self.code or "refused"


class BudgetRefused(HookError):
    """429 insufficient_quota: the call could take a budget (or the key's dollars per day) over its cap."""

    def __init__(self, message: str, *, exhausted: bool, retry_after: int):
        super().__init__(429, message, code="insufficient_quota", retry_after=retry_after)
        self.headers = ((b"x-should-retry", b"false"),) if exhausted else ()

    def body(self) -> bytes:
        return json.dumps({"error": {**json.loads(error_json(429, self.message, code=self.code))["error"],
                                     "type": "insufficient_quota"}}).encode()


def _refusal(counter: Counter, *, used: Decimal, held: Decimal, worst: Decimal, now: float) -> BudgetRefused:
    exhausted = used - held + worst > counter.cap  # settled spend alone leaves no room: retrying will not help
    if counter.budget is not None:
        message = refusal_message(counter.budget, used=used, worst=worst, period_end=counter.bounds.end)
        reset = counter.bounds.end.timestamp() if counter.bounds.end else (now // DAY + 1) * DAY
    else:
        message = (f"This gateway key's limit of ${counter.cap:,.2f} dollars per day is reached: ${used:,.4f} is "
                   f"spent or reserved today and this call could cost up to ${worst:,.4f}. It resets at 00:00 UTC.")
        reset = (now // DAY + 1) * DAY
    if not exhausted:
        message += f" ${held:,.4f} of it is held by calls in flight: retry in a moment."
    return BudgetRefused(message, exhausted=exhausted, retry_after=max(1, int(reset - now + 0.999)) if exhausted else 1)


# -- the hot path (async) -------------------------------------------------------------------------------------


class _Stamp:
    """The capped budgets' stamp as this process last read it (again at most every GATEWAY_ADMISSION_TTL_SECONDS
    when a call has nothing to reserve; the reserve script checks it on every reservation)."""

    value: bytes | None = None
    checked = 0.0


async def capped_budgets(current: bytes | None = None) -> tuple[bytes, tuple[Budget, ...]]:
    """(stamp, every active hard-capped budget): no query while the stamp holds."""
    now = time.monotonic()
    if current is None and _Stamp.value is not None and now - _Stamp.checked < settings.GATEWAY_ADMISSION_TTL_SECONDS:
        current = _Stamp.value
    if current is None:
        client = portal_redis.async_client()
        current = await client.get(costs_selectors.capped_budgets_stamp_key())
        if current is None:  # first use of this Redis: plant one
            await client.set(costs_selectors.capped_budgets_stamp_key(), "0", nx=True)
            current = await client.get(costs_selectors.capped_budgets_stamp_key())
    _Stamp.value, _Stamp.checked = current, now
    found = costs_selectors.capped_budgets_cached(current)
    if found is None:
        found = await sync_to_async(costs_selectors.capped_budgets)(current)
    return current, found


# Counters made today, by ("b", budget id) or ("k", key id): a counter only changes with the UTC day (every period's
# bounds are whole days) or with its budget or cap, and making one per call was the largest of the reservation's costs.
_counters: dict = {"day": None}


def counters_for(info: KeyInfo, team_id, feature: str, tenant: str, budgets, now: float) -> list[Counter]:
    global _counters  # noqa: PLW0603 - replaced whole when the day turns
    day = int(now // DAY)
    if _counters["day"] != day or len(_counters) > 10_000:
        _counters = {"day": day}
    made = _counters
    found = []
    for budget in budgets:
        if budget.matches(team_id, feature, tenant, info.use_case_id):
            counter = made.get(("b", budget.pk))
            # a budget changed: its stamp gave a new object (and a cap edited in place is seen too)
            if counter is None or counter.budget is not budget or counter.cap != budget.hard_cap:
                counter = made[("b", budget.pk)] = budget_counter(budget, datetime.fromtimestamp(now, UTC))
            found.append(counter)
    if info.dollars_per_day is not None:
        counter = made.get(("k", info.id))
        if counter is None or counter.cap != info.dollars_per_day:
            counter = made[("k", info.id)] = key_counter(info, now)
        found.append(counter)
    return found


_seeding: dict = {}  # the seeds in flight (single_flight.shared)


async def _seed(counter: Counter) -> None:
    """A budget counter's first use this period: its base from the ledger. The calls of a burst that all find
    it missing share one read (per process and event loop)."""
    await single_flight.shared(_seeding, counter.key, lambda: _seed_once(counter))


async def _seed_once(counter: Counter) -> None:
    """One read of the ledger, written with HSETNX: across processes the first seeder wins."""
    base = await sync_to_async(costs_selectors.budget_usage)(counter.budget, counter.bounds)
    pipe = portal_redis.async_client().pipeline(transaction=False)
    pipe.hsetnx(counter.key, "base", units(base))
    pipe.expireat(counter.key, counter.expire_at)
    await pipe.execute()


def reserve_script_args(request_id: str, counters: list[Counter], amount: Decimal, stamp: bytes,
                        now: float) -> tuple[list[str], list]:
    """The keys and arguments of the reserve script (`RESERVE`)."""
    expires = int(now + settings.GATEWAY_BUDGET_RESERVATION_TTL_SECONDS)
    keys = [costs_selectors.capped_budgets_stamp_key(), reservation_prefix() + request_id, held_key(), live_key(),
            *(c.key for c in counters)]
    args = [stamp, request_id, units(amount), expires, int(now), counter_prefix()]
    for c in counters:
        args += [c.cap_units, c.expire_at, c.kind, c.name]
    return keys, args


def reserve_outcome(answer: list) -> tuple[str, list]:
    return answer[0].decode(), [part.decode() for part in answer[1:]]


async def reserve(request_id: str, counters: list[Counter], amount: Decimal, stamp: bytes,
                  now: float | None = None) -> tuple[str, list]:
    """Run the reserve script once: ("ok"|"dup"|"stale"|"seed"|"over", details)."""
    now = time.time() if now is None else now
    return reserve_outcome(await RESERVE.arun(*reserve_script_args(request_id, counters, amount, stamp, now)))


def settle_script_args(request_id: str, cost: Decimal, now: float | None = None) -> tuple[list[str], list]:
    """The keys and arguments of the settle (`SETTLE_LUA`'s `settle`): reservation, held and pending sets; request
    id, cost in units, when the settled cost leaves `pend` unconfirmed, the counters' prefix."""
    now = time.time() if now is None else now
    expires = int(now + settings.GATEWAY_BUDGET_RESERVATION_TTL_SECONDS)
    return ([reservation_prefix() + request_id, held_key(), pending_key()],
            [request_id, units(max(cost, Decimal(0))), expires, counter_prefix()])


async def settle(request_id: str, cost: Decimal, now: float | None = None) -> bool:
    """The call ended: its reservation gives way to its real cost (0: a release). False: nothing was held.
    (A gateway call's hold is settled with its record instead: `BudgetHold.settlement`, recording.Recorder.)"""
    return bool(await SETTLE.arun(*settle_script_args(request_id, cost, now)))


async def release(request_id: str) -> bool:
    return await settle(request_id, Decimal(0))


async def call_cost(record: CallRecord) -> Decimal | None:
    """What the ledger will charge for this record (the route's cached prices; no query), or None if unknown."""
    tokens = record.tokens
    if not (tokens.input_tokens or tokens.output_tokens):
        return Decimal(0)
    try:
        route = await aresolve(record.alias or record.model)
    except Exception:  # noqa: BLE001 - unknown: the caller settles at the worst case
        return None
    for target in route.targets:
        if target.model.name == record.model and target.prices is not None:
            return callcore.cost_now(tokens, target.price(record.occurred_at))
    return None


class Ahead:
    """A reservation made ahead of the call, in the front door's first round trip (ADR 0126): the reserve script
    queued on that pipeline (`queue`), its answer taken (`took`). Anything but "ok" holds nothing: the call's
    preflight then reserves as usual (and refuses there, with the usual answer)."""

    def __init__(self, hold: BudgetHold, keys: list[str], args: list, amount: Decimal):
        self.hold, self.keys, self.args, self.amount = hold, keys, args, amount

    def queue(self, pipe) -> None:
        RESERVE.queue(pipe, self.keys, self.args)

    def took(self, answer) -> bool:
        """The pipeline's answer to `queue` (an exception when the script was not run, e.g. not loaded yet)."""
        if isinstance(answer, Exception):
            return False
        outcome, _details = reserve_outcome(answer)
        if outcome in ("ok", "dup"):
            self.hold.amount, self.hold.unclaimed = self.amount, True
            return True
        return False


class BudgetHold:
    """One request's reservation: `preflight` is the call path's hook; the call's recorder settles it with the
    call's one CallRecord, in the round trip that puts it on the stream (`settlement`, recording.Recorder).
    A front door that knows the call's worst case before its first round trip reserves it there (`ahead`); the
    preflight then keeps that hold when it covers the call's worst case (ADR 0126). A hold the call never took
    is given back by `release_unused` (a refusal, a cache hit, an error before the call)."""

    def __init__(self, info: KeyInfo):
        self.info = info
        self.amount: Decimal | None = None  # reserved, not settled yet
        self.request_id = ""
        self.unclaimed = False  # reserved ahead, not taken over by the call (yet)

    async def ahead(self, check: PreflightCheck) -> Ahead | None:
        """The reservation of `check`'s worst case to queue on the front door's first round trip, or None when
        there is nothing to reserve ahead (no budget applies, a free call) or it cannot be known (an unpriced
        model: the preflight refuses it)."""
        context = check.context
        stamp, budgets = await capped_budgets()
        now = time.time()
        counters = counters_for(self.info, context.team_id, context.feature, context.tenant, budgets, now)
        worst = self.worst(check) if counters else None
        if worst is None or worst <= 0:
            return None
        self.request_id = context.request_id
        return Ahead(self, *reserve_script_args(context.request_id, counters, worst, stamp, now), worst)

    async def release_unused(self) -> None:
        """Give back a hold the call never took over (its recorder settles the ones it did). Logged, not raised:
        the sweeper releases it after GATEWAY_BUDGET_RESERVATION_TTL_SECONDS."""
        if self.amount is None or not self.unclaimed:
            return
        self.amount, self.unclaimed = None, False
        try:
            await release(self.request_id)
        except Exception:  # noqa: BLE001 - see the docstring
            log.warning("gateway budget hold of request %s not released", self.request_id, exc_info=True)

    def worst(self, check: PreflightCheck) -> Decimal | None:
        """The amount to hold: the input estimate plus GATEWAY_BUDGET_INPUT_MARGIN (the provider's tokenizer may
        count more than the portal's estimate), and max_tokens or GATEWAY_BUDGET_DEFAULT_MAX_TOKENS of output."""
        if check.worst_case_at is None:
            return check.worst_case_cost
        input_tokens = math.ceil(check.input_tokens * (1 + settings.GATEWAY_BUDGET_INPUT_MARGIN))
        output = check.asked_max_tokens
        if output is None:
            output = min(settings.GATEWAY_BUDGET_DEFAULT_MAX_TOKENS, check.max_output_tokens)
        return check.worst_case_at(input_tokens, output)

    async def preflight(self, check: PreflightCheck) -> None:
        context = check.context
        if self.unclaimed:  # reserved ahead (ADR 0126): the call takes it over when it covers its worst case
            worst = self.worst(check)
            if worst is not None and worst <= self.amount:
                self.unclaimed = False
                return
            await self.release_unused()  # the call grew (e.g. a redaction) or the route moved: reserve it afresh
        try:
            stamp, budgets = await capped_budgets()
            for _attempt in range(5):
                now = time.time()
                counters = counters_for(self.info, context.team_id, context.feature, context.tenant, budgets, now)
                if not counters:
                    return
                worst = self.worst(check)
                if worst is None:
                    named = counters[0].budget.name if counters[0].budget else "this key's dollars per day"
                    raise BudgetRefused(f"'{check.model}' has no price, so the hard cap of '{named}' cannot be "
                                        "enforced on it. Ask an admin to add its price (Costs → Prices).",
                                        exhausted=True, retry_after=DAY)
                if worst <= 0:
                    return  # a free call cannot take spend over a cap
                outcome, details = await reserve(context.request_id, counters, worst, stamp, now)
                if outcome in ("ok", "dup"):
                    self.amount, self.request_id = worst, context.request_id
                    return
                if outcome == "stale":
                    stamp, budgets = await capped_budgets(details[0].encode())
                elif outcome == "seed":
                    await _seed(counters[int(details[0]) - 1])
                else:  # over
                    raise _refusal(counters[int(details[0]) - 1], used=dollars(details[1]), held=dollars(details[2]),
                                   worst=worst, now=now)
        except HookError:
            raise
        except Exception:
            log.exception("gateway budget reservation failed for key %s", self.info.prefix)
            raise HookError(503, "The budget check could not run; try again.", code="budget_unavailable")
        raise HookError(503, "The budget check could not run; try again.", code="budget_unavailable")

    async def settlement(self, record: CallRecord) -> tuple[list[str], list] | None:
        """The settle of this request's hold by its call's one record (`settle_script_args`), or None when nothing is
        held. The recorder runs it in the round trip that puts the record on the stream, before the XADD, so the
        writer always finds it settled (recording.Recorder, ADR 0125). Given once: the hold is then the
        recorder's. The cost is the route's cached prices on the upstream's usage (unknown: the worst case held)."""
        if self.amount is None:
            return None
        held, self.amount, self.unclaimed = self.amount, None, False
        cost = await call_cost(record)
        return settle_script_args(record.request_id, held if cost is None else cost)


# -- the writer's side (sync): the ledger caught up, reconcile, sweep ---------------------------------------


def _budgets_by_id() -> dict[int, Budget]:
    client = portal_redis.client()
    stamp = client.get(costs_selectors.capped_budgets_stamp_key())
    if stamp is None:
        client.set(costs_selectors.capped_budgets_stamp_key(), "0", nx=True)
        stamp = client.get(costs_selectors.capped_budgets_stamp_key())
    return {b.pk: b for b in costs_selectors.capped_budgets(stamp)}


def _rebase(name: str, request_ids: list[str], budgets: dict[int, Budget]) -> bool:
    """Take these requests' settled cost out of `pend` and read `base` from the ledger, in one step; retried
    when another writer moved the counter between the read and the write (an older read never wins)."""
    budget = budgets.get(int(name[1:].split("-", 1)[0]))
    key = counter_prefix() + name
    client = portal_redis.client()
    for _attempt in range(3):
        gen = client.hget(key, "gen") or b"0"
        base = "" if budget is None else units(costs_selectors.budget_usage(budget, _bounds_of(budget, name)))
        if REBASE.run([key, key + ":p"], [gen, base, *request_ids]) != 0:
            return True
    log.info("gateway budget counter %s moved three times under the writer; the sweeper will finish it", name)
    return False


def ledger_caught_up(request_ids: list[str]) -> None:
    """The writer put these requests on the ledger: their settled cost moves from `pend` into `base`. A failure
    is logged: the costs stay in `pend` (counted twice, so a cap refuses early, never late) until swept."""
    if not request_ids:
        return
    try:
        client = portal_redis.client()
        pipe = client.pipeline(transaction=False)
        for rid in request_ids:
            pipe.hmget(reservation_prefix() + rid, "b", "st")
        by_counter, done = defaultdict(list), []
        for rid, (names, state) in zip(request_ids, pipe.execute(), strict=True):
            if state == b"s":
                done.append(rid)
                for name in (names or b"").decode().split():
                    by_counter[name].append(rid)
        if not done:
            return
        budgets = _budgets_by_id()
        finished = all([_rebase(name, rids, budgets) for name, rids in by_counter.items()])
        if finished:
            pipe = client.pipeline(transaction=False)
            for rid in done:
                pipe.delete(reservation_prefix() + rid)
            pipe.zrem(pending_key(), *done)
            pipe.execute()
    except Exception:  # noqa: BLE001 - see the docstring
        log.warning("gateway budget counters not moved for %d recorded calls", len(request_ids), exc_info=True)


def reconcile(now: float | None = None) -> int:
    """Re-read the base of every budget counter used in the last two days from the ledger (the portal's own
    calls, ingested usage, a recount). Returns how many counters were read."""
    now = time.time() if now is None else now
    client = portal_redis.client()
    client.zremrangebyscore(live_key(), "-inf", now - KEEP_AFTER_PERIOD)
    names = [n.decode() for n in client.zrangebyscore(live_key(), now - KEEP_AFTER_PERIOD, "+inf")]
    budgets = _budgets_by_id()
    for name in names:
        _rebase(name, [], budgets)
    return len(names)


def sweep(now: float | None = None, *, batch: int = 500) -> int:
    """Release reservations past their TTL (a call that never came back) and drop settled costs the writer
    never confirmed. Returns how many entries it handled."""
    now = time.time() if now is None else now
    total = 0
    while True:
        handled = SWEEP.run([held_key(), pending_key()], [int(now), batch, reservation_prefix(), counter_prefix()])
        total += handled
        if handled < batch:
            return total


class _Upkeep:
    last = 0.0


def upkeep(*, force: bool = False) -> None:
    """The writer's periodic duty (gateway_recorder's loop): sweep, then reconcile, every GATEWAY_BUDGET_SYNC_SECONDS."""
    now = time.monotonic()
    if not force and now - _Upkeep.last < settings.GATEWAY_BUDGET_SYNC_SECONDS:
        return
    _Upkeep.last = now
    sweep()
    reconcile()


def counter_state(name: str) -> dict[str, Decimal]:
    """A counter's fields in dollars (tests, the bench, an operator's look); `gen` as a count."""
    values = portal_redis.client().hgetall(counter_prefix() + name)
    return {k.decode(): Decimal(int(v)) if k == b"gen" else dollars(v) for k, v in values.items()}
