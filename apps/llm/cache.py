"""The call path's exact response cache (ADR 0074; moved here from the gateway by ADR 0099): an answer stored in
Redis, replayed for the same request, for every caller of the one call path (calls.py and acalls.py).

Opt-in per call: `chat(..., cache=CachePolicy(...))` (and chat_stream, embed, achat, achat_stream, aembed). No
policy, no cache. The gateway builds the policy from its key and the `X-Portal-Cache` header
(apps/gateway/cache.py); the portal's own callers from the prompt version's config (`"cache"`,
`CachePolicy.from_config`). The entry's name is the SHA-256 of the canonical JSON of

    team (the call's UsageContext.team_id) · the model or alias asked for · the prompt version (the context's
    prompt name and version, when it has them) · operation · the normalised request: messages and every
    parameter that changes the answer (temperature, max_tokens, response_format, tools, top_p, stop, seed, …),
    not `user`, `metadata`, `stream` or `stream_options`

under a Redis key that names the team too (`<prefix>:gateway:cache:<team id>:<digest>`, the name it had in the
gateway, so entries made before the move stay readable): a team never reads another team's answer, and a call
without a team is never cached. Looked up after the route and the request's checks, before the budget check (a
hit reserves nothing); stored only after a complete, successful call: never an error, a cut or cancelled stream,
nor a sampled request (temperature > 0, or unset: OpenAI's default is 1) unless the policy allows it. A plain
and a streamed call share the entry: a stream hit is replayed as the text in one delta, then the end.

A hit is the call's one record (cache_hit, no tokens, cost 0, `cache_saving` = what the answer cost when it was
made), recorded like any call (the ledger at once, or the async caller's recorder); its result carries the
original usage and `cache_hit=True`. Redis failing is logged and the call goes upstream (fail open: the cache is
an optimisation, never a gate).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import orjson
import redis
from django.conf import settings

from apps.core import redis as portal_redis
from apps.costs.models import CallStatus, Operation
from apps.costs.pricing import TokenCounts
from apps.costs.services import UsageContext
from apps.llm.results import (
    CallRecord,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ProviderChat,
    StreamDelta,
    ToolCall,
    Usage,
)

log = logging.getLogger(__name__)

VERSION = 1  # of the key's recipe and the entry's shape: bump it to leave old entries unread
IGNORED_PARAMETERS = frozenset({"user"})  # pass-through parameters that do not change the answer
MAX_TTL_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class CachePolicy:
    """A caller's opt-in: how long entries live (None: GATEWAY_CACHE_TTL_SECONDS), whether sampled requests
    are cached too, and `counted`, told "hit", "miss" or "stored" (the gateway's metric)."""

    ttl_seconds: int | None = None
    sampled: bool = False
    counted: Callable[[str], None] | None = None

    @classmethod
    def from_config(cls, value) -> CachePolicy | None:
        """A prompt version's `config["cache"]` (prompts' normalise_config checked it): true, or
        {"ttl_seconds": N, "sampled": bool}; anything else (absent, false) is no cache."""
        if value is True:
            return cls()
        if isinstance(value, dict):
            ttl = value.get("ttl_seconds")
            return cls(ttl_seconds=ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None,
                       sampled=value.get("sampled") is True)
        return None

    def count(self, result: str) -> None:
        if self.counted is not None:
            self.counted(result)


@dataclass
class Lookup:
    """One call's use of the cache: where its entry lives, for how long, and what was found."""

    policy: CachePolicy
    key: str
    ttl: int
    started: float
    entry: dict | None = None

    @property
    def hit(self) -> bool:
        return self.entry is not None


# -- who may use it, and under which name -------------------------------------------------------------------
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


def chat_request_normalised(request: ChatRequest) -> dict:
    extra = {k: v for k, v in request.extra.items() if k not in IGNORED_PARAMETERS}
    return {"messages": request.messages, "temperature": request.temperature, "max_tokens": request.max_tokens,
            "response_format": request.response_format, "tools": request.tools, "extra": extra}


def _prompt_version(context: UsageContext) -> str | None:
    return f"{context.prompt_name}@{context.prompt_version}" if context.prompt_name else None


def _lookup(policy: CachePolicy, context: UsageContext, model: str, operation: str, request: dict) -> Lookup:
    key = entry_key(team_id=context.team_id, alias=model, operation=operation, request=request,
                    prompt_version_id=_prompt_version(context))
    ttl = policy.ttl_seconds or settings.GATEWAY_CACHE_TTL_SECONDS
    return Lookup(policy=policy, key=key, ttl=max(1, min(int(ttl), MAX_TTL_SECONDS)), started=time.perf_counter())


def chat_lookup(policy: CachePolicy | None, context: UsageContext, model: str, request: ChatRequest) -> Lookup | None:
    """Where a chat call's entry would be, or None when the call may not use the cache (not yet read)."""
    if policy is None or context.team_id is None or (sampled(request.temperature) and not policy.sampled):
        return None
    return _lookup(policy, context, model, Operation.CHAT, chat_request_normalised(request))


def embeddings_lookup(policy: CachePolicy | None, context: UsageContext, model: str,
                      texts: list[str]) -> Lookup | None:
    """Where an embeddings call's entry would be (embeddings are not sampled)."""
    if policy is None or context.team_id is None:
        return None
    return _lookup(policy, context, model, Operation.EMBEDDING, {"input": texts})


def _found(lookup: Lookup, raw: bytes | None) -> Lookup:
    entry = orjson.loads(raw) if raw is not None else None
    lookup.entry = entry if isinstance(entry, dict) and entry.get("v") == VERSION else None
    lookup.policy.count("hit" if lookup.hit else "miss")
    return lookup


def read(lookup: Lookup | None) -> Lookup | None:
    """The sync face: read the entry (a Redis failure is a miss)."""
    if lookup is not None:
        try:
            return _found(lookup, portal_redis.client().get(lookup.key))
        except (redis.RedisError, ValueError):
            log.warning("response cache lookup failed: the call goes upstream", exc_info=True)
            lookup.policy.count("miss")
    return lookup


async def aread(lookup: Lookup | None) -> Lookup | None:
    """The async face of read()."""
    if lookup is not None:
        try:
            return _found(lookup, await portal_redis.async_client().get(lookup.key))
        except (redis.RedisError, ValueError):
            log.warning("response cache lookup failed: the call goes upstream", exc_info=True)
            lookup.policy.count("miss")
    return lookup


# -- storing a complete answer ---------------------------------------------------------------------------------
def _payload(lookup: Lookup | None, result: ChatResult | EmbeddingResult) -> bytes | None:
    """The entry for a complete, successful answer (the call path asks only after one), or None: nothing to keep."""
    if lookup is None or lookup.hit:
        return None
    entry = {"v": VERSION, "model": result.model, "provider": result.provider, "alias": result.alias,
             "deployment": result.deployment, "cost": None if result.cost is None else str(result.cost),
             "usage": dataclasses.asdict(result.usage)}
    if isinstance(result, ChatResult):
        if result.finish_reason == "cancelled":
            return None
        entry.update(text=result.text, finish_reason=result.finish_reason, refusal=result.refusal,
                     tool_calls=[[t.id, t.name, t.arguments] for t in result.tool_calls])
    else:
        entry["vectors"] = result.vectors
    payload = orjson.dumps(entry)
    return payload if len(payload) <= settings.GATEWAY_CACHE_MAX_ENTRY_BYTES else None


def store(lookup: Lookup | None, result: ChatResult | EmbeddingResult) -> None:
    payload = _payload(lookup, result)
    if payload is None:
        return
    try:
        portal_redis.client().set(lookup.key, payload, ex=lookup.ttl)
    except redis.RedisError:
        log.warning("response cache store failed: the answer is served, not cached", exc_info=True)
        return
    lookup.policy.count("stored")


async def astore(lookup: Lookup | None, result: ChatResult | EmbeddingResult) -> None:
    payload = _payload(lookup, result)
    if payload is None:
        return
    try:
        await portal_redis.async_client().set(lookup.key, payload, ex=lookup.ttl)
    except redis.RedisError:
        log.warning("response cache store failed: the answer is served, not cached", exc_info=True)
        return
    lookup.policy.count("stored")


# -- answering from it -----------------------------------------------------------------------------------------
def hit_record(lookup: Lookup, *, context: UsageContext, operation: str, ttft_ms: int | None = None,
               price_name: str | None = None) -> CallRecord:
    """A hit's one record: no tokens, no provider cost, and the saving: the stored answer's tokens, which the ledger
    prices at the hit's time under `price_name` (the answering model's price name, when the caller knows it), else
    what the answer cost when it was made."""
    entry = lookup.entry
    elapsed = max(0, round((time.perf_counter() - lookup.started) * 1000))
    saving = None if entry.get("cost") is None else Decimal(entry["cost"])
    tokens = Usage(**entry["usage"]).token_counts() if price_name else None
    return CallRecord(request_id=context.request_id, context=context, provider=entry["provider"],
                      model=entry["model"], price_name=price_name, operation=operation, tokens=TokenCounts(),
                      status=CallStatus.OK, latency_ms=elapsed, ttft_ms=ttft_ms, deployment=entry.get("deployment", ""),
                      alias=entry.get("alias", ""), cache_hit=True, cache_saving=saving, cache_tokens=tokens)


def answer(entry: dict) -> ProviderChat:
    """The stored chat answer, as an adapter would have given it."""
    return ProviderChat(text=entry["text"], usage=Usage(**entry["usage"]), finish_reason=entry.get("finish_reason"),
                        tool_calls=tuple(ToolCall(*t) for t in entry.get("tool_calls") or ()),
                        refusal=entry.get("refusal"))


def replay(entry: dict) -> list[StreamDelta]:
    """A stream hit's pieces: the text in one delta (when there is text), then the answer."""
    stored = answer(entry)
    return ([StreamDelta(text=stored.text)] if stored.text else []) + [StreamDelta(final=stored)]


def chat_result(entry: dict, record: CallRecord, *, usage_event_id: int | None) -> ChatResult:
    """The stored answer as the call's result, at no cost (the usage is the original call's, as the body says)."""
    stored = answer(entry)
    return ChatResult(text=stored.text, model=record.model, provider=record.provider, usage=stored.usage,
                      latency_ms=record.latency_ms, cost=Decimal(0), finish_reason=stored.finish_reason,
                      usage_event_id=usage_event_id, request_id=record.request_id, tool_calls=stored.tool_calls,
                      refusal=stored.refusal, time_to_first_token_ms=record.ttft_ms, alias=record.alias,
                      deployment=record.deployment, cache_hit=True)


def embedding_result(entry: dict, record: CallRecord, *, usage_event_id: int | None) -> EmbeddingResult:
    return EmbeddingResult(vectors=entry["vectors"], model=record.model, provider=record.provider,
                           usage=Usage(**entry["usage"]), latency_ms=record.latency_ms, cost=Decimal(0),
                           usage_event_id=usage_event_id, request_id=record.request_id, alias=record.alias,
                           deployment=record.deployment, cache_hit=True)
