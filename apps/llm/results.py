"""What a model call takes and gives back. Plain frozen dataclasses: safe to pass around, log-free of secrets."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from apps.costs.pricing import TokenCounts


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
    usage_event_id: int
    request_id: str
    tool_calls: tuple[ToolCall, ...] = ()
    remote_model: str = ""  # what the provider says answered (e.g. a dated snapshot)
    refusal: str | None = None
    time_to_first_token_ms: int | None = None  # streams only

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

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0

    @property
    def unpriced(self) -> bool:
        return self.cost is None


@dataclass(frozen=True)
class StreamDelta:
    """One piece of a stream as an adapter yields it: text, or the final answer (last item)."""

    text: str = ""
    final: ProviderChat | None = None
