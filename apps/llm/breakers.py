"""Per-deployment circuit breakers, in-flight counts and request-rate limits, shared by every process in Redis.

A breaker counts outcomes in one-second buckets over a sliding window (LLM_BREAKER_WINDOW_SECONDS). When at
least LLM_BREAKER_MIN_REQUESTS calls ended in the window and the share of failures reaches
LLM_BREAKER_FAILURE_RATIO, it opens: the deployment is skipped for LLM_BREAKER_COOLDOWN_SECONDS. Then it is
half-open: one call at a time goes through as a probe; a probe that succeeds closes the breaker (and forgets
the window), one that fails opens it again for another cooldown.

In flight: a sorted set per deployment of (slot id, expiry), so a process that dies mid-call leaks nothing
for longer than LLM_INFLIGHT_TTL_SECONDS. Rate: a counter per deployment and minute.

Each decision is one Lua script, run by the sync client (calls.py) and the asyncio client (acalls.py) alike:
one round trip to take a slot (`acquire`), one to give it back with the outcome (`release`), and one for
least-in-flight ordering (`inflight`). A Redis outage fails open: calls go through unlimited, with a warning.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings

from apps.core import metrics
from apps.core import redis as core_redis
from apps.costs.rollups import token_bin

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# KEYS: open, half-open, probe, in-flight zset, rpm counter. ARGV: now (s), slot, slot ttl (s), max in flight
# (0: none), rpm limit (0: none), probe ttl (ms). -> "ok" | "probe" | "open" | "busy" | "limited"
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'open' end
local probe = false
if redis.call('EXISTS', KEYS[2]) == 1 then
  if not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[6]) then return 'open' end
  probe = true
end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local most = tonumber(ARGV[4])
if most > 0 and redis.call('ZCARD', KEYS[4]) >= most then
  if probe then redis.call('DEL', KEYS[3]) end
  return 'busy'
end
local rpm = tonumber(ARGV[5])
if rpm > 0 then
  local used = redis.call('INCR', KEYS[5])
  if used == 1 then redis.call('EXPIRE', KEYS[5], 120) end
  if used > rpm then
    if probe then redis.call('DEL', KEYS[3]) end
    return 'limited'
  end
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[4], math.ceil(tonumber(ARGV[3])) + 60)
if probe then return 'probe' end
return 'ok'
"""

# KEYS: window hash, open, half-open, probe, in-flight zset, this minute's health hash. ARGV: now (whole s), slot,
# outcome (ok | fail | none), was probe (1/0), window (s), min requests, failure ratio, cooldown (ms), latency bin
# field, health ttl (s). -> "closed" | "open" | "opened" | "reclosed"
_RELEASE = """
redis.call('ZREM', KEYS[5], ARGV[2])
local outcome = ARGV[3]
if outcome ~= 'none' then
  redis.call('HINCRBY', KEYS[6], 't', 1)
  if outcome == 'fail' then redis.call('HINCRBY', KEYS[6], 'f', 1) end
  redis.call('HINCRBY', KEYS[6], ARGV[9], 1)
  redis.call('EXPIRE', KEYS[6], ARGV[10])
end
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[4])
  if outcome == 'ok' then redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) return 'reclosed' end
  if outcome == 'fail' then
    redis.call('SET', KEYS[2], '1', 'PX', ARGV[8])
    redis.call('SET', KEYS[3], '1')
    return 'opened'
  end
  return 'open'
end
if outcome == 'none' then return 'closed' end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[5])
redis.call('HINCRBY', KEYS[1], now .. ':t', 1)
if outcome == 'fail' then redis.call('HINCRBY', KEYS[1], now .. ':f', 1) end
redis.call('EXPIRE', KEYS[1], window * 2 + 1)
if outcome == 'ok' then return 'closed' end
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return 'open' end
local all = redis.call('HGETALL', KEYS[1])
local total, fails, stale = 0, 0, {}
for i = 1, #all, 2 do
  local field = all[i]
  local second = tonumber(string.match(field, '^(%d+):'))
  if second > now - window then
    if string.sub(field, -1) == 't' then total = total + tonumber(all[i + 1])
    else fails = fails + tonumber(all[i + 1]) end
  else
    table.insert(stale, field)
  end
end
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
if total >= tonumber(ARGV[6]) and fails / total >= tonumber(ARGV[7]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[8])
  redis.call('SET', KEYS[3], '1')
  redis.call('DEL', KEYS[1])
  return 'opened'
end
return 'closed'
"""

# KEYS: in-flight zsets. ARGV: now. -> counts
_INFLIGHT = """
local counts = {}
for i, key in ipairs(KEYS) do counts[i] = redis.call('ZCOUNT', key, '(' .. ARGV[1], '+inf') end
return counts
"""

# KEYS: open, half-open, window hash per deployment (3 each). ARGV: now, window -> {state, total, fails}...
_STATES = """
local out = {}
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS, 3 do
  local state = 'closed'
  if redis.call('EXISTS', KEYS[i]) == 1 then state = 'open'
  elseif redis.call('EXISTS', KEYS[i + 1]) == 1 then state = 'half_open' end
  local all = redis.call('HGETALL', KEYS[i + 2])
  local total, fails = 0, 0
  for j = 1, #all, 2 do
    local second = tonumber(string.match(all[j], '^(%d+):'))
    if second > now - window then
      if string.sub(all[j], -1) == 't' then total = total + tonumber(all[j + 1])
      else fails = fails + tonumber(all[j + 1]) end
    end
  end
  table.insert(out, state) table.insert(out, total) table.insert(out, fails)
end
return out
"""

# Run by SHA (EVALSHA): the body goes over the wire and through Redis's SHA-1 only after a Redis restart.
ACQUIRE, RELEASE, INFLIGHT, STATES = (core_redis.Script(s) for s in (_ACQUIRE, _RELEASE, _INFLIGHT, _STATES))


@dataclass(frozen=True)
class Slot:
    """A taken place on a deployment: give it back with `release` / `arelease`."""

    deployment_id: int
    label: str
    token: str
    probe: bool = False
    redis_ok: bool = True  # False: Redis was down at acquire (nothing to give back)
    started: float = 0.0  # perf_counter at acquire: the attempt's latency for the live health counters


@dataclass(frozen=True)
class BreakerState:
    deployment_id: int
    state: str  # closed | open | half_open | unknown (Redis unreachable)
    calls: int  # outcomes in the current window
    failures: int

    @property
    def failure_ratio(self) -> float | None:
        return self.failures / self.calls if self.calls else None


def health_key(deployment_id: int, minute: int) -> str:
    """The hash of one deployment's ended attempts in one UTC minute: t (total), f (failures), b<bin> (latency
    bins, apps/costs/rollups.token_bin of the milliseconds); read by apps/llm/health.py."""
    return f"{core_redis.key('llm', 'dep', deployment_id)}:health:{minute}"


def _keys(deployment_id: int) -> dict[str, str]:
    base = core_redis.key("llm", "dep", deployment_id)
    minute = int(time.time() // 60)
    return {"window": f"{base}:window", "open": f"{base}:open", "half": f"{base}:half", "probe": f"{base}:probe",
            "inflight": f"{base}:inflight", "rpm": f"{base}:rpm:{minute}", "health": f"{base}:health:{minute}"}


def _acquire_args(target, token: str) -> tuple[list[str], list]:
    keys = _keys(target.deployment_id)
    ttl = settings.LLM_INFLIGHT_TTL_SECONDS
    return ([keys["open"], keys["half"], keys["probe"], keys["inflight"], keys["rpm"]],
            [time.time(), token, ttl, target.max_concurrency or 0, target.rpm_limit or 0, int(ttl * 1000)])


def _release_args(slot: Slot, outcome: str) -> tuple[list[str], list]:
    keys = _keys(slot.deployment_id)
    latency_ms = round((time.perf_counter() - slot.started) * 1000) if slot.started else 0
    return ([keys["window"], keys["open"], keys["half"], keys["probe"], keys["inflight"], keys["health"]],
            [int(time.time()), slot.token, outcome, "1" if slot.probe else "0", settings.LLM_BREAKER_WINDOW_SECONDS,
             settings.LLM_BREAKER_MIN_REQUESTS, settings.LLM_BREAKER_FAILURE_RATIO,
             int(settings.LLM_BREAKER_COOLDOWN_SECONDS * 1000), f"b{token_bin(latency_ms)}",
             settings.LLM_HEALTH_WINDOW_MINUTES * 60 + 120])


def _acquired(target, token: str, answer) -> Slot | str:
    answer = answer.decode() if isinstance(answer, bytes) else str(answer)
    if answer in ("ok", "probe"):
        return Slot(deployment_id=target.deployment_id, label=target.deployment, token=token, probe=answer == "probe",
                    started=time.perf_counter())
    metrics.DEPLOYMENT_SKIPS.labels(target.deployment, answer).inc()
    if answer == "open":
        metrics.BREAKER_OPEN.labels(target.deployment).set(1)
    return answer


def _released(slot: Slot, outcome: str, answer) -> str:
    answer = answer.decode() if isinstance(answer, bytes) else str(answer)
    metrics.DEPLOYMENT_ATTEMPTS.labels(slot.label, outcome).inc()
    if answer == "opened":
        log.warning("circuit breaker of deployment %s opened", slot.label)
        metrics.BREAKER_TRANSITIONS.labels(slot.label, OPEN).inc()
        metrics.BREAKER_OPEN.labels(slot.label).set(1)
    elif answer == "reclosed":
        log.info("circuit breaker of deployment %s closed after a good probe", slot.label)
        metrics.BREAKER_TRANSITIONS.labels(slot.label, CLOSED).inc()
        metrics.BREAKER_OPEN.labels(slot.label).set(0)
    return answer


def _down(what: str) -> None:
    log.warning("breakers: Redis unreachable (%s); deployments are used without breakers or limits", what,
                exc_info=True)


def acquire(target) -> Slot | str:
    """A slot on `target`'s deployment, or why not: "open" (breaker), "busy" (max_concurrency), "limited" (rpm)."""
    token = uuid.uuid4().hex
    keys, args = _acquire_args(target, token)
    try:
        answer = ACQUIRE.run(keys, args)
    except Exception:  # noqa: BLE001 - fail open
        _down("acquire")
        return Slot(deployment_id=target.deployment_id, label=target.deployment, token=token, redis_ok=False)
    return _acquired(target, token, answer)


async def aacquire(target) -> Slot | str:
    token = uuid.uuid4().hex
    keys, args = _acquire_args(target, token)
    try:
        answer = await ACQUIRE.arun(keys, args)
    except Exception:  # noqa: BLE001
        _down("acquire")
        return Slot(deployment_id=target.deployment_id, label=target.deployment, token=token, redis_ok=False)
    return _acquired(target, token, answer)


def release(slot: Slot, outcome: str) -> None:
    """Give the slot back; `outcome` "ok", "fail" (counts against the breaker) or "none" (not the deployment's
    fault: a bad request, a cancelled stream)."""
    if not slot.redis_ok:
        return
    keys, args = _release_args(slot, outcome)
    try:
        _released(slot, outcome, RELEASE.run(keys, args))
    except Exception:  # noqa: BLE001
        _down("release")


async def arelease(slot: Slot, outcome: str) -> None:
    if not slot.redis_ok:
        return
    keys, args = _release_args(slot, outcome)
    try:
        _released(slot, outcome, await RELEASE.arun(keys, args))
    except Exception:  # noqa: BLE001
        _down("release")


def _inflight_args(targets) -> tuple[list[str], list]:
    return [_keys(t.deployment_id)["inflight"] for t in targets], [time.time()]


def inflight(targets) -> list[int]:
    """Calls in flight on each target's deployment (zeros when Redis is unreachable)."""
    keys, args = _inflight_args(targets)
    try:
        return [int(n) for n in INFLIGHT.run(keys, args)]
    except Exception:  # noqa: BLE001
        _down("in flight")
        return [0] * len(targets)


async def ainflight(targets) -> list[int]:
    keys, args = _inflight_args(targets)
    try:
        return [int(n) for n in await INFLIGHT.arun(keys, args)]
    except Exception:  # noqa: BLE001
        _down("in flight")
        return [0] * len(targets)


def states(deployment_ids: list[int]) -> dict[int, BreakerState]:
    """Each deployment's breaker state and window counts, for pages (one round trip)."""
    if not deployment_ids:
        return {}
    keys = []
    for pk in deployment_ids:
        k = _keys(pk)
        keys += [k["open"], k["half"], k["window"]]
    try:
        raw = STATES.run(keys, [int(time.time()), settings.LLM_BREAKER_WINDOW_SECONDS])
    except Exception:  # noqa: BLE001
        _down("states")
        return {pk: BreakerState(pk, "unknown", 0, 0) for pk in deployment_ids}
    out = {}
    for i, pk in enumerate(deployment_ids):
        state, total, fails = raw[3 * i: 3 * i + 3]
        out[pk] = BreakerState(pk, state.decode() if isinstance(state, bytes) else state, int(total), int(fails))
    return out


def reset(deployment_id: int) -> None:
    """Forget a deployment's breaker, in-flight, rate and live health state (tests; an admin's "close the breaker")."""
    keys = _keys(deployment_id)
    minute = int(time.time() // 60)
    health = [health_key(deployment_id, m) for m in range(minute - settings.LLM_HEALTH_WINDOW_MINUTES - 1, minute + 1)]
    core_redis.client().delete(keys["window"], keys["open"], keys["half"], keys["probe"], keys["inflight"],
                               keys["rpm"], *health)
