"""The one model call path. Every model call in the portal goes through `chat`, `chat_stream` or `embed`.

Each call: resolves the model from the catalog, checks the arguments, asks costs whether it may spend
(`usage_preflight`, with the worst-case cost), calls the provider's adapter with retries (retry.py), and
records exactly one UsageEvent — on success, on a provider error, and on a refusal — priced at the price
valid at that moment. Unpriced models give `cost=None`, never a silent 0. Prompts and outputs are never
logged or stored here.

A UsageContext may be reused for several calls: the first records under `context.request_id`, later ones
under `<request_id>-2`, `-3`…, so the ledger's idempotency never swallows a real call.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from apps.core import metrics
from apps.core.request_context import current
from apps.costs import services as costs_services
from apps.costs.models import CallStatus, Operation, UsageEvent
from apps.costs.pricing import price_at, worst_case_cost
from apps.costs.services import UsageContext, usage_event_record
from apps.llm.adapters import adapter_for
from apps.llm.errors import BadRequest, LlmError, MalformedResponse, ModelNotFound
from apps.llm.models import Model, ModelKind
from apps.llm.results import ChatRequest, ChatResult, EmbeddingResult, ProviderChat, StreamDelta, Usage
from apps.llm.retry import RetryPolicy, with_retries
from apps.llm.tokens import estimate_messages_tokens, estimate_tokens

log = logging.getLogger(__name__)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_warned_unpriced: set[str] = set()

__all__ = ["ChatStream", "chat", "chat_stream", "embed", "resolve_model"]


def resolve_model(model: str | Model, kind: str) -> Model:
    """The active catalog model of `kind` named `model` (or the Model given), with its provider."""
    if isinstance(model, Model):
        found = model
    else:
        found = Model.objects.select_related("provider").filter(name=model).first()
        if found is None:
            raise ModelNotFound(f"There is no model named '{model}' in the catalog (see Models & prices).")
    if not found.is_active or not found.provider.is_active:
        raise ModelNotFound(f"The model '{found.name}' is disabled in the catalog.")
    if found.kind != kind:
        raise BadRequest(f"'{found.name}' is a {found.get_kind_display().lower()} model; "
                         f"it cannot be used for {'chat' if kind == ModelKind.CHAT else 'embeddings'}.")
    return found


def _call_context(context: UsageContext) -> UsageContext:
    """A copy of `context` for one call: its own request id, and the acting user if none was given."""
    count = context.__dict__.get("_llm_calls", 0) + 1
    context.__dict__["_llm_calls"] = count
    request_id = context.request_id if count == 1 else f"{context.request_id[:90]}-{count}"
    changes: dict = {"request_id": request_id}
    actor = current()
    if actor is not None and context.user_id is None and context.api_token_id is None:
        if getattr(actor.user, "is_authenticated", False):
            changes["user_id"] = actor.user.pk
        if actor.token is not None:
            changes["api_token_id"] = actor.token.pk
    return dataclasses.replace(context, **changes)


class _Call:
    """One call's bookkeeping: what to write on the ledger, once."""

    def __init__(self, operation: str, context: UsageContext, model: str | Model):
        self.operation = operation
        self.context = _call_context(context)
        self.model_label = model.name if isinstance(model, Model) else str(model)[:200]
        self.provider_label = ""
        self.provider_kind = "unknown"
        self.price_name: str | None = None
        self.started = time.perf_counter()
        self.event: UsageEvent | None = None

    def bind(self, model: Model) -> None:
        self.model_label = model.name
        self.provider_label = model.provider.name
        self.provider_kind = model.provider.kind
        self.price_name = model.priced_as

    def start_clock(self) -> None:
        self.started = time.perf_counter()

    def elapsed_ms(self) -> int:
        return max(0, round((time.perf_counter() - self.started) * 1000))

    def record(self, *, usage: Usage | None, status: str, error_type: str = "") -> UsageEvent:
        if self.event is not None:
            return self.event
        usage = usage or Usage()
        self.event = usage_event_record(
            context=self.context, provider=self.provider_label, model=self.model_label, price_name=self.price_name,
            operation=self.operation, tokens=usage.token_counts(), latency_ms=self.elapsed_ms(), status=status,
            error_type=error_type,
        )
        metrics.MODEL_CALLS.labels(self.provider_kind, self.model_label, self.operation, status).inc()
        for direction, count in (("input", usage.input_tokens), ("output", usage.output_tokens),
                                 ("cached_input", usage.cached_input_tokens), ("reasoning", usage.reasoning_tokens)):
            if count:
                metrics.MODEL_TOKENS.labels(self.model_label, direction).inc(count)
        if status == CallStatus.OK and self.event.cost is None and self.model_label not in _warned_unpriced:
            _warned_unpriced.add(self.model_label)
            log.warning("model %s has no price: its calls are recorded unpriced (cost NULL)", self.model_label)
        return self.event

    def fail(self, exc: BaseException, usage: Usage | None = None) -> BaseException:
        """Record the failure (unless already recorded) and hand the exception back to be raised."""
        if self.event is None:
            error_type = exc.error_type if isinstance(exc, LlmError) else type(exc).__name__
            try:
                self.record(usage=usage, status=CallStatus.ERROR, error_type=error_type)
            except Exception:  # the ledger failing must not hide why the call failed
                log.exception("could not record a failed model call (%s)", error_type)
            log.info("model call %s on %s failed: %s", self.operation, self.model_label, error_type)
        return exc

    def preflight(self, model: Model, input_tokens: int, max_output_tokens: int) -> None:
        """Ask costs whether this call may spend; a refusal is recorded and re-raised as is."""
        price = price_at(model.priced_as, timezone.now(), model.provider.name)
        worst = worst_case_cost(price, input_tokens, max_output_tokens) if price is not None else None
        try:
            costs_services.usage_preflight(context=self.context, model=model.name, worst_case_cost=worst)
        except Exception as exc:
            self.record(usage=None, status=CallStatus.REFUSED, error_type=type(exc).__name__)
            raise


def _chat_request(model: Model, messages, temperature, max_tokens, response_format, tools) -> ChatRequest:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Give at least one message.")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequest(f"Message {i + 1} needs a role: one of {', '.join(sorted(ROLES))}.")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 2):
        raise BadRequest("Temperature must be a number from 0 to 2.")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequest("max_tokens must be a positive whole number.")
        if max_tokens > model.max_output_tokens:
            raise BadRequest(f"max_tokens {max_tokens} is more than {model.name} may produce "
                             f"({model.max_output_tokens}).")
    if response_format is not None and not (isinstance(response_format, dict) and response_format.get("type")):
        raise BadRequest('response_format must be like {"type": "json_object"}.')
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise BadRequest("tools must be a list of tool definitions.")
    return ChatRequest(messages=messages, temperature=temperature, max_tokens=max_tokens,
                       response_format=response_format, tools=tools or None)


def _chat_result(call: _Call, answer: ProviderChat, event: UsageEvent, ttft_ms: int | None = None) -> ChatResult:
    return ChatResult(
        text=answer.text, model=call.model_label, provider=call.provider_label, usage=answer.usage,
        latency_ms=event.latency_ms, cost=event.cost, finish_reason=answer.finish_reason,
        usage_event_id=event.pk, request_id=event.request_id, tool_calls=answer.tool_calls,
        remote_model=answer.remote_model, refusal=answer.refusal, time_to_first_token_ms=ttft_ms,
    )


def _start_chat(call: _Call, model, messages, temperature, max_tokens, response_format, tools):
    resolved = resolve_model(model, ModelKind.CHAT)
    call.bind(resolved)
    request = _chat_request(resolved, messages, temperature, max_tokens, response_format, tools)
    call.preflight(resolved, estimate_messages_tokens(messages, tools), max_tokens or resolved.max_output_tokens)
    return resolved, request


def chat(*, model: str | Model, messages: list[dict], context: UsageContext, temperature: float | None = None,
         max_tokens: int | None = None, response_format: dict | None = None,
         tools: list[dict] | None = None) -> ChatResult:
    """One chat completion. Raises an LlmError subclass (message readable by users) or the preflight's refusal."""
    call = _Call(Operation.CHAT, context, model)
    try:
        resolved, request = _start_chat(call, model, messages, temperature, max_tokens, response_format, tools)
        adapter = adapter_for(resolved.provider)
        call.start_clock()
        answer, _ = with_retries(lambda: adapter.chat(resolved, request), RetryPolicy.for_provider(resolved.provider))
    except Exception as exc:
        raise call.fail(exc)
    return _chat_result(call, answer, call.record(usage=answer.usage, status=CallStatus.OK))


class ChatStream:
    """A streaming chat call: iterate for text deltas; once exhausted, `.result` is the ChatResult.

        stream = chat_stream(model=..., messages=..., context=...)
        for delta in stream:
            send(delta)
        stream.result.usage, stream.result.cost

    Connection errors (after retries) raise from `chat_stream()` itself; errors mid-stream raise from the
    iteration, as LlmError. Stopping early: call `close()` (or use `with`; Django's StreamingHttpResponse
    closes it for you) and the call is recorded with estimated usage and finish_reason "cancelled".
    """

    def __init__(self, call: _Call, request: ChatRequest, source: Iterator[StreamDelta]):
        self._call = call
        self._request = request
        self._source = source
        self._parts: list[str] = []
        self._ttft_ms: int | None = None
        self._result: ChatResult | None = None
        self._failed = False

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        if self._result is not None or self._failed:
            raise StopIteration
        while True:
            try:
                piece = next(self._source)
            except StopIteration:
                self._finish(None)
                raise
            except Exception as exc:
                self._failed = True
                raise self._call.fail(exc, usage=self._usage_so_far())
            if piece.final is not None:
                self._finish(piece.final)
                raise StopIteration
            if piece.text:
                if self._ttft_ms is None:
                    self._ttft_ms = self._call.elapsed_ms()
                self._parts.append(piece.text)
                return piece.text

    @property
    def text(self) -> str:
        """What has streamed so far."""
        return "".join(self._parts)

    @property
    def result(self) -> ChatResult:
        if self._result is None:
            raise RuntimeError("The stream has not finished: iterate it to the end (or close it) first.")
        return self._result

    def _usage_so_far(self) -> Usage:
        return Usage(input_tokens=estimate_messages_tokens(self._request.messages, self._request.tools),
                     output_tokens=estimate_tokens(self.text), estimated=True)

    def _finish(self, final: ProviderChat | None, finish_reason: str | None = None) -> None:
        if final is None:
            final = ProviderChat(text=self.text, usage=self._usage_so_far(), finish_reason=finish_reason)
        event = self._call.record(usage=final.usage, status=CallStatus.OK)
        self._result = _chat_result(self._call, final, event, self._ttft_ms)

    def close(self) -> None:
        if self._result is not None or self._failed:
            return
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
        self._finish(None, finish_reason="cancelled")

    def __enter__(self) -> ChatStream:
        return self

    def __del__(self):  # best effort for a stream dropped unfinished: the call still reaches the ledger
        if getattr(self, "_result", True) is None and not getattr(self, "_failed", True):
            try:
                self.close()
            except Exception:  # noqa: BLE001 - never raise from a finaliser
                log.warning("an abandoned model stream could not be recorded", exc_info=True)

    def __exit__(self, *exc_info) -> None:
        self.close()


def chat_stream(*, model: str | Model, messages: list[dict], context: UsageContext,
                temperature: float | None = None, max_tokens: int | None = None,
                response_format: dict | None = None, tools: list[dict] | None = None) -> ChatStream:
    """A streaming chat completion; see ChatStream. Usage comes from the provider's final chunk, else estimated."""
    call = _Call(Operation.CHAT, context, model)
    try:
        resolved, request = _start_chat(call, model, messages, temperature, max_tokens, response_format, tools)
        adapter = adapter_for(resolved.provider)
        call.start_clock()
        source, _ = with_retries(lambda: adapter.chat_stream(resolved, request),
                                 RetryPolicy.for_provider(resolved.provider))
    except Exception as exc:
        raise call.fail(exc)
    return ChatStream(call, request, source)


def embed(*, model: str | Model, texts: list[str], context: UsageContext) -> EmbeddingResult:
    """Embed `texts` in order (batched per LLM_EMBED_BATCH_SIZE, default 256). One usage event for the call."""
    call = _Call(Operation.EMBEDDING, context, model)
    usage = Usage()
    try:
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise BadRequest("texts must be a list of strings.")
        resolved = resolve_model(model, ModelKind.EMBEDDING)
        call.bind(resolved)
        if not texts:  # nothing to do: no provider call, nothing to record
            return EmbeddingResult(vectors=[], model=resolved.name, provider=resolved.provider.name, usage=usage,
                                   latency_ms=0, cost=Decimal(0), usage_event_id=None,
                                   request_id=call.context.request_id)
        call.preflight(resolved, sum(estimate_tokens(t) for t in texts), 0)
        adapter = adapter_for(resolved.provider)
        policy = RetryPolicy.for_provider(resolved.provider)
        size = max(1, settings.LLM_EMBED_BATCH_SIZE)
        vectors: list[list[float]] = []
        remote_model = ""
        call.start_clock()
        for start in range(0, len(texts), size):
            batch = texts[start:start + size]
            answer, _ = with_retries(lambda b=batch: adapter.embed(resolved, b), policy)
            vectors.extend(answer.vectors)
            usage = usage + answer.usage
            remote_model = answer.remote_model or remote_model
        dims = {len(v) for v in vectors}
        if resolved.embedding_dimensions and dims != {resolved.embedding_dimensions}:
            raise MalformedResponse(f"{resolved.name} returned {sorted(dims)}-dimensional vectors; the catalog "
                                    f"says {resolved.embedding_dimensions}. Fix the model's dimensions.")
    except Exception as exc:
        raise call.fail(exc, usage=usage if usage.total_tokens else None)
    event = call.record(usage=usage, status=CallStatus.OK)
    return EmbeddingResult(vectors=vectors, model=resolved.name, provider=resolved.provider.name, usage=usage,
                           latency_ms=event.latency_ms, cost=event.cost, usage_event_id=event.pk,
                           request_id=event.request_id, remote_model=remote_model)
