"""The gateway's side of the response cache (ADR 0074, ADR 0099): who opts in. The cache itself is the call path's
(apps/llm/cache.py): lookup, store, the replay of a stream and the hit's usage event happen there, for the
gateway and the portal's own calls alike.

Opt-in: per key (`GatewayKey.cache_enabled`, its TTL `cache_ttl_seconds` and `cache_sampled` policy) or per
request with the header `X-Portal-Cache: use`; `X-Portal-Cache: no-store` keeps one request out of it (no
lookup, no store) even on a key that has it on. The entries are the key's team's (the call's UsageContext). A
hit counts as a request for the key's request limits (admission ran before the call) but moves no token or dollar
limit and no budget (the call path looks up before the budget hook).

Who decides, first rule that applies (docs/gateway.md "Response cache"; ADR 0082):
1. `X-Portal-Cache: no-store` on the request: no cache;
2. an output scan on the key (the caller passes no policy: a scanned answer is not replayed);
3. a prompt-by-reference request: the version's config `"cache"` alone, exactly as the portal's own calls of that
   version (its TTL and sampled setting; off when the version does not opt in, whatever the key or a `use` says);
4. any other request: the key's `cache_enabled` or `X-Portal-Cache: use`, with the key's TTL and sampled policy.
"""

from __future__ import annotations

import dataclasses

from apps.core import metrics
from apps.gateway.keys import KeyInfo
from apps.gateway.wire import GatewayError
from apps.llm.cache import CachePolicy

HEADER = b"x-portal-cache"
USE, NO_STORE = "use", "no-store"
NOT_A_PROMPT = object()  # policy_for's default: the request names a model or alias, not a prompt version


def asked(headers: dict) -> str:
    """The request's own wish: "", "use" or "no-store" (anything else is a 400)."""
    value = headers.get(HEADER, b"").decode("latin-1").strip().lower()
    if value not in ("", USE, NO_STORE):
        raise GatewayError(400, f"X-Portal-Cache must be '{USE}' or '{NO_STORE}', not {value[:40]!r}.",
                           code="invalid_cache_header")
    return value


def _counter(endpoint: str):
    return lambda result: metrics.labelled(metrics.GATEWAY_CACHE, endpoint, result).inc()


def policy_for(info: KeyInfo, headers: dict, endpoint: str, *, version_cache=NOT_A_PROMPT) -> CachePolicy | None:
    """The call path's cache policy for this request (None: it does not use the cache); raises a 400 for a bad
    X-Portal-Cache header. `version_cache`: for a prompt-by-reference request, the version's config "cache"
    (None when it does not opt in), which then decides instead of the key (the module's order of precedence)."""
    wish = asked(headers)
    if wish == NO_STORE:
        return None
    if version_cache is not NOT_A_PROMPT:
        policy = CachePolicy.from_config(version_cache)  # the portal's own calls read the version the same way
        return None if policy is None else dataclasses.replace(policy, counted=_counter(endpoint))
    if not (info.cache_enabled or wish == USE):
        return None
    return CachePolicy(ttl_seconds=info.cache_ttl_seconds, sampled=info.cache_sampled, counted=_counter(endpoint))
