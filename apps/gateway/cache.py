"""The gateway's exact response cache (ADR 0074): an answer stored in Redis, replayed for the same request.

Opt-in: per key (`GatewayKey.cache_enabled`, its TTL `cache_ttl_seconds` and `cache_sampled` policy) or per
request with the header `X-Portal-Cache: use`; `X-Portal-Cache: no-store` keeps one request out of it (no
lookup, no store) even on a key that has it on. The entry's name is the SHA-256 of the canonical JSON of

    team · alias (the `model` asked for) · prompt version id (None until prompt-by-reference sets it) ·
    operation · the normalised request: messages and every parameter that changes the answer
    (temperature, max_tokens, response_format, tools, top_p, stop, seed, …), not `user`, `metadata`,
    `stream` or `stream_options`

under a Redis key that names the team too (`<prefix>:gateway:cache:<team id>:<digest>`): a team never reads
another team's answer. Stored only after a complete, successful call: never an error, a cut or cancelled
stream, nor a sampled request (temperature > 0, or unset: OpenAI's default is 1) unless the key's policy
allows it. A plain and a streamed request share the entry: a hit answers plain requests with the stored
completion and replays stream requests as a stream (role chunk, the text, the last chunk, the usage chunk only
when asked, `[DONE]`). Embeddings are cached by the same rules (they are not sampled).

A hit is one usage event (cache_hit, no tokens, cost 0, `cache_saving` = what the answer cost when it was
made): it counts as a request for the key's request limits (admission ran before the lookup) but moves no
token or dollar limit and no budget. Redis failing is logged and the request goes upstream (fail open: the
cache is an optimisation, never a gate).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal

import redis
from django.conf import settings

from apps.core import metrics
from apps.core import redis as portal_redis
from apps.costs.models import CallStatus, Operation
from apps.costs.pricing import TokenCounts
from apps.costs.services import UsageContext
from apps.gateway import wire
from apps.gateway.keys import KeyInfo
from apps.gateway.wire import ChatCall, GatewayError
from apps.llm.results import CallRecord, ChatResult, EmbeddingResult, ToolCall, Usage

log = logging.getLogger(__name__)

HEADER = b"x-portal-cache"
USE, NO_STORE = "use", "no-store"
VERSION = 1  # of the key's recipe and the entry's shape: bump it to leave old entries unread
IGNORED_PARAMETERS = frozenset({"user"})  # pass-through parameters that do not change the answer


@dataclass
class Lookup:
    """One request's use of the cache: where its entry lives, for how long, and what was found."""

    endpoint: str
    key: str
    ttl: int
    started: float
    entry: dict | None = None

    @property
    def hit(self) -> bool:
        return self.entry is not None


# -- who may use it, and under which name -------------------------------------------------------------------
def asked(headers: dict) -> str:
    """The request's own wish: "", "use" or "no-store" (anything else is a 400)."""
    value = headers.get(HEADER, b"").decode("latin-1").strip().lower()
    if value not in ("", USE, NO_STORE):
        raise GatewayError(400, f"X-Portal-Cache must be '{USE}' or '{NO_STORE}', not {value[:40]!r}.",
                           code="invalid_cache_header")
    return value


def sampled(temperature) -> bool:
    """Whether the answer is drawn at random: temperature above 0, or unset (the providers' default is 1).
    Not a number: treated as sampled (the call path refuses it with a 400)."""
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return True
    return temperature > 0


def _plain(value):
    """Canonical numbers: 0.0 and 0 (or 1.0 and 1) name the same request."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def entry_key(*, team_id: int, alias: str, operation: str, request: dict,
              prompt_version_id: int | str | None = None) -> str:
    """The Redis key of an entry: the team in its name, and a digest of everything that makes the answer."""
    recipe = {"v": VERSION, "team": team_id, "alias": alias, "prompt_version_id": prompt_version_id,
              "operation": operation, "request": _plain(request)}
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return portal_redis.key("gateway", "cache", team_id, hashlib.sha256(canonical.encode()).hexdigest())


def chat_request_normalised(call: ChatCall) -> dict:
    request = call.request
    extra = {k: v for k, v in request.extra.items() if k not in IGNORED_PARAMETERS}
    return {"messages": request.messages, "temperature": request.temperature, "max_tokens": request.max_tokens,
            "response_format": request.response_format, "tools": request.tools, "extra": extra}


def _enabled(info: KeyInfo, headers: dict) -> bool:
    wish = asked(headers)
    return wish != NO_STORE and (info.cache_enabled or wish == USE)


def _ttl(info: KeyInfo) -> int:
    return info.cache_ttl_seconds or settings.GATEWAY_CACHE_TTL_SECONDS


async def _find(endpoint: str, key: str, ttl: int) -> Lookup:
    lookup = Lookup(endpoint=endpoint, key=key, ttl=ttl, started=time.perf_counter())
    try:
        raw = await portal_redis.async_client().get(key)
        entry = json.loads(raw) if raw is not None else None
        lookup.entry = entry if isinstance(entry, dict) and entry.get("v") == VERSION else None
    except (redis.RedisError, ValueError):
        log.warning("gateway cache lookup failed: the request goes upstream", exc_info=True)
    metrics.GATEWAY_CACHE.labels(endpoint, "hit" if lookup.hit else "miss").inc()
    return lookup


async def chat_lookup(info: KeyInfo, headers: dict, call: ChatCall, *,
                      prompt_version_id: int | str | None = None) -> Lookup | None:
    """The cache's answer for a chat request, or None when the request may not use the cache."""
    if not _enabled(info, headers) or (sampled(call.request.temperature) and not info.cache_sampled):
        return None
    key = entry_key(team_id=info.team_id, alias=call.model, operation=Operation.CHAT,
                    request=chat_request_normalised(call), prompt_version_id=prompt_version_id)
    return await _find("/v1/chat/completions", key, _ttl(info))


async def embeddings_lookup(info: KeyInfo, headers: dict, *, model: str, texts: list[str],
                            prompt_version_id: int | str | None = None) -> Lookup | None:
    """The cache's answer for an embeddings request (the encoding is a rendering: not part of the key)."""
    if not _enabled(info, headers):
        return None
    key = entry_key(team_id=info.team_id, alias=model, operation=Operation.EMBEDDING, request={"input": texts},
                    prompt_version_id=prompt_version_id)
    return await _find("/v1/embeddings", key, _ttl(info))


# -- storing a complete answer ---------------------------------------------------------------------------------
def _who(result: ChatResult | EmbeddingResult) -> dict:
    return {"model": result.model, "provider": result.provider, "alias": result.alias,
            "deployment": result.deployment, "cost": None if result.cost is None else str(result.cost),
            "usage": dataclasses.asdict(result.usage)}


async def _put(lookup: Lookup, entry: dict) -> None:
    payload = json.dumps({"v": VERSION, **entry}, separators=(",", ":")).encode()
    if len(payload) > settings.GATEWAY_CACHE_MAX_ENTRY_BYTES:
        return
    try:
        await portal_redis.async_client().set(lookup.key, payload, ex=lookup.ttl)
    except redis.RedisError:
        log.warning("gateway cache store failed: the answer is served, not cached", exc_info=True)
        return
    metrics.GATEWAY_CACHE.labels(lookup.endpoint, "stored").inc()


async def chat_store(lookup: Lookup | None, result: ChatResult) -> None:
    """Keep a complete, successful chat answer (the caller calls this only after one)."""
    if lookup is None or lookup.hit or result.finish_reason == "cancelled":
        return
    await _put(lookup, {**_who(result), "text": result.text, "finish_reason": result.finish_reason,
                        "refusal": result.refusal,
                        "tool_calls": [[t.id, t.name, t.arguments] for t in result.tool_calls]})


async def embeddings_store(lookup: Lookup | None, result: EmbeddingResult) -> None:
    if lookup is None or lookup.hit:
        return
    await _put(lookup, {**_who(result), "vectors": result.vectors})


# -- answering from it -----------------------------------------------------------------------------------------
def _saving(entry: dict) -> Decimal | None:
    return None if entry.get("cost") is None else Decimal(entry["cost"])


def chat_result(entry: dict, request_id: str) -> ChatResult:
    """The stored answer as the call path's result (what wire.py renders), at no cost."""
    return ChatResult(text=entry["text"], model=entry["model"], provider=entry["provider"],
                      usage=Usage(**entry["usage"]), latency_ms=0, cost=Decimal(0),
                      finish_reason=entry.get("finish_reason"), usage_event_id=None, request_id=request_id,
                      tool_calls=tuple(ToolCall(*t) for t in entry.get("tool_calls") or ()),
                      refusal=entry.get("refusal"), deployment=entry.get("deployment", ""))


async def record_hit(lookup: Lookup, *, context: UsageContext, operation: str, recorder,
                     ttft_ms: int | None = None) -> None:
    """The hit's one usage event: no tokens, no provider cost, the saving; before the answer's last bytes."""
    entry = lookup.entry
    elapsed = max(0, round((time.perf_counter() - lookup.started) * 1000))
    await recorder(CallRecord(request_id=context.request_id, context=context, provider=entry["provider"],
                              model=entry["model"], price_name=None, operation=operation, tokens=TokenCounts(),
                              status=CallStatus.OK, latency_ms=elapsed, ttft_ms=ttft_ms,
                              deployment=entry.get("deployment", ""), alias=entry.get("alias", ""), cache_hit=True,
                              cache_saving=_saving(entry)))


async def chat_answer(lookup: Lookup, *, request, call: ChatCall, send, reply, context: UsageContext, recorder,
                      completion_id: str) -> None:
    """Answer a chat request from its entry: the completion (`reply(send, status, body, headers)`), or the
    stream replayed. `request` is the front door's Request (its headers now say hit)."""
    request.cache = b"hit"
    result = chat_result(lookup.entry, request.request_id)
    if not call.stream:
        body = wire.completion(result, model=call.model, completion_id=completion_id)
        await record_hit(lookup, context=context, operation=Operation.CHAT, recorder=recorder)
        await reply(send, 200, body, request.response_headers())
        return
    created = int(time.time())
    parts = [{"role": "assistant", "content": ""}] + ([{"content": result.text}] if result.text else [])
    head = b"".join(wire.chunk(completion_id=completion_id, model=call.model, created=created, delta=delta,
                               include_usage=call.include_usage) for delta in parts)
    await send({"type": "http.response.start", "status": 200,
                "headers": request.response_headers(b"text/event-stream", [(b"cache-control", b"no-cache")])})
    await send({"type": "http.response.body", "body": head, "more_body": True})
    ttft = max(0, round((time.perf_counter() - lookup.started) * 1000))
    await record_hit(lookup, context=context, operation=Operation.CHAT, recorder=recorder, ttft_ms=ttft)
    tail = wire.final_chunks(result, completion_id=completion_id, model=call.model, created=created,
                             include_usage=call.include_usage)
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def embeddings_answer(lookup: Lookup, *, request, model: str, encoding: str, send, reply,
                            context: UsageContext, recorder) -> None:
    request.cache = b"hit"
    entry = lookup.entry
    result = EmbeddingResult(vectors=entry["vectors"], model=entry["model"], provider=entry["provider"],
                             usage=Usage(**entry["usage"]), latency_ms=0, cost=Decimal(0), usage_event_id=None,
                             request_id=request.request_id)
    body = wire.embeddings(result, model=model, encoding=encoding)
    await record_hit(lookup, context=context, operation=Operation.EMBEDDING, recorder=recorder)
    await reply(send, 200, body, request.response_headers())
