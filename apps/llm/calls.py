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

import logging
from collections.abc import Iterator
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from apps.costs import services as costs_services
from apps.costs.models import CallStatus, Operation, UsageEvent
from apps.costs.pricing import price_at
from apps.costs.services import UsageContext
from apps.llm import callcore
from apps.llm.adapters import adapter_for
from apps.llm.callcore import CallState, StreamText, chat_request_build, chat_request_check
from apps.llm.errors import stream_interrupted
from apps.llm.models import Model, ModelKind
from apps.llm.results import ChatRequest, ChatResult, EmbeddingResult, ProviderChat, StreamDelta, Usage
from apps.llm.retry import RetryPolicy, with_retries
from apps.llm.routing import Route, Target, resolve, route_for_model
from apps.llm.tokens import estimate_tokens

log = logging.getLogger(__name__)

__all__ = ["ChatStream", "chat", "chat_stream", "embed", "resolve_model"]


def _route(model: str | Model, kind: str) -> Route:
    route = route_for_model(model) if isinstance(model, Model) else resolve(str(model))
    return route.check(kind)


def resolve_model(model: str | Model, kind: str) -> Model:
    """The active catalog model of `kind` named `model` (or the Model given), with its provider."""
    return _route(model, kind).first.model


class _Call(CallState):
    """One sync call's bookkeeping: the CallRecord is written to the ledger at once, once."""

    event: UsageEvent | None = None

    def record(self, *, usage: Usage | None, status: str, error_type: str = "") -> UsageEvent:
        if self.event is None:
            self.event = callcore.ledger_record(self.finish(usage=usage, status=status, error_type=error_type))
        return self.event

    def fail(self, exc: BaseException, usage: Usage | None = None) -> BaseException:
        """Record the failure (unless already recorded) and hand the exception back to be raised."""
        if self.event is None:
            error_type = callcore.error_type_of(exc)
            try:
                self.record(usage=usage, status=CallStatus.ERROR, error_type=error_type)
            except Exception:  # the ledger failing must not hide why the call failed
                log.exception("could not record a failed model call (%s)", error_type)
            log.info("model call %s on %s failed: %s", self.operation, self.model_label, error_type)
        return exc

    def preflight(self, target: Target, input_tokens: int, max_output_tokens: int) -> None:
        """Ask costs whether this call may spend; a refusal is recorded and re-raised as is."""
        model = target.model
        price = (target.price() if target.prices is not None
                 else price_at(model.priced_as, timezone.now(), model.provider.name))
        worst = callcore.worst_case(price, input_tokens, max_output_tokens)
        try:
            costs_services.usage_preflight(context=self.context, model=model.name, worst_case_cost=worst)
        except Exception as exc:
            self.record(usage=None, status=CallStatus.REFUSED, error_type=type(exc).__name__)
            raise


def _chat_result(call: _Call, answer: ProviderChat) -> ChatResult:
    event = call.record(usage=answer.usage, status=CallStatus.OK)
    return callcore.chat_result(call, answer, call.finish(usage=answer.usage, status=CallStatus.OK),
                                cost=event.cost, usage_event_id=event.pk)


def _start_chat(call: _Call, model, request: ChatRequest) -> Target:
    target = _route(model, ModelKind.CHAT).first
    call.bind(target.model)
    chat_request_check(request, target.model)
    call.preflight(target, callcore.input_estimate(request), request.max_tokens or target.model.max_output_tokens)
    return target


def chat(*, model: str | Model, messages: list[dict], context: UsageContext, temperature: float | None = None,
         max_tokens: int | None = None, response_format: dict | None = None,
         tools: list[dict] | None = None, extra: dict | None = None) -> ChatResult:
    """One chat completion. Raises an LlmError subclass (message readable by users) or the preflight's refusal."""
    call = _Call(Operation.CHAT, context, model)
    try:
        request = chat_request_build(messages, temperature, max_tokens, response_format, tools, extra)
        target = _start_chat(call, model, request)
        adapter = adapter_for(target.model.provider)
        call.start_clock()
        call.attempt_start()
        answer, _ = with_retries(lambda: adapter.chat(target.model, request),
                                 RetryPolicy.for_provider(target.model.provider))
        call.attempt_end()
    except Exception as exc:
        raise call.fail(exc)
    return _chat_result(call, answer)


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
        self._text = StreamText(request)
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
                cut = stream_interrupted(exc, self._call.provider_label, len(self._text.text))
                raise self._call.fail(cut, usage=self._text.usage_so_far()) from exc
            if piece.final is not None:
                self._finish(piece.final)
                raise StopIteration
            if piece.text:
                self._call.first_token()
                self._text.add(piece.text)
                return piece.text

    @property
    def text(self) -> str:
        """What has streamed so far."""
        return self._text.text

    @property
    def result(self) -> ChatResult:
        if self._result is None:
            raise RuntimeError("The stream has not finished: iterate it to the end (or close it) first.")
        return self._result

    def _finish(self, final: ProviderChat | None, finish_reason: str | None = None) -> None:
        if final is None:
            final = self._text.cut_answer(finish_reason)
        self._call.attempt_end()
        self._result = _chat_result(self._call, final)

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
                response_format: dict | None = None, tools: list[dict] | None = None,
                extra: dict | None = None) -> ChatStream:
    """A streaming chat completion; see ChatStream. Usage comes from the provider's final chunk, else estimated."""
    call = _Call(Operation.CHAT, context, model)
    try:
        request = chat_request_build(messages, temperature, max_tokens, response_format, tools, extra)
        target = _start_chat(call, model, request)
        adapter = adapter_for(target.model.provider)
        call.start_clock()
        call.attempt_start()
        source, _ = with_retries(lambda: adapter.chat_stream(target.model, request),
                                 RetryPolicy.for_provider(target.model.provider))
    except Exception as exc:
        raise call.fail(exc)
    return ChatStream(call, request, source)


def embed(*, model: str | Model, texts: list[str], context: UsageContext) -> EmbeddingResult:
    """Embed `texts` in order (batched per LLM_EMBED_BATCH_SIZE, default 256). One usage event for the call."""
    call = _Call(Operation.EMBEDDING, context, model)
    usage = Usage()
    try:
        callcore.embed_texts_check(texts)
        target = _route(model, ModelKind.EMBEDDING).first
        resolved = target.model
        call.bind(resolved)
        if not texts:  # nothing to do: no provider call, nothing to record
            return EmbeddingResult(vectors=[], model=resolved.name, provider=resolved.provider.name, usage=usage,
                                   latency_ms=0, cost=Decimal(0), usage_event_id=None,
                                   request_id=call.context.request_id)
        call.preflight(target, sum(estimate_tokens(t) for t in texts), 0)
        adapter = adapter_for(resolved.provider)
        policy = RetryPolicy.for_provider(resolved.provider)
        size = max(1, settings.LLM_EMBED_BATCH_SIZE)
        vectors: list[list[float]] = []
        remote_model = ""
        call.start_clock()
        call.attempt_start()
        for start in range(0, len(texts), size):
            batch = texts[start:start + size]
            answer, _ = with_retries(lambda b=batch: adapter.embed(resolved, b), policy)
            vectors.extend(answer.vectors)
            usage = usage + answer.usage
            remote_model = answer.remote_model or remote_model
        call.attempt_end()
        callcore.embedding_dimensions_check(resolved, vectors)
    except Exception as exc:
        raise call.fail(exc, usage=usage if usage.total_tokens else None)
    event = call.record(usage=usage, status=CallStatus.OK)
    return callcore.embedding_result(vectors, usage, call.finish(usage=usage, status=CallStatus.OK), cost=event.cost,
                                     usage_event_id=event.pk, remote_model=remote_model)
