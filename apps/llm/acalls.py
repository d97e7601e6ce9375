"""The async face of the one call path (the gateway's hot path): `achat`, `achat_stream`, `aembed`.

The same checks, routes, retries, errors and bookkeeping as calls.py (both use callcore.py and routing.py);
what differs is the waiting (coroutines) and the recording: the async path never writes PostgreSQL itself.
Each call ends in exactly one CallRecord handed to the caller's `recorder` (the gateway puts it on a Redis
stream; its writer puts it on the ledger). Chat calls obey llm's call switches like the sync path (switches.py:
the same check, in a thread; refusals, input and output filters) unless the caller passes `switches=False` (the
gateway: its front door decides). Routes and prices come from routing's in-process cache, so a call
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

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.costs.models import CallStatus, Operation
from apps.costs.services import UsageContext
from apps.llm import breakers, callcore, observers, retry
from apps.llm import cache as response_cache
from apps.llm.adapters import adapter_for
from apps.llm.breakers import Slot
from apps.llm.cache import CachePolicy, Lookup
from apps.llm.callcore import CallState, StreamText, chat_request_check
from apps.llm.errors import BadRequest, LlmError, stream_interrupted
from apps.llm.models import ModelKind
from apps.llm.results import (
    CallRecord,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ProviderChat,
    ProviderEmbedding,
    StreamDelta,
    Usage,
)
from apps.llm.routing import Route, RoutePlan, Target, aresolve
from apps.llm.switches import (
    CallBlocked,
    CallRefused,
    CallSwitch,
    blocked_output,
    screened_answer,
    screened_request,
    screened_stream,
    switch_for,
)
from apps.llm.tokens import estimate_tokens

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["AsyncChatStream", "PreflightCheck", "Recorder", "achat", "achat_stream", "aembed", "chat_preflight_check",
           "dropped_streams_settled"]


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
    asked_max_tokens: int | None = None  # the caller's max_tokens (None: not given; max_output_tokens is the model's)
    # worst_case_cost for other (input, output) token counts: a hook's own margin or cap when max_tokens is absent
    worst_case_at: Callable[[int, int], Decimal | None] | None = None


Preflight = Callable[[PreflightCheck], Awaitable[None]]


class _ACall(CallState):
    def __init__(self, operation: str, context: UsageContext, model: str, recorder: Recorder, switches: bool = True):
        super().__init__(operation, context, model)
        self.recorder = recorder
        self.recorded = False
        self.refused = False  # the preflight hook (or a switch) said no: recorded as status "refused"
        self.switches = switches  # ask llm's call switches (the gateway does not: its front door decides)

    async def switched(self, request: ChatRequest) -> ChatRequest | None:
        """What the registered switches say of this call (apps/llm/switches.py, the sync path's one check, asked in
        a thread: it may query): a refusal raises CallRefused (recorded as refused by fail()); the request as the
        input filters leave it, or None when no filter is raised."""
        switch = self.switch = await sync_to_async(switch_for)(self.context)
        try:
            if switch is not None and switch.refuse:
                self.refused_by = switch.switch_id
                raise CallRefused(switch.refuse, code=switch.code)
            return screened_request(switch, request, self.guardrail_actions)
        except (CallRefused, CallBlocked):
            self.refused = True
            raise

    async def record(self, *, usage: Usage | None, status: str, error_type: str = "", answer=None) -> CallRecord:
        record = self.finish(usage=usage, status=status, error_type=error_type)
        if not self.recorded:
            self.recorded = True
            observer = observers.current.get()
            if observer is not None:
                observer.recorded(record, answer)
            await self.recorder(record)
        return record

    async def hit(self, lookup: Lookup, ttft_ms: int | None = None) -> CallRecord:
        """Record the call as answered from the response cache (one record, through the caller's recorder)."""
        self.finish_hit(lookup, ttft_ms)
        return await self.record(usage=None, status=CallStatus.OK)

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

    async def preflight(self, hook: Preflight | None, plan: RoutePlan, input_tokens: int,
                        max_output_tokens: int | None) -> None:
        if hook is None:
            return
        check = _check(self.context, plan, input_tokens, max_output_tokens)
        try:
            await hook(check)
        except Exception:
            self.refused = True
            raise


def _check(context: UsageContext, plan: RoutePlan, input_tokens: int, max_output_tokens: int | None) -> PreflightCheck:
    first = plan.route.first.model
    return PreflightCheck(
        context=context, model=first.name, provider=first.provider.name, price_name=first.priced_as,
        alias=plan.route.alias, input_tokens=input_tokens,
        max_output_tokens=first.max_output_tokens if max_output_tokens is None else max_output_tokens,
        worst_case_cost=plan.worst_case(input_tokens, max_output_tokens), asked_max_tokens=max_output_tokens,
        worst_case_at=plan.worst_case)


async def chat_preflight_check(*, model: str, request: ChatRequest, context: UsageContext) -> PreflightCheck:
    """What `achat`'s preflight hook would be asked for this call (the same route, plan and input estimate), ahead
    of the call: for a caller that reserves before it calls (the gateway, ADR 0126). The call itself asks its hook
    again; the route may have moved meanwhile. Raises what the call would (an unknown model, a bad request)."""
    route = (await aresolve(model)).check(ModelKind.CHAT)
    chat_request_check(request, route.widest_output)
    return _check(context, RoutePlan(route, max_tokens=request.max_tokens), callcore.input_estimate(request),
                  request.max_tokens)


async def _along(call: _ACall, plan: RoutePlan,
                 attempt: Callable[[Target, float | None], Awaitable[T]]) -> tuple[T, Target, Slot | None]:
    """calls._along for coroutines: the same plan (routing.RoutePlan) decides; this runs it."""
    observer = observers.current.get()
    while True:
        for tier in plan.tiers():
            counts = await breakers.ainflight(tier) if plan.least_inflight else None
            for target in plan.order(tier, counts):
                if not plan.can_attempt():
                    break
                if not plan.eligible(target):  # an attempt of this pass ruled it out (a context window)
                    continue
                slot = await breakers.aacquire(target) if target.deployment_id else None
                if isinstance(slot, str):
                    plan.skip(target, slot)
                    continue
                call.attempt_begin(plan, target)
                handle = observer.attempt_begin(target) if observer is not None else None
                try:
                    return await attempt(target, plan.attempt_timeout(target)), target, slot
                except LlmError as exc:
                    if observer is not None:
                        observer.attempt_end(handle, exc)
                    if slot is not None:
                        await breakers.arelease(slot, plan.breaker_outcome(exc))
                    if not plan.failed(target, exc):
                        raise
        await retry.asleep(plan.pass_wait())


async def _release(slot: Slot | None, outcome: str) -> None:
    if slot is not None:
        await breakers.arelease(slot, outcome)


async def _route(call: _ACall, model: str, kind: str) -> Route:
    if not isinstance(model, str) or not model:
        raise BadRequest("Name a model.")
    route = (await aresolve(model)).check(kind)
    call.bind_route(route)
    return route


async def _begin_chat(call: _ACall, model: str, request: ChatRequest,
                      cache: CachePolicy | None) -> tuple[Route, ChatRequest, Lookup | None]:
    """The route and the request's checks, the switches (a refusal, the input filters: a filtered call skips the
    response cache), then the response cache (before the budget: a hit reserves nothing)."""
    route = await _route(call, model, ModelKind.CHAT)
    if not isinstance(request, ChatRequest):
        raise BadRequest("request must be a ChatRequest.")
    chat_request_check(request, route.widest_output)
    filtered = await call.switched(request) if call.switches else None
    if filtered is not None:
        request, cache = filtered, None
    return route, request, await response_cache.aread(response_cache.chat_lookup(cache, call.context, model,
                                                                                 request))


async def _start_chat(call: _ACall, route: Route, request: ChatRequest, preflight: Preflight | None) -> RoutePlan:
    plan = RoutePlan(route, max_tokens=request.max_tokens)
    if preflight is not None:  # the input estimate only serves the hook (~1 ms of CPU for a long prompt)
        await call.preflight(preflight, plan, callcore.input_estimate(request), request.max_tokens)
    call.start_clock()
    return plan


async def _result(call: _ACall, target: Target, answer: ProviderChat) -> ChatResult:
    record = await call.record(usage=answer.usage, status=CallStatus.OK, answer=answer)
    cost = callcore.cost_now(record.tokens, target.price())
    callcore.warn_unpriced(record, cost)
    return callcore.chat_result(call, answer, record, cost=cost, usage_event_id=None)


async def achat(*, model: str, request: ChatRequest, context: UsageContext, recorder: Recorder,
                preflight: Preflight | None = None, cache: CachePolicy | None = None,
                switches: bool = True) -> ChatResult:
    """One chat completion. Raises an LlmError subclass (readable message) or the preflight hook's refusal.
    `cache`: opt in to the response cache (llm/cache.py; a hit's result has cache_hit). `switches`: obey llm's call
    switches like the sync path (incidents' feature off and stricter filters); False only for a caller whose own
    door decides (the gateway)."""
    call = _ACall(Operation.CHAT, context, model, recorder, switches)
    try:
        route, request, lookup = await _begin_chat(call, model, request, cache)
        if lookup is not None and lookup.hit:
            record = await call.hit(lookup)
            return response_cache.chat_result(lookup.entry, record, usage_event_id=None)
        plan = await _start_chat(call, route, request, preflight)
        answer, target, slot = await _along(call, plan, lambda target, timeout: adapter_for(
            target.model.provider).achat(target.model, request, timeout=timeout))
        call.attempt_end()
        await _release(slot, "ok")
    except Exception as exc:
        raise await call.fail(exc)
    answer, blocked = screened_answer(call.switch, answer, call.guardrail_actions)
    result = await _result(call, target, answer)
    if blocked:
        raise blocked_output(call.guardrail_actions)
    await response_cache.astore(lookup, result)
    return result


class AsyncChatStream:
    """A streaming chat call: `await open()` connects (or raises, recorded); iterate for StreamDelta(text=…);
    once exhausted `.result` is the ChatResult. Iterating without open() opens first.

    A mid-stream upstream failure raises StreamInterrupted after recording what was used. Stopping early:
    `await aclose()` records the call with estimated usage and finish_reason "cancelled". A stream dropped
    open without aclose() (a caller's bug, or an exception between open and the end) is closed and recorded the
    same way by its finaliser, on the loop it was opened on (`await dropped_streams_settled()` waits for those).
    Tool calls stream as StreamDelta.tool_calls pieces (OpenAI's index/id/name/arguments), the assembled calls
    in `.result.tool_calls`.
    """

    def __init__(self, *, model: str, request: ChatRequest, context: UsageContext, recorder: Recorder,
                 preflight: Preflight | None = None, cache: CachePolicy | None = None, switches: bool = True):
        self._call = _ACall(Operation.CHAT, context, model, recorder, switches)
        self._cache = cache
        self._lookup: Lookup | None = None  # the response cache: a hit replays its entry, a complete miss is stored
        self._model = model
        self._request = request
        self._preflight = preflight
        self._text = StreamText(request) if isinstance(request, ChatRequest) else None
        self._target: Target | None = None
        self._slot: Slot | None = None
        self._source: AsyncIterator[StreamDelta] | None = None
        self._result: ChatResult | None = None
        self._done = False
        self._loop: asyncio.AbstractEventLoop | None = None  # where it was opened: its finaliser records there

    @property
    def request_id(self) -> str:
        return self._call.context.request_id

    @property
    def cache_hit(self) -> bool:
        """Answered from the response cache (known once open)."""
        return self._lookup is not None and self._lookup.hit

    async def open(self) -> AsyncChatStream:
        """Resolve, check, ask the budget hook and connect (retrying); raises LlmError before any delta."""
        if self._source is not None or self._done:
            return self
        call = self._call
        request = self._request
        self._loop = asyncio.get_running_loop()
        try:
            route, request, self._lookup = await _begin_chat(call, self._model, request, self._cache)
            if self.cache_hit:
                self._source = _replayed(self._lookup.entry)
                return self
            plan = await _start_chat(call, route, request, self._preflight)
            # Fallback happens here only, while connecting: once the stream has begun it is this deployment's.
            self._source, self._target, self._slot = await _along(call, plan, lambda target, timeout: adapter_for(
                target.model.provider).achat_stream(target.model, request, timeout=timeout))
            if call.switch is not None and call.switch.output != "off":
                self._source = await self._whole(call.switch)
        except Exception as exc:
            self._done = True
            raise await call.fail(exc)
        return self

    async def _whole(self, switch: CallSwitch) -> AsyncIterator[StreamDelta]:
        """The stream under an output filter, as on the sync path: read whole and scanned now, then handed out as
        one piece; a block is recorded (what the answer cost) and raised from open()."""
        try:
            pieces = [piece async for piece in self._source]
        except Exception:
            await self._give_back("fail")
            raise
        shown, final, blocked = screened_stream(switch, pieces, self._call.guardrail_actions)
        if blocked:
            self._call.attempt_end()
            await self._give_back("ok")
            await self._call.record(usage=final.usage if final else None, status=CallStatus.OK)
            raise blocked_output(self._call.guardrail_actions)
        return _listed(shown)

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
                await self._give_back("fail")
                cut = stream_interrupted(exc, self._call.provider_label, len(self._text.text))
                raise (await self._call.fail(cut, usage=self._text.usage_so_far())) from exc
            if piece.final is not None:
                await self._finish(piece.final)
                raise StopAsyncIteration
            if piece.text or piece.tool_calls:
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

    async def _give_back(self, outcome: str) -> None:
        slot, self._slot = self._slot, None
        await _release(slot, outcome)

    async def _finish(self, final: ProviderChat | None, finish_reason: str | None = None) -> None:
        self._done = True
        if self.cache_hit:
            record = await self._call.hit(self._lookup, ttft_ms=self._call.ttft_ms)
            self._result = response_cache.chat_result(self._lookup.entry, record, usage_event_id=None)
            return
        complete = final is not None
        if final is None:
            final = self._text.cut_answer(finish_reason)
        self._call.attempt_end()
        await self._give_back("none" if finish_reason == "cancelled" else "ok")
        self._result = await _result(self._call, self._target, final)
        if complete:
            await response_cache.astore(self._lookup, self._result)

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

    def __del__(self) -> None:
        # Dropped while open: close the upstream and record the call (cancelled, estimated usage) on its loop.
        if self._done or self._source is None or self._loop is None:
            return
        if self._loop.is_closed():
            log.warning("a chat stream (%s) was dropped open after its event loop closed: not recorded",
                        self.request_id)
            return
        try:
            self._loop.call_soon_threadsafe(_close_dropped, self)
        except RuntimeError:  # the loop closed in between
            log.warning("a chat stream (%s) was dropped open as its event loop closed: not recorded", self.request_id)

    async def __aenter__(self) -> AsyncChatStream:
        return await self.open()

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


async def _replayed(entry: dict) -> AsyncIterator[StreamDelta]:
    async for piece in _listed(response_cache.replay(entry)):
        yield piece


async def _listed(pieces) -> AsyncIterator[StreamDelta]:
    for piece in pieces:
        yield piece


_dropped: set[asyncio.Task] = set()  # the recordings of dropped streams, held until they end


def _close_dropped(stream: AsyncChatStream) -> None:
    task = asyncio.get_running_loop().create_task(stream.aclose())
    _dropped.add(task)
    task.add_done_callback(_dropped.discard)
    task.add_done_callback(_dropped_logged)


def _dropped_logged(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("recording a dropped chat stream failed", exc_info=task.exception())


async def dropped_streams_settled() -> None:
    """Wait until the streams dropped open on this loop are recorded (tests, or code that must see the record)."""
    await asyncio.sleep(0)  # a finaliser run just now schedules its recording on the next turn
    while pending := [t for t in _dropped if t.get_loop() is asyncio.get_running_loop()]:
        await asyncio.gather(*pending, return_exceptions=True)


def achat_stream(*, model: str, request: ChatRequest, context: UsageContext, recorder: Recorder,
                 preflight: Preflight | None = None, cache: CachePolicy | None = None,
                 switches: bool = True) -> AsyncChatStream:
    """A streaming chat completion (not yet connected: `await stream.open()`, or iterate); see AsyncChatStream.
    `cache`: opt in to the response cache (a hit, `stream.cache_hit` once open, is replayed). `switches`: as
    achat()."""
    return AsyncChatStream(model=model, request=request, context=context, recorder=recorder, preflight=preflight,
                           cache=cache, switches=switches)


async def aembed(*, model: str, texts: list[str], context: UsageContext, recorder: Recorder,
                 preflight: Preflight | None = None, cache: CachePolicy | None = None) -> EmbeddingResult:
    """Embed `texts` in order (batched per LLM_EMBED_BATCH_SIZE). One CallRecord for the call.
    `cache`: opt in to the response cache (llm/cache.py)."""
    call = _ACall(Operation.EMBEDDING, context, model, recorder)
    try:
        callcore.embed_texts_check(texts)
        route = await _route(call, model, ModelKind.EMBEDDING)
        if not texts:  # nothing to do: no provider call, nothing to record
            return callcore.embedding_nothing(call)
        lookup = await response_cache.aread(response_cache.embeddings_lookup(cache, call.context, model, texts))
        if lookup is not None and lookup.hit:
            record = await call.hit(lookup)
            return response_cache.embedding_result(lookup.entry, record, usage_event_id=None)
        plan = RoutePlan(route)
        await call.preflight(preflight, plan, sum(estimate_tokens(t) for t in texts), 0)
        call.start_clock()
        size = max(1, settings.LLM_EMBED_BATCH_SIZE)

        async def attempt(target: Target, timeout: float | None) -> ProviderEmbedding:
            adapter = adapter_for(target.model.provider)
            answers = [await adapter.aembed(target.model, texts[i:i + size], timeout=timeout)
                       for i in range(0, len(texts), size)]
            return callcore.embeddings_join(target.model, answers)

        answer, target, slot = await _along(call, plan, attempt)
        call.attempt_end()
        await _release(slot, "ok")
    except Exception as exc:
        raise await call.fail(exc)
    record = await call.record(usage=answer.usage, status=CallStatus.OK, answer=answer)
    cost = callcore.cost_now(record.tokens, target.price())
    result = callcore.embedding_result(answer.vectors, answer.usage, record, cost=cost, usage_event_id=None,
                                       remote_model=answer.remote_model)
    await response_cache.astore(lookup, result)
    return result
