"""What a model call takes and gives back. Plain frozen dataclasses: safe to pass around, log-free of secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.costs.pricing import TokenCounts
from apps.costs.services import UsageContext


@dataclass(frozen=True)
class Usage:
    """Token usage as OpenAI counts it: input includes cached input, output includes reasoning tokens.

    `estimated` is True when the provider reported nothing and the portal estimated (tokens.py).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def token_counts(self) -> TokenCounts:
        return TokenCounts(input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                           cached_input_tokens=self.cached_input_tokens, reasoning_tokens=self.reasoning_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
                     self.cached_input_tokens + other.cached_input_tokens,
                     self.reasoning_tokens + other.reasoning_tokens, self.estimated or other.estimated)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the JSON text the model produced; parse it yourself, it may be invalid


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict]
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: dict | None = None
    tools: list[dict] | None = None
    # Pass-through OpenAI parameters (top_p, stop, seed, tool_choice…), checked by the call path
    # (callcore.EXTRA_PARAMETERS) and sent to the SDK as they are. The offline model ignores them.
    extra: dict = field(default_factory=dict)
    # Whether the *client* asked for the usage chunk of a stream. Adapters always ask the upstream for it
    # (it is what settles the cost); the gateway strips it from what it relays when the client did not ask.
    stream_include_usage: bool = False


@dataclass(frozen=True)
class ProviderChat:
    """What an adapter returns; the call path adds cost, latency and the ledger id."""

    text: str
    usage: Usage
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    remote_model: str = ""
    refusal: str | None = None


@dataclass(frozen=True)
class ProviderEmbedding:
    vectors: list[list[float]]
    usage: Usage
    remote_model: str = ""


@dataclass(frozen=True)
class ChatResult:
    text: str
    model: str  # the portal's model name
    provider: str
    usage: Usage
    latency_ms: int
    cost: Decimal | None  # None: no price applied (unpriced), never a silent 0
    finish_reason: str | None
    usage_event_id: int | None  # None on the async path: its recorder writes the ledger later
    request_id: str
    tool_calls: tuple[ToolCall, ...] = ()
    remote_model: str = ""  # what the provider says answered (e.g. a dated snapshot)
    refusal: str | None = None
    time_to_first_token_ms: int | None = None  # streams only
    alias: str = ""  # the alias asked for, when the name was one
    deployment: str = ""  # the alias's deployment that answered
    fallbacks: int = 0  # deployments tried and failed before the one that answered
    cache_hit: bool = False  # answered from the response cache (llm/cache.py): cost 0, usage the original call's

    @property
    def unpriced(self) -> bool:
        return self.cost is None


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[list[float]]
    model: str
    provider: str
    usage: Usage
    latency_ms: int
    cost: Decimal | None
    usage_event_id: int | None  # None only when there was nothing to embed (no call was made)
    request_id: str
    remote_model: str = ""
    alias: str = ""
    deployment: str = ""
    fallbacks: int = 0
    cache_hit: bool = False  # answered from the response cache (llm/cache.py)

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0

    @property
    def unpriced(self) -> bool:
        return self.cost is None


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a streamed tool call, as OpenAI streams it: the call's `index` ties the pieces together; the
    first piece of a call carries its `id` and `name`, the later ones more of its JSON `arguments`."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True)
class StreamDelta:
    """One piece of a stream as an adapter yields it: text and/or tool-call pieces, or the final answer (last
    item, whose tool_calls are the assembled calls)."""

    text: str = ""
    final: ProviderChat | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()


@dataclass(frozen=True)
class CallRecord:
    """Everything one usage event needs, as the call path hands it to a recorder.

    The sync path writes it at once (calls.py → costs' usage_event_record); the async path gives it to the
    caller's Recorder (the gateway puts it on a Redis stream; its writer calls the ledger in batches).
    `to_dict()`/`from_dict()` are JSON-safe for that trip.
    """

    request_id: str
    context: UsageContext
    provider: str
    model: str  # the catalog model that answered (or was asked for, when none was reached)
    price_name: str | None
    operation: str
    tokens: TokenCounts
    status: str
    error_type: str = ""
    latency_ms: int = 0  # the whole call, retries and fallbacks included
    upstream_ms: int | None = None  # the answering attempt, connect to last byte
    ttft_ms: int | None = None  # streams: until the first text
    deployment: str = ""  # id or name of the alias's deployment, "" for a direct catalog model
    alias: str = ""
    fallbacks: int = 0
    cache_hit: bool = False
    cache_saving: Decimal | None = None  # a response-cache hit: what the answer cost when it was first made
    # A hit: the tokens the stored answer used. The ledger prices them at the hit's time (the saving), falling back
    # to cache_saving when it has no price for them then (apps/costs/services.usage_row).
    cache_tokens: TokenCounts | None = None
    estimated: bool = False  # tokens estimated by the portal, not reported by the provider
    guardrail_actions: tuple[dict, ...] = ()  # the gateway's safety events on this call (apps/gateway/guard.py)
    groundedness: float | None = None  # a RAG answer's groundedness, known after the call (apps/rag/answers.py)
    occurred_at: datetime = field(default_factory=lambda: timezone.now())  # looked up per call: tests move the clock

    def to_dict(self) -> dict:
        # vars(), not dataclasses.asdict: these dataclasses hold only their fields, all flat (asdict's deep copy was
        # ~2 % of the gateway's CPU per request)
        data = dict(vars(self))
        data["context"] = dict(vars(self.context))
        data["tokens"] = dict(vars(self.tokens))
        if self.cache_tokens is not None:
            data["cache_tokens"] = dict(vars(self.cache_tokens))
        data["occurred_at"] = self.occurred_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CallRecord:
        data = dict(data)
        data["context"] = UsageContext(**data["context"])
        data["tokens"] = TokenCounts(**data["tokens"])
        if data.get("cache_tokens") is not None:
            data["cache_tokens"] = TokenCounts(**data["cache_tokens"])
        data["occurred_at"] = parse_datetime(data["occurred_at"])
        if data.get("cache_saving") is not None:
            data["cache_saving"] = Decimal(str(data["cache_saving"]))
        data["guardrail_actions"] = tuple(data.get("guardrail_actions") or ())
        return cls(**data)
