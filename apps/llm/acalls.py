"""The async face of the one call path (the gateway's hot path): `achat`, `achat_stream`, `aembed`.

The same checks, routes, retries, errors and bookkeeping as calls.py (both use callcore.py and routing.py);
what differs is the waiting (coroutines) and the recording: the async path never writes PostgreSQL itself.
Each call ends in exactly one CallRecord handed to the caller's `recorder` (the gateway puts it on a Redis
stream; its writer puts it on the ledger). Routes and prices come from routing's in-process cache, so a call
makes no database query unless the cache misses. The budget check is the caller's `preflight` hook (async);
the sync path's PostgreSQL reservation (costs' usage_preflight) is never called from here.

    result = await achat(model="chat", request=ChatRequest(messages=[...]), context=ctx, recorder=rec)

    stream = achat_stream(model="chat", request=..., context=ctx, recorder=rec)
    await stream.open()            # connects; raises LlmError (recorded) before any byte
    async for delta in stream:     # StreamDelta(text=...)
        ...
    stream.result                  # the ChatResult, usage from the provider's usage chunk

A stream whose upstream fails mid-way raises StreamInterrupted (after recording), never ends as if complete.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.conf import settings

from apps.costs.models import CallStatus, Operation
from apps.costs.services import UsageContext
from apps.llm import callcore
from apps.llm.adapters import adapter_for
from apps.llm.callcore import CallState, StreamText, chat_request_check
from apps.llm.errors import BadRequest, stream_interrupted
from apps.llm.models import ModelKind
from apps.llm.results import (
    CallRecord,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ProviderChat,
    StreamDelta,
    Usage,
)
from apps.llm.retry import RetryPolicy, awith_retries
from apps.llm.routing import Target, aresolve
from apps.llm.tokens import estimate_tokens

log = logging.getLogger(__name__)

__all__ = ["AsyncChatStream", "PreflightCheck", "Recorder", "achat", "achat_stream", "aembed"]


class Recorder(Protocol):
    """Takes the one CallRecord of each call (e.g. onto a Redis stream). It may raise: the caller decides."""

    async def __call__(self, record: CallRecord) -> None: ...


@dataclass(frozen=True)
class PreflightCheck:
    """What the budget hook is asked before a call: raise to refuse it (the refusal is recorded)."""

    context: UsageContext  # this call's context (its request id is the one recorded)
    model: str  # the catalog model tried first
    provider: str
    price_name: str | None
    alias: str
    input_tokens: int  # estimated
    max_output_tokens: int
    worst_case_cost: Decimal | None  # the most any of the route's targets could cost; None: one is unpriced


Preflight = Callable[[PreflightCheck], Awaitable[None]]


class _ACall(CallState):
    def __init__(self, operation: str, context: UsageContext, model: str, recorder: Recorder):
        super().__init__(operation, context, model)
        self.recorder = recorder
        self.recorded = False
        self.refused = False  # the preflight hook said no: recorded as status "refused"

    async def record(self, *, usage: Usage | None, status: str, error_type: str = "") -> CallRecord:
        record = self.finish(usage=usage, status=status, error_type=error_type)
        if not self.recorded:
            self.recorded = True
            await self.recorder(record)
        return record

    async def fail(self, exc: BaseException, usage: Usage | None = None) -> BaseException:
        """Record the failure (unless already recorded) and hand the exception back to be raised."""
        if not self.recorded:
            error_type = callcore.error_type_of(exc)
            status = CallStatus.REFUSED if self.refused else CallStatus.ERROR
            try:
                await self.record(usage=usage, status=status, error_type=error_type)
            except Exception:  # the recorder failing must not hide why the call failed
                log.exception("could not record a failed model call (%s)", error_type)
            log.info("model call %s on %s failed: %s", self.operation, self.model_label, error_type)
        return exc

    async def preflight(self, hook: Preflight | None, targets: tuple[Target, ...], input_tokens: int,
                        max_output_tokens: int | None) -> None:
        if hook is None:
            return
        first = targets[0].model
        def most(t: Target) -> int:
            return t.model.max_output_tokens if max_output_tokens is None else max_output_tokens

        worsts = [callcore.worst_case(t.price(), input_tokens, most(t)) for t in targets]
        worst = None if any(w is None for w in worsts) else max(worsts)
        check = PreflightCheck(context=self.context, model=first.name, provider=first.provider.name,
                               price_name=first.priced_as, alias=self.alias, input_tokens=input_tokens,
                               max_output_tokens=most(targets[0]), worst_case_cost=worst)
        try:
            await hook(check)
        except Exception:
            self.refused = True
            raise


async def _route_targets(call: _ACall, model: str, kind: str) -> tuple[Target, ...]:
    if not isinstance(model, str) or not model:
        raise BadRequest("Name a model.")
    route = (await aresolve(model)).check(kind)
    call.alias = route.alias
    return route.targets


async def _start_chat(call: _ACall, model: str, request: ChatRequest, preflight: Preflight | None) -> Target:
    targets = await _route_targets(call, model, ModelKind.CHAT)
    target = targets[0]
    call.bind(target.model, deployment=target.deployment)
    if not isinstance(request, ChatRequest):
        raise BadRequest("request must be a ChatRequest.")
    chat_request_check(request, target.model)
    await call.preflight(preflight, targets, callcore.input_estimate(request), request.max_tokens)
    return target


async def _result(call: _ACall, target: Target, answer: ProviderChat) -> ChatResult:
    record = await call.record(usage=answer.usage, status=CallStatus.OK)
    cost = callcore.cost_now(record.tokens, target.price())
    callcore.warn_unpriced(record, cost)
    return callcore.chat_result(call, answer, record, cost=cost, usage_event_id=None)


async def achat(*, model: str, request: ChatRequest, context: UsageContext, recorder: Recorder,
                preflight: Preflight | None = None) -> ChatResult:
    """One chat completion. Raises an LlmError subclass (readable message) or the preflight hook's refusal."""
    call = _ACall(Operation.CHAT, context, model, recorder)
    try:
        target = await _start_chat(call, model, request, preflight)
        adapter = adapter_for(target.model.provider)
        call.start_clock()
        call.attempt_start()
        answer, _ = await awith_retries(lambda: adapter.achat(target.model, request),
                                        RetryPolicy.for_provider(target.model.provider))
        call.attempt_end()
    except Exception as exc:
        raise await call.fail(exc)
    return await _result(call, target, answer)


class AsyncChatStream:
    """A streaming chat call: `await open()` connects (or raises, recorded); iterate for StreamDelta(text=…);
    once exhausted `.result` is the ChatResult. Iterating without open() opens first.

    A mid-stream upstream failure raises StreamInterrupted after recording what was used. Stopping early:
    `await aclose()` records the call with estimated usage and finish_reason "cancelled".
    """

    def __init__(self, *, model: str, request: ChatRequest, context: UsageContext, recorder: Recorder,
                 preflight: Preflight | None = None):
        self._call = _ACall(Operation.CHAT, context, model, recorder)
        self._model = model
        self._request = request
        self._preflight = preflight
        self._text = StreamText(request) if isinstance(request, ChatRequest) else None
        self._target: Target | None = None
        self._source: AsyncIterator[StreamDelta] | None = None
        self._result: ChatResult | None = None
        self._done = False

    @property
    def request_id(self) -> str:
        return self._call.context.request_id

    async def open(self) -> AsyncChatStream:
        """Resolve, check, ask the budget hook and connect (retrying); raises LlmError before any delta."""
        if self._source is not None or self._done:
            return self
        call = self._call
        try:
            target = await _start_chat(call, self._model, self._request, self._preflight)
            adapter = adapter_for(target.model.provider)
            call.start_clock()
            call.attempt_start()
            self._source, _ = await awith_retries(lambda: adapter.achat_stream(target.model, self._request),
                                                  RetryPolicy.for_provider(target.model.provider))
            self._target = target
        except Exception as exc:
            self._done = True
            raise await call.fail(exc)
        return self

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> StreamDelta:
        if self._source is None and not self._done:
            await self.open()
        if self._done:
            raise StopAsyncIteration
        while True:
            try:
                piece = await self._source.__anext__()
            except StopAsyncIteration:
                await self._finish(None)  # an adapter always ends with `final`; never leave it unrecorded
                raise
            except Exception as exc:
                self._done = True
                cut = stream_interrupted(exc, self._call.provider_label, len(self._text.text))
                raise (await self._call.fail(cut, usage=self._text.usage_so_far())) from exc
            if piece.final is not None:
                await self._finish(piece.final)
                raise StopAsyncIteration
            if piece.text:
                self._call.first_token()
                self._text.add(piece.text)
                return piece

    @property
    def text(self) -> str:
        return self._text.text if self._text is not None else ""

    @property
    def result(self) -> ChatResult:
        if self._result is None:
            raise RuntimeError("The stream has not finished: iterate it to the end (or aclose it) first.")
        return self._result

    async def _finish(self, final: ProviderChat | None, finish_reason: str | None = None) -> None:
        self._done = True
        if final is None:
            final = self._text.cut_answer(finish_reason)
        self._call.attempt_end()
        self._result = await _result(self._call, self._target, final)

    async def aclose(self) -> None:
        """Stop early: the upstream is closed and the call recorded as cancelled (estimated usage)."""
        if self._done:
            return
        if self._source is None:  # never opened: nothing was called, nothing to record
            self._done = True
            return
        close = getattr(self._source, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # noqa: BLE001 - closing a broken upstream must not hide the recording
                log.debug("closing an upstream stream failed", exc_info=True)
        await self._finish(None, finish_reason="cancelled")

    async def __aenter__(self) -> AsyncChatStream:
        return await self.open()

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


def achat_stream(*, model: str, request: ChatRequest, context: UsageContext, recorder: Recorder,
                 preflight: Preflight | None = None) -> AsyncChatStream:
    """A streaming chat completion (not yet connected: `await stream.open()`, or iterate); see AsyncChatStream."""
    return AsyncChatStream(model=model, request=request, context=context, recorder=recorder, preflight=preflight)


async def aembed(*, model: str, texts: list[str], context: UsageContext, recorder: Recorder,
                 preflight: Preflight | None = None) -> EmbeddingResult:
    """Embed `texts` in order (batched per LLM_EMBED_BATCH_SIZE). One CallRecord for the call."""
    call = _ACall(Operation.EMBEDDING, context, model, recorder)
    usage = Usage()
    try:
        callcore.embed_texts_check(texts)
        targets = await _route_targets(call, model, ModelKind.EMBEDDING)
        target = targets[0]
        resolved = target.model
        call.bind(resolved, deployment=target.deployment)
        if not texts:  # nothing to do: no provider call, nothing to record
            return EmbeddingResult(vectors=[], model=resolved.name, provider=resolved.provider.name, usage=usage,
                                   latency_ms=0, cost=Decimal(0), usage_event_id=None,
                                   request_id=call.context.request_id, alias=call.alias,
                                   deployment=target.deployment)
        await call.preflight(preflight, targets, sum(estimate_tokens(t) for t in texts), 0)
        adapter = adapter_for(resolved.provider)
        policy = RetryPolicy.for_provider(resolved.provider)
        size = max(1, settings.LLM_EMBED_BATCH_SIZE)
        vectors: list[list[float]] = []
        remote_model = ""
        call.start_clock()
        call.attempt_start()
        for start in range(0, len(texts), size):
            batch = texts[start:start + size]
            answer, _ = await awith_retries(lambda b=batch: adapter.aembed(resolved, b), policy)
            vectors.extend(answer.vectors)
            usage = usage + answer.usage
            remote_model = answer.remote_model or remote_model
        call.attempt_end()
        callcore.embedding_dimensions_check(resolved, vectors)
    except Exception as exc:
        raise await call.fail(exc, usage=usage if usage.total_tokens else None)
    record = await call.record(usage=usage, status=CallStatus.OK)
    cost = callcore.cost_now(record.tokens, target.price())
    return callcore.embedding_result(vectors, usage, record, cost=cost, usage_event_id=None,
                                     remote_model=remote_model)
