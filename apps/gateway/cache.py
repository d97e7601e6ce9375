"""The gateway's side of the response cache (ADR 0074, ADR 0099): who opts in. The cache itself is the call path's
(apps/llm/cache.py): lookup, store, the replay of a stream and the hit's usage event happen there, for the
gateway and the portal's own calls alike.

Opt-in: per key (`GatewayKey.cache_enabled`, its TTL `cache_ttl_seconds` and `cache_sampled` policy) or per
request with the header `X-Portal-Cache: use`; `X-Portal-Cache: no-store` keeps one request out of it (no
lookup, no store) even on a key that has it on. The entries are the key's team's (the call's UsageContext). A
hit counts as a request for the key's request limits (admission ran before the call) but moves no token or dollar
limit and no budget (the call path looks up before the budget hook).
"""

from __future__ import annotations

from apps.core import metrics
from apps.gateway.keys import KeyInfo
from apps.gateway.wire import GatewayError
from apps.llm.cache import CachePolicy

HEADER = b"x-portal-cache"
USE, NO_STORE = "use", "no-store"


def asked(headers: dict) -> str:
    """The request's own wish: "", "use" or "no-store" (anything else is a 400)."""
    value = headers.get(HEADER, b"").decode("latin-1").strip().lower()
    if value not in ("", USE, NO_STORE):
        raise GatewayError(400, f"X-Portal-Cache must be '{USE}' or '{NO_STORE}', not {value[:40]!r}.",
                           code="invalid_cache_header")
    return value


def _counter(endpoint: str):
    return lambda result: metrics.labelled(metrics.GATEWAY_CACHE, endpoint, result).inc()


def policy_for(info: KeyInfo, headers: dict, endpoint: str) -> CachePolicy | None:
    """The call path's cache policy for this request (None: it does not use the cache); raises a 400 for a bad
    X-Portal-Cache header."""
    wish = asked(headers)
    if wish == NO_STORE or not (info.cache_enabled or wish == USE):
        return None
    return CachePolicy(ttl_seconds=info.cache_ttl_seconds, sampled=info.cache_sampled, counted=_counter(endpoint))
