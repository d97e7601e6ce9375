"""Key material and the hot-path key lookup.

A secret is `pk-gw-<key_id>-<random>`: `key_id` (8 hex) is public, the whole secret's SHA-256 is stored. The
front door looks a key up by that hash in a per-process dict, valid only while the gateway's *stamp* in Redis
is the one it was read under. Every service that changes a key (revoke, rotate, limits) moves the stamp after
commit, and every request reads it (one GET, or in the limits' pipeline: limits.stamp_and_count), so a change
takes effect on the next request in every process.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from apps.core import redis as portal_redis
from apps.gateway.models import GatewayKey

_SHAPE = re.compile(r"^pk-gw-[0-9a-f]{8}-[A-Za-z0-9_-]{30,}$")
_CACHE_MAX = 10_000


def new_secret() -> tuple[str, str]:
    """(key_id, secret) for a new key."""
    key_id = secrets.token_hex(4)
    return key_id, f"{GatewayKey.PREFIX}{key_id}-{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def well_formed(secret: str) -> bool:
    return bool(_SHAPE.match(secret))


def stamp_key() -> str:
    return portal_redis.key("gateway", "stamp")


def stamp_bump() -> None:
    """Invalidate every process's cached keys and admission answers (call after commit)."""
    portal_redis.client().incr(stamp_key())


async def stamp_read() -> bytes:
    return await portal_redis.async_client().get(stamp_key()) or b"0"


@dataclass(frozen=True)
class KeyInfo:
    """What the front door needs of a key: plain values, safe to cache across requests. Never the secret."""

    id: int
    prefix: str
    team_id: int
    feature: str
    use_case_id: int | None
    allowed_aliases: tuple[str, ...]
    requests_per_minute: int | None
    requests_per_day: int | None
    tokens_per_minute: int | None
    tokens_per_day: int | None
    dollars_per_day: Decimal | None
    expires_at: datetime | None
    revoked_at: datetime | None
    overlap_ends_at: datetime | None
    cache_enabled: bool
    store_bodies: bool
    cache_ttl_seconds: int | None = None
    cache_sampled: bool = False
    body_sample_percent: int = 100
    # The key's own guardrail policy (apps/gateway/guard.py); a use case's may be stricter.
    guard_input_pii: str = "allow"
    guard_injection: str = "off"
    guard_output: str = "off"
    guard_event_content: str = "none"

    @classmethod
    def of(cls, key: GatewayKey) -> KeyInfo:
        return cls(id=key.pk, prefix=key.prefix, team_id=key.team_id, feature=key.feature,
                   use_case_id=key.use_case_id, allowed_aliases=tuple(key.allowed_aliases or ()),
                   requests_per_minute=key.requests_per_minute, requests_per_day=key.requests_per_day,
                   tokens_per_minute=key.tokens_per_minute, tokens_per_day=key.tokens_per_day,
                   dollars_per_day=key.dollars_per_day, expires_at=key.expires_at, revoked_at=key.revoked_at,
                   overlap_ends_at=key.overlap_ends_at, cache_enabled=key.cache_enabled,
                   store_bodies=key.store_bodies, cache_ttl_seconds=key.cache_ttl_seconds,
                   cache_sampled=key.cache_sampled, body_sample_percent=key.body_sample_percent,
                   guard_input_pii=key.guard_input_pii, guard_injection=key.guard_injection,
                   guard_output=key.guard_output, guard_event_content=key.guard_event_content)

    def refusal(self, now: datetime | None = None) -> str | None:
        """Why this key may not be used now, or None."""
        if self.revoked_at is None and self.expires_at is None and self.overlap_ends_at is None:
            return None  # the common case, asked twice per request: no clock read
        now = now or timezone.now()
        if self.revoked_at is not None:
            return f"This gateway key ({self.prefix}) was revoked on {self.revoked_at:%Y-%m-%d %H:%M} UTC."
        if self.expires_at is not None and self.expires_at <= now:
            return f"This gateway key ({self.prefix}) expired on {self.expires_at:%Y-%m-%d %H:%M} UTC."
        if self.overlap_ends_at is not None and self.overlap_ends_at <= now:
            return f"This gateway key ({self.prefix}) was rotated; its overlap window has ended. Use the new key."
        return None

    def allows(self, alias: str) -> bool:
        return not self.allowed_aliases or alias in self.allowed_aliases


def key_info_load(key_hash: str) -> KeyInfo | None:
    """One indexed query (sync: the front door runs it in a thread on a cache miss)."""
    key = GatewayKey.objects.filter(key_hash=key_hash).first()
    return KeyInfo.of(key) if key is not None else None


class KeyCache:
    """hash -> (stamp, KeyInfo | None) in this process; unknown hashes are cached too (bounded)."""

    def __init__(self):
        self._entries: dict[str, tuple[bytes, KeyInfo | None]] = {}

    def get(self, key_hash: str, stamp: bytes) -> tuple[bool, KeyInfo | None]:
        entry = self._entries.get(key_hash)
        if entry is not None and entry[0] == stamp:
            return True, entry[1]
        return False, None

    def latest(self, key_hash: str) -> tuple[bytes, KeyInfo | None] | None:
        """(stamp, info) as last cached, whatever the stamp is now (limits.stamp_and_count confirms it)."""
        return self._entries.get(key_hash)

    def put(self, key_hash: str, stamp: bytes, info: KeyInfo | None) -> None:
        if len(self._entries) >= _CACHE_MAX:
            self._entries.clear()  # a flood of random keys must not grow memory; real keys reload in one query
        self._entries[key_hash] = (stamp, info)

    def clear(self) -> None:
        self._entries.clear()
