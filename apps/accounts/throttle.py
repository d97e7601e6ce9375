"""Throttling of failed sign-ins and invalid API tokens (ADR 0090): failure counters in Redis.

Policy (settings in docs/configuration.md, "Sign-in and token throttling"):
- **Account.** LOGIN_FAILURE_LIMIT failed sign-ins for one username lock that username for
  LOGIN_LOCKOUT_SECONDS, counted from the failure that reached the limit; the right password is refused
  meanwhile. Attempts during a lockout are refused unchecked and do not extend it: it always ends.
- **Client address.** LOGIN_ADDRESS_FAILURE_LIMIT failed or refused sign-ins from one address, whatever the
  accounts, block that address for LOGIN_LOCKOUT_SECONDS. This is what keeps one attacker from locking
  everyone out: an address can lock at most LOGIN_ADDRESS_FAILURE_LIMIT / LOGIN_FAILURE_LIMIT accounts per
  lockout period, each for one period, and people signing in from other addresses are never blocked by it.
- **API tokens.** API_TOKEN_FAILURE_LIMIT rejected tokens (unknown, malformed, revoked, expired) from one
  address block bearer authentication from it for API_TOKEN_LOCKOUT_SECONDS: 429 with Retry-After.

The moment an account or an address becomes blocked is a state change: one audit event (services).
A success clears the account's counter, never the address's (else an attacker could interleave its own
account). If Redis is unreachable, nothing is throttled (a warning is logged): sign-in stays available.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings

from apps.core import redis as core_redis

log = logging.getLogger(__name__)
SOCKET_TIMEOUT_SECONDS = 2

# KEYS[1] counter; ARGV[1] limit, ARGV[2] lockout seconds. Counts one failure unless already at the limit
# (a blocked key is neither counted nor extended). Returns {count, ttl, became_blocked}.
_COUNT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
if count >= limit then
  return {count, redis.call('TTL', KEYS[1]), 0}
end
count = redis.call('INCR', KEYS[1])
if count == 1 or count >= limit then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return {count, redis.call('TTL', KEYS[1]), count >= limit and 1 or 0}
"""


@dataclass(frozen=True)
class Block:
    """Why a request is refused and for how long."""

    scope: str  # "account" or "address"
    retry_after: int  # seconds

    @property
    def minutes(self) -> int:
        return max(1, -(-self.retry_after // 60))


@dataclass(frozen=True)
class Counted:
    count: int
    newly_blocked: bool


def _redis():
    """The one pooled client, reading with a short timeout: a hung Redis fails sign-in open after 2 s, not 10."""
    return core_redis.client(socket_timeout=SOCKET_TIMEOUT_SECONDS)


def _key(kind: str, value: str) -> str:
    return core_redis.key("throttle", kind, hashlib.sha256(value.encode()).hexdigest()[:32])


def _account(username: str) -> str:
    return _key("login-account", (username or "").strip().lower())


def _address(kind: str, address: str | None) -> str:
    return _key(kind, address or "unknown")


def _blocked(pairs: list[tuple[str, str, int]]) -> Block | None:
    """The first (scope, key, limit) whose counter is at its limit, with the seconds it has left."""
    try:
        client = _redis()
        pipe = client.pipeline(transaction=False)
        for _scope, key, _limit in pairs:
            pipe.get(key)
            pipe.ttl(key)
        replies = pipe.execute()
    except Exception:  # noqa: BLE001 - availability over throttling when Redis is down
        log.warning("throttle unavailable: not throttling", exc_info=True)
        return None
    for index, (scope, _, limit) in enumerate(pairs):
        count, ttl = replies[2 * index], replies[2 * index + 1]
        if count is not None and int(count) >= limit and ttl and ttl > 0:
            return Block(scope=scope, retry_after=int(ttl))
    return None


def _count(key: str, limit: int, seconds: int) -> Counted:
    try:
        count, _ttl, became = _redis().eval(_COUNT, 1, key, limit, seconds)
    except Exception:  # noqa: BLE001
        log.warning("throttle unavailable: failure not counted", exc_info=True)
        return Counted(0, False)
    return Counted(int(count), bool(became))


# --- sign-in -----------------------------------------------------------------------------------------

def login_block(username: str, address: str | None) -> Block | None:
    return _blocked([("account", _account(username), settings.LOGIN_FAILURE_LIMIT),
                     ("address", _address("login-address", address), settings.LOGIN_ADDRESS_FAILURE_LIMIT)])


def login_failure(username: str, address: str | None, *, refused: bool = False) -> tuple[Counted, Counted]:
    """Count a failed (or refused) sign-in: (account, address). A refused one counts for the address only."""
    seconds = settings.LOGIN_LOCKOUT_SECONDS
    account = Counted(0, False) if refused else _count(_account(username), settings.LOGIN_FAILURE_LIMIT, seconds)
    by_address = _count(_address("login-address", address), settings.LOGIN_ADDRESS_FAILURE_LIMIT, seconds)
    return account, by_address


def login_success(username: str) -> None:
    try:
        _redis().delete(_account(username))
    except Exception:  # noqa: BLE001
        log.warning("throttle unavailable: counter not cleared", exc_info=True)


# --- API tokens --------------------------------------------------------------------------------------

def token_block(address: str | None) -> Block | None:
    return _blocked([("address", _address("token-address", address), settings.API_TOKEN_FAILURE_LIMIT)])


def token_failure(address: str | None) -> Counted:
    return _count(_address("token-address", address), settings.API_TOKEN_FAILURE_LIMIT,
                  settings.API_TOKEN_LOCKOUT_SECONDS)


def reset() -> None:
    """Forget every counter of this deployment's prefix (tests; an operator unlocking everyone)."""
    client = _redis()
    keys = list(client.scan_iter(match=core_redis.key("throttle", "*"), count=500))
    if keys:
        client.delete(*keys)
