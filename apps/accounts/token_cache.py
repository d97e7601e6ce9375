"""A short-lived Redis cache of bearer-token lookups, so a warm API call needs no database round trip.

Every API request authenticates, and the lookup (token, user, team, role) plus Django's connection health
check were two database round trips: ~0.6 ms of a ~2 ms prompt resolve. An entry is stored with the
*auth generation* it was read under, and both are fetched in one MGET (apps/core/stamped_cache.py, as the
prompt resolve cache does). Any saved or deleted token,
membership, user or team moves the generation (immediately, and again when the transaction commits, so a
request that read the old rows in between cannot leave a stale entry behind): the next request reads the
database. Expiry is checked on every request from the entry's own `expires_at`. A change made behind
Django's back (raw SQL, `QuerySet.update`) is seen within ENTRY_TTL at the latest.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from apps.accounts.models import ApiToken, Membership, Team
from apps.core.stamped_cache import new_stamp, stamped_get, stamped_set

log = logging.getLogger(__name__)
ENTRY_TTL = 60  # seconds
_GENERATION = "accounts:auth-generation"
_ENTRY = "accounts:token:{key_hash}"


def cached_token(key_hash: str, load):
    """The token for `key_hash` from the cache when its generation is current, else `load(key_hash)`."""
    # Unknown secrets are not cached: guessing must not fill the cache.
    return stamped_get(_GENERATION, _ENTRY.format(key_hash=key_hash), lambda: load(key_hash), timeout=ENTRY_TTL,
                       cacheable=lambda token: token is not None)


def remember(key_hash: str, token) -> None:
    """Store `token` again (e.g. after its last use was recorded) under the current generation."""
    stamped_set(_GENERATION, _ENTRY.format(key_hash=key_hash), token, timeout=ENTRY_TTL)


def _new_generation() -> None:
    try:
        cache.set(_GENERATION, new_stamp(), timeout=None)
    except Exception:
        log.warning("token cache unavailable: entries expire within %s s", ENTRY_TTL, exc_info=True)


def invalidate() -> None:
    _new_generation()
    transaction.on_commit(_new_generation)


def _changed(sender, instance=None, update_fields=None, **kwargs) -> None:
    # A login only stamps last_login; it changes nothing a token decision reads.
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    invalidate()


def connect_signals() -> None:
    for model in (ApiToken, Membership, get_user_model(), Team):
        post_save.connect(_changed, sender=model, dispatch_uid=f"token-cache-save-{model._meta.label}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"token-cache-delete-{model._meta.label}")
