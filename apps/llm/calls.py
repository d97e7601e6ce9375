"""The one model call path. Every model call in the portal goes through `chat`, `chat_stream` or `embed`.

Each call: resolves the name (an alias's deployments, or one catalog model: routing.py), checks the
arguments, asks costs whether it may spend (`usage_preflight`, with the worst-case cost), calls the
provider's adapter along the route's plan (retries, fallback, breakers: routing.py, breakers.py), and
records exactly one UsageEvent — on success, on a provider error, and on a refusal — priced at the price
valid at that moment. Unpriced models give `cost=None`, never a silent 0. Prompts and outputs are never
logged or stored here.

A UsageContext may be reused for several calls: the first records under `context.request_id`, later ones
under `<request_id>-2`, `-3`…, so the ledger's idempotency never swallows a real call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.conf import settings

from apps.costs import services as costs_services
from apps.costs.models import CallStatus, Operation, UsageEvent
from apps.costs.services import UsageContext
from apps.llm import breakers, callcore, retry
from apps.llm import cache as response_cache
from apps.llm.adapters import adapter_for
from apps.llm.breakers import Slot
from apps.llm.cache import CachePolicy, Lookup
from apps.llm.callcore import CallState, StreamText, chat_request_build, chat_request_check
from apps.llm.errors import LlmError, stream_interrupted
from apps.llm.models import Model, ModelKind
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
from apps.llm.routing import Route, RoutePlan, Target, rerouted, resolve, route_for_model
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

__all__ = ["ChatStream", "chat", "chat_stream", "embed", "resolve_model"]


def _route(model: str | Model, kind: str) -> Route:
    if isinstance(model, Model):  # a catalog model handed in directly: its own route, unless rerouted now
        route = resolve(model.name) if rerouted(model.name) else route_for_model(model)
    else:
        route = resolve(str(model))
    return route.check(kind)


def resolve_model(model: str | Model, kind: str) -> Model:
    """The active catalog model of `kind` named `model` (or the Model given), with its provider."""
    return _route(model, kind).first.model


SyncRecorder = Callable[[CallRecord], None]  # takes a call's one CallRecord for a later ledger write; may raise


class HeldRecords:
    """A SyncRecorder that keeps the records of calls until the caller knows what to add to them (a RAG answer's
    groundedness, known only after the answer's call: ADR 0121), then `release()` hands each to `recorder` (the
    ledger writer's queue) or, if it refuses, writes it to the ledger at once. Release in a `finally`: a held
    record is not recorded yet. A call holding a budget reservation never reaches it (written at once)."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def __call__(self, record: CallRecord) -> None:
        self.records.append(record)

    def release(self, recorder: SyncRecorder, **changes) -> int:
        """Hand the held records on, each with `changes` (CallRecord fields); how many there were."""
        records, self.records = self.records, []
        for record in records:
            record = dataclasses.replace(record, **changes) if changes else record
            try:
                recorder(record)
            except Exception:  # noqa: BLE001 - the queue failing must not lose the call: written now
                log.warning("usage queue refused request %s: written to the ledger now", record.request_id)
                callcore.ledger_record(record)
        return len(records)


class _Call(CallState):
    """One sync call's bookkeeping: the CallRecord is written to the ledger at once, once — or, with a
    `recorder` (a queue the ledger writer drains), handed to it instead, unless the call holds a budget
    reservation (only the ledger write at once settles it) or the recorder fails (then written at once)."""

    event: UsageEvent | None = None
    queued = False  # the record went to the recorder: no UsageEvent row yet
    reserved = False  # usage_preflight reserved budget under this call's request id

    def __init__(self, operation: str, context: UsageContext, model: str | Model, recorder: SyncRecorder | None = None):
        super().__init__(operation, context, model)
        self.recorder = recorder

    def record(self, *, usage: Usage | None, status: str, error_type: str = "") -> UsageEvent | None:
        """Record the call once; the UsageEvent, or None when the record was queued."""
        if self.event is None and not self.queued:
            record = self.finish(usage=usage, status=status, error_type=error_type)
            if self.recorder is not None and not self.reserved:
                try:
                    self.recorder(record)
                except Exception:  # noqa: BLE001 - the queue failing must not lose the call: written now
                    log.warning("usage queue refused request %s: written to the ledger now", record.request_id)
                else:
                    self.queued = True
                    return None
            self.event = callcore.ledger_record(record)
        return self.event

    def hit(self, lookup: Lookup, ttft_ms: int | None = None) -> tuple[CallRecord, UsageEvent | None]:
        """Record the call as answered from the response cache."""
        record = self.finish_hit(lookup, ttft_ms)
        return record, self.record(usage=None, status=CallStatus.OK)

    def fail(self, exc: BaseException, usage: Usage | None = None) -> BaseException:
        """Record the failure (unless already recorded) and hand the exception back to be raised."""
        if self.event is None and not self.queued:
            error_type = callcore.error_type_of(exc)
            status = CallStatus.REFUSED if isinstance(exc, CallBlocked) else CallStatus.ERROR  # a filter's input block
            try:
                self.record(usage=usage, status=status, error_type=error_type)
            except Exception:  # the ledger failing must not hide why the call failed
                log.exception("could not record a failed model call (%s)", error_type)
            log.info("model call %s on %s failed: %s", self.operation, self.model_label, error_type)
        return exc

    def switched(self) -> CallSwitch | None:
        """What the registered switches say of this call (apps/llm/switches.py); a refusal is recorded and raised."""
        switch = self.switch = switch_for(self.context)
        if switch is not None and switch.refuse:
            self.refused_by = switch.switch_id
            self.record(usage=None, status=CallStatus.REFUSED, error_type=switch.code)
            raise CallRefused(switch.refuse, code=switch.code)
        return switch

    def preflight(self, plan: RoutePlan, input_tokens: int, max_output_tokens: int | None) -> None:
        """Ask costs whether this call may spend; a refusal is recorded and re-raised as is."""
        worst = plan.worst_case(input_tokens, max_output_tokens)
        try:
            self.reserved = bool(costs_services.usage_preflight(context=self.context, model=self.model_label,
                                                                worst_case_cost=worst))
        except Exception as exc:
            self.record(usage=None, status=CallStatus.REFUSED, error_type=type(exc).__name__)
            raise


def _along(call: _Call, plan: RoutePlan, attempt: Callable[[Target, float | None], T]) -> tuple[T, Target, Slot | None]:
    """Run `attempt(target, timeout)` along the plan: breakers, fallback, backoff. The winner's breaker slot is
    returned still held (a stream gives it back when it ends); raises the error the plan gives up with."""
    while True:
        for tier in plan.tiers():
            counts = breakers.inflight(tier) if plan.least_inflight else None
            for target in plan.order(tier, counts):
                if not plan.can_attempt():
                    break
                if not plan.eligible(target):  # an attempt of this pass ruled it out (a context window)
                    continue
                slot = breakers.acquire(target) if target.deployment_id else None
                if isinstance(slot, str):
                    plan.skip(target, slot)
                    continue
                call.attempt_begin(plan, target)
                try:
                    return attempt(target, plan.attempt_timeout(target)), target, slot
                except LlmError as exc:
                    if slot is not None:
                        breakers.release(slot, plan.breaker_outcome(exc))
                    if not plan.failed(target, exc):
                        raise
        retry.sleep(plan.pass_wait())


def _release(slot: Slot | None, outcome: str) -> None:
    if slot is not None:
        breakers.release(slot, outcome)


def _chat_result(call: _Call, answer: ProviderChat, target: Target | None = None) -> ChatResult:
    """The call's result, recorded; a record handed to a recorder (`target`: who answered) is priced now."""
    event = call.record(usage=answer.usage, status=CallStatus.OK)
    record = call.finish(usage=answer.usage, status=CallStatus.OK)
    cost = callcore.cost_now(record.tokens, target.price()) if event is None and target is not None else \
        event and event.cost
    return callcore.chat_result(call, answer, record, cost=cost, usage_event_id=event and event.pk)


def _asked(model: str | Model) -> str:
    """The name the caller asked for (an alias or a model): what the response cache keys on."""
    return model.name if isinstance(model, Model) else str(model)


def _cached_chat(call: _Call, lookup: Lookup) -> ChatResult:
    record, event = call.hit(lookup)
    return response_cache.chat_result(lookup.entry, record, usage_event_id=event and event.pk)


def _begin_chat(call: _Call, model, request: ChatRequest, cache: CachePolicy | None
                ) -> tuple[Route, ChatRequest, CallSwitch | None, Lookup | None]:
    """The route and the request's checks, the switches (a refusal, the input filters: a filtered call skips the
    response cache), then the response cache (before the budget: a hit reserves nothing)."""
    route = _route(model, ModelKind.CHAT)
    call.bind_route(route)
    chat_request_check(request, route.widest_output)
    switch = call.switched()
    filtered = screened_request(switch, request, call.guardrail_actions)
    if filtered is not None:  # a filtered call skips the response cache
        request, cache = filtered, None
    return route, request, switch, response_cache.read(response_cache.chat_lookup(cache, call.context,
                                                                                  _asked(model), request))


def _whole_stream(call: _Call, switch: CallSwitch, source: Iterator[StreamDelta], slot: Slot | None
                  ) -> Iterator[StreamDelta]:
    """A stream under an output filter: read whole and scanned now; then handed out as one piece. A block is
    recorded (what the answer cost) and raised from chat_stream() itself."""
    try:
        pieces = list(source)
    except Exception:
        _release(slot, "fail")
        raise
    shown, final, blocked = screened_stream(switch, pieces, call.guardrail_actions)
    if blocked:
        call.attempt_end()
        _release(slot, "ok")
        call.record(usage=final.usage if final else None, status=CallStatus.OK)
        raise blocked_output(call.guardrail_actions)
    return iter(shown)


def _start_chat(call: _Call, route: Route, request: ChatRequest) -> RoutePlan:
    plan = RoutePlan(route, max_tokens=request.max_tokens)
    call.preflight(plan, callcore.input_estimate(request), request.max_tokens)
    call.start_clock()
    return plan


def chat(*, model: str | Model, messages: list[dict], context: UsageContext, temperature: float | None = None,
         max_tokens: int | None = None, response_format: dict | None = None,
         tools: list[dict] | None = None, extra: dict | None = None, cache: CachePolicy | None = None,
         recorder: SyncRecorder | None = None) -> ChatResult:
    """One chat completion. Raises an LlmError subclass (message readable by users) or the preflight's refusal.
    `cache`: opt in to the response cache (llm/cache.py). `recorder`: as `embed`'s (a RAG answer holds its
    record in a HeldRecords until its groundedness is known, ADR 0121)."""
    call = _Call(Operation.CHAT, context, model, recorder)
    try:
        request = chat_request_build(messages, temperature, max_tokens, response_format, tools, extra)
        route, request, switch, lookup = _begin_chat(call, model, request, cache)
        if lookup is None or not lookup.hit:
            plan = _start_chat(call, route, request)
            answer, target, slot = _along(call, plan, lambda target, timeout: adapter_for(
                target.model.provider).chat(target.model, request, timeout=timeout))
            call.attempt_end()
            _release(slot, "ok")
    except Exception as exc:
        raise call.fail(exc)
    if lookup is not None and lookup.hit:
        return _cached_chat(call, lookup)
    answer, blocked = screened_answer(switch, answer, call.guardrail_actions)
    result = _chat_result(call, answer, target)
    if blocked:
        raise blocked_output(call.guardrail_actions)
    response_cache.store(lookup, result)
    return result


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

    def __init__(self, call: _Call, request: ChatRequest, source: Iterator[StreamDelta], slot: Slot | None = None,
                 lookup: Lookup | None = None):
        self._call = call
        self._lookup = lookup  # the response cache: a hit replays its entry, a complete miss is stored
        self._request = request
        self._source = source
        self._slot = slot
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
                self._give_back("fail")
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

    def _give_back(self, outcome: str) -> None:
        slot, self._slot = self._slot, None
        _release(slot, outcome)

    def _finish(self, final: ProviderChat | None, finish_reason: str | None = None) -> None:
        lookup = self._lookup
        if lookup is not None and lookup.hit:
            record, event = self._call.hit(lookup, ttft_ms=self._call.ttft_ms)
            self._result = response_cache.chat_result(lookup.entry, record, usage_event_id=event.pk)
            return
        complete = final is not None
        if final is None:
            final = self._text.cut_answer(finish_reason)
        self._call.attempt_end()
        self._give_back("none" if finish_reason == "cancelled" else "ok")
        self._result = _chat_result(self._call, final)
        if complete:
            response_cache.store(lookup, self._result)

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
                extra: dict | None = None, cache: CachePolicy | None = None) -> ChatStream:
    """A streaming chat completion; see ChatStream. Usage comes from the provider's final chunk, else estimated.
    `cache`: opt in to the response cache (a hit is replayed as a stream)."""
    call = _Call(Operation.CHAT, context, model)
    try:
        request = chat_request_build(messages, temperature, max_tokens, response_format, tools, extra)
        route, request, switch, lookup = _begin_chat(call, model, request, cache)
        if lookup is not None and lookup.hit:
            return ChatStream(call, request, iter(response_cache.replay(lookup.entry)), lookup=lookup)
        plan = _start_chat(call, route, request)
        # Fallback happens here only, while connecting: once the stream has begun it is this deployment's.
        source, _, slot = _along(call, plan, lambda target, timeout: adapter_for(target.model.provider).chat_stream(
            target.model, request, timeout=timeout))
        if switch is not None and switch.output != "off":
            source = _whole_stream(call, switch, source, slot)
    except Exception as exc:
        raise call.fail(exc)
    return ChatStream(call, request, source, slot, lookup=lookup)


def embed_ahead(*, model: str, texts: list[str]) -> None:
    """Start the model on one text now, ahead of the `embed()` call that asks for it, where the route's first
    target runs in this process (the offline provider keeps a thread for it): the caller does other work
    meanwhile (the RAG query path: its keyword leg, ADR 0128), and `embed()` then takes the vector from that run.
    Usage, budgets and the ledger stay `embed()`'s. Nothing happens for a remote model, several texts, or a name
    that does not resolve (`embed()` reports that)."""
    if len(texts) != 1:
        return
    try:
        target = _route(model, ModelKind.EMBEDDING).first
    except LlmError:
        return
    ahead = getattr(adapter_for(target.model.provider), "embed_ahead", None)  # only in-process adapters have it
    if ahead is not None:
        ahead(target.model, texts[0])


def embed(*, model: str | Model, texts: list[str], context: UsageContext,
          cache: CachePolicy | None = None, recorder: SyncRecorder | None = None) -> EmbeddingResult:
    """Embed `texts` in order (batched per LLM_EMBED_BATCH_SIZE, default 256). One usage event for the call.
    `cache`: opt in to the response cache (llm/cache.py). `recorder`: hand the call's record to a queue the
    ledger writer drains instead of writing it in this request (the RAG query path, ADR 0047); the result
    then has `usage_event_id` None and its cost computed at the price valid now."""
    call = _Call(Operation.EMBEDDING, context, model, recorder)
    try:
        callcore.embed_texts_check(texts)
        route = _route(model, ModelKind.EMBEDDING)
        call.bind_route(route)
        if not texts:  # nothing to do: no provider call, nothing to record
            return callcore.embedding_nothing(call)
        lookup = response_cache.read(response_cache.embeddings_lookup(cache, call.context, _asked(model), texts))
        if lookup is not None and lookup.hit:
            record, event = call.hit(lookup)
            return response_cache.embedding_result(lookup.entry, record, usage_event_id=event and event.pk)
        plan = RoutePlan(route)
        call.preflight(plan, sum(estimate_tokens(t) for t in texts), 0)
        call.start_clock()
        size = max(1, settings.LLM_EMBED_BATCH_SIZE)

        def attempt(target: Target, timeout: float | None) -> ProviderEmbedding:
            adapter = adapter_for(target.model.provider)
            answers = [adapter.embed(target.model, texts[i:i + size], timeout=timeout)
                       for i in range(0, len(texts), size)]
            return callcore.embeddings_join(target.model, answers)

        answer, target, slot = _along(call, plan, attempt)
        call.attempt_end()
        _release(slot, "ok")
    except Exception as exc:
        raise call.fail(exc)
    event = call.record(usage=answer.usage, status=CallStatus.OK)
    record = call.finish(usage=answer.usage, status=CallStatus.OK)
    cost = callcore.cost_now(record.tokens, target.price()) if event is None else event.cost
    result = callcore.embedding_result(answer.vectors, answer.usage, record, cost=cost,
                                       usage_event_id=event and event.pk, remote_model=answer.remote_model)
    response_cache.store(lookup, result)
    return result
