"""What the two faces of the one call path share: the sync one (calls.py) and the async one (acalls.py).

Argument checks, the per-call bookkeeping that ends in one CallRecord, stream assembly and the result
objects live here once; each face adds only how it waits (threads or coroutines) and how it records (the
ledger at once, or the caller's Recorder).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from decimal import Decimal

from apps.core import metrics
from apps.core.request_context import current
from apps.costs.models import CallStatus, Price, UsageEvent
from apps.costs.pricing import cost_of, quantize
from apps.costs.services import UsageContext, usage_event_record
from apps.llm import cache
from apps.llm.errors import BadRequest, LlmError, MalformedResponse
from apps.llm.models import Model
from apps.llm.results import (
    CallRecord,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ProviderChat,
    ProviderEmbedding,
    Usage,
)
from apps.llm.tokens import estimate_messages_tokens, estimate_tokens

log = logging.getLogger(__name__)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_warned_unpriced: set[str] = set()


# -- argument checks ------------------------------------------------------------------------------------------
def _number(low: float, high: float) -> Callable[[object], str | None]:
    def check(value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "must be a number"
        return None if low <= value <= high else f"must be from {low:g} to {high:g}"
    return check


def _integer(low: int | None = None, high: int | None = None) -> Callable[[object], str | None]:
    def check(value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        if (low is not None and value < low) or (high is not None and value > high):
            return f"must be from {low} to {high}" if high is not None else f"must be at least {low}"
        return None
    return check


def _boolean(value) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _short_text(value) -> str | None:
    return None if isinstance(value, str) and len(value) <= 256 else "must be a string of at most 256 characters"


def _stop(value) -> str | None:
    if isinstance(value, str) or value is None:
        return None
    if isinstance(value, list) and 1 <= len(value) <= 4 and all(isinstance(v, str) for v in value):
        return None
    return "must be a string or a list of up to 4 strings"


def _tool_choice(value) -> str | None:
    if value in ("none", "auto", "required"):
        return None
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return None
    return 'must be "none", "auto", "required" or {"type": "function", "function": {"name": …}}'


def _n(value) -> str | None:
    return None if value == 1 and not isinstance(value, bool) else "only 1 is supported (one choice per call)"


def _logit_bias(value) -> str | None:
    if isinstance(value, dict) and len(value) <= 300 and all(
            isinstance(k, str) and k.isdigit() and not isinstance(v, bool) and isinstance(v, int | float)
            and -100 <= v <= 100 for k, v in value.items()):
        return None
    return "must map token ids to numbers from -100 to 100"


def _choice(*allowed: str) -> Callable[[object], str | None]:
    def check(value) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"
    return check


# OpenAI chat parameters passed through to the provider as they are (ChatRequest.extra), each with its check.
EXTRA_PARAMETERS: dict[str, Callable[[object], str | None]] = {
    "top_p": _number(0, 1),
    "stop": _stop,
    "seed": _integer(),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "user": _short_text,
    "logprobs": _boolean,
    "top_logprobs": _integer(0, 20),
    "parallel_tool_calls": _boolean,
    "tool_choice": _tool_choice,
    "n": _n,
    "logit_bias": _logit_bias,
    "reasoning_effort": _choice("minimal", "low", "medium", "high"),
    "service_tier": _choice("auto", "default", "flex", "priority"),
}


def chat_request_build(messages, temperature=None, max_tokens=None, response_format=None, tools=None,
                       extra=None) -> ChatRequest:
    """The sync face's keyword arguments as a ChatRequest (checked by chat_request_check)."""
    return ChatRequest(messages=messages, temperature=temperature, max_tokens=max_tokens,
                       response_format=response_format, tools=tools or None, extra=dict(extra or {}))


def chat_request_check(request: ChatRequest, model: Model | None = None) -> None:
    """Raise BadRequest, in words a user can act on, if `request` is not a valid chat request (for `model`)."""
    messages = request.messages
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Give at least one message.")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequest(f"Message {i + 1} needs a role: one of {', '.join(sorted(ROLES))}.")
    temperature = request.temperature
    if temperature is not None and (isinstance(temperature, bool) or not (
            isinstance(temperature, int | float) and 0 <= temperature <= 2)):
        raise BadRequest("Temperature must be a number from 0 to 2.")
    max_tokens = request.max_tokens
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequest("max_tokens must be a positive whole number.")
        if model is not None and max_tokens > model.max_output_tokens:
            raise BadRequest(f"max_tokens {max_tokens} is more than {model.name} may produce "
                             f"({model.max_output_tokens}).")
    response_format = request.response_format
    if response_format is not None and not (isinstance(response_format, dict) and response_format.get("type")):
        raise BadRequest('response_format must be like {"type": "json_object"}.')
    tools = request.tools
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise BadRequest("tools must be a list of tool definitions.")
    if not isinstance(request.extra, dict):
        raise BadRequest("extra must be an object of OpenAI parameters.")
    for name, value in request.extra.items():
        check = EXTRA_PARAMETERS.get(name)
        if check is None:
            raise BadRequest(f"The parameter '{name}' is not supported. Supported: "
                             f"{', '.join(sorted(EXTRA_PARAMETERS))}.")
        problem = check(value)
        if problem:
            raise BadRequest(f"{name} {problem}.")


def embed_texts_check(texts) -> None:
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise BadRequest("texts must be a list of strings.")


def embedding_dimensions_check(model: Model, vectors: list[list[float]]) -> None:
    dims = {len(v) for v in vectors}
    if model.embedding_dimensions and dims != {model.embedding_dimensions}:
        raise MalformedResponse(f"{model.name} returned {sorted(dims)}-dimensional vectors; the catalog "
                                f"says {model.embedding_dimensions}. Fix the model's dimensions.")


def embeddings_join(model: Model, answers: list[ProviderEmbedding]) -> ProviderEmbedding:
    """The batches of one embeddings call as one answer, its vectors checked against the catalog."""
    vectors = [vector for answer in answers for vector in answer.vectors]
    usage = Usage()
    for answer in answers:
        usage = usage + answer.usage
    embedding_dimensions_check(model, vectors)
    remote = next((a.remote_model for a in reversed(answers) if a.remote_model), "")
    return ProviderEmbedding(vectors=vectors, usage=usage, remote_model=remote)


def embedding_nothing(state: CallState) -> EmbeddingResult:
    """Nothing to embed: no provider call, nothing recorded."""
    return EmbeddingResult(vectors=[], model=state.model_label, provider=state.provider_label, usage=Usage(),
                           latency_ms=0, cost=Decimal(0), usage_event_id=None, request_id=state.context.request_id,
                           alias=state.alias, deployment=state.deployment)


def input_estimate(request: ChatRequest) -> int:
    """The request's input tokens (estimated), counted once per request object: a caller that reserves ahead of the
    call (acalls.chat_preflight_check) and the call itself share the count. A changed request is a new object
    (ChatRequest is frozen: dataclasses.replace), so it is counted afresh."""
    found = request.__dict__.get("_input_estimate")
    if found is None:
        found = request.__dict__["_input_estimate"] = estimate_messages_tokens(request.messages, request.tools)
    return found


# -- per-call bookkeeping -------------------------------------------------------------------------------------
def call_context(context: UsageContext) -> UsageContext:
    """A copy of `context` for one call: its own request id, and the acting user if none was given.

    The first call of a context records under `context.request_id`, later ones under `<id>-2`, `-3`…, so the
    ledger's idempotency never swallows a real call.
    """
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


def error_type_of(exc: BaseException) -> str:
    if isinstance(exc, LlmError):
        return exc.error_type
    return getattr(exc, "error_type", None) or type(exc).__name__  # a refusal may name its own (a wire code)


class CallState:
    """One call's facts as they accumulate (who answered, clocks, fallbacks), ending in one CallRecord."""

    def __init__(self, operation: str, context: UsageContext, model: str | Model):
        self.operation = operation
        self.context = call_context(context)
        self.model_label = model.name if isinstance(model, Model) else str(model)[:200]
        self.provider_label = ""
        self.provider_kind = "unknown"
        self.price_name: str | None = None
        self.alias = ""
        self.deployment = ""
        self.fallbacks = 0
        self.cache_hit = False
        self.started = time.perf_counter()
        self.attempt_started: float | None = None
        self.upstream_ms: int | None = None
        self.ttft_ms: int | None = None
        self.call_record: CallRecord | None = None
        self.guardrail_actions: list[dict] = []  # what a switch's filters did (apps/llm/switches.py)
        # The switches (apps/llm/switches.py, routing's reroutes) that act on this call: the one that acted marks
        # its record (UsageContext.switch_id): a refusal, else a filter that acted, else a reroute that served it.
        self.switch = None  # the call switches' answer (a CallSwitch), once asked
        self.refused_by: int | None = None
        self.rerouted_by: int | None = None

    def bind(self, model: Model, *, deployment: str = "") -> None:
        """The catalog model (and alias deployment) this call is sent to now."""
        self.model_label = model.name
        self.provider_label = model.provider.name
        self.provider_kind = model.provider.kind
        self.price_name = model.priced_as
        self.deployment = deployment

    def bind_route(self, route) -> None:
        """The route resolved (routing.Route): its alias, and its first choice until an attempt says otherwise."""
        self.alias = route.alias
        self.bind(route.first.model, deployment=route.first.deployment)
        self.rerouted_by = route.first.switch_id or route.switch_id

    def attempt_begin(self, plan, target) -> None:
        """An attempt on `target` (routing.Target) starts: it is who answers, unless it fails."""
        plan.attempted()
        self.bind(target.model, deployment=target.deployment)
        self.rerouted_by = target.switch_id or plan.route.switch_id
        self.fallbacks = plan.fallbacks
        self.attempt_start()

    def start_clock(self) -> None:
        self.started = time.perf_counter()

    def attempt_start(self) -> None:
        self.attempt_started = time.perf_counter()

    def attempt_end(self) -> None:
        if self.attempt_started is not None:
            self.upstream_ms = max(0, round((time.perf_counter() - self.attempt_started) * 1000))

    def elapsed_ms(self) -> int:
        return max(0, round((time.perf_counter() - self.started) * 1000))

    def first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = self.elapsed_ms()

    def finish_hit(self, lookup, ttft_ms: int | None = None) -> CallRecord:
        """The call answered from the response cache (cache.Lookup): its one CallRecord is the hit's. Its saving is
        priced at the hit's time under the answering model's price name when that model is the one the route bound
        (the usual case; an answer a fallback deployment gave keeps the cost it was made at)."""
        same_model = lookup.entry.get("model") == self.model_label
        self.call_record = cache.hit_record(lookup, context=self.context, operation=self.operation, ttft_ms=ttft_ms,
                                            price_name=self.price_name if same_model else None)
        return self.call_record

    def finish(self, *, usage: Usage | None, status: str, error_type: str = "") -> CallRecord:
        """The call's one CallRecord (made once; later calls return the same one)."""
        if self.call_record is None:
            usage = usage or Usage()
            if self.upstream_ms is None and self.attempt_started is not None:
                self.attempt_end()
            self.call_record = CallRecord(
                request_id=self.context.request_id, context=self.marked_context(), provider=self.provider_label,
                model=self.model_label, price_name=self.price_name, operation=self.operation,
                tokens=usage.token_counts(), status=status, error_type=error_type[:80],
                latency_ms=self.elapsed_ms(), upstream_ms=self.upstream_ms, ttft_ms=self.ttft_ms,
                deployment=self.deployment, alias=self.alias, fallbacks=self.fallbacks, cache_hit=self.cache_hit,
                estimated=usage.estimated, guardrail_actions=tuple(self.guardrail_actions),
            )
            count(self.call_record, self.provider_kind)
        return self.call_record


    def marked_context(self) -> UsageContext:
        """The call's context with the switch that acted on it (a refusal, a filter that acted, a reroute that
        served it; else the caller's own mark, e.g. rag's retrieval switch), for its usage row."""
        acted = self.switch.acted(self.guardrail_actions) if self.switch is not None and self.guardrail_actions \
            else None
        mark = self.refused_by or acted or self.rerouted_by
        return self.context if mark is None else dataclasses.replace(self.context, switch_id=mark)


def count(record: CallRecord, provider_kind: str) -> None:
    """The call path's Prometheus counters for one call."""
    metrics.labelled(metrics.MODEL_CALLS, provider_kind, record.model, record.operation, record.status).inc()
    tokens = record.tokens
    for direction, number in (("input", tokens.input_tokens), ("output", tokens.output_tokens),
                              ("cached_input", tokens.cached_input_tokens), ("reasoning", tokens.reasoning_tokens)):
        if number:
            metrics.labelled(metrics.MODEL_TOKENS, record.model, direction).inc(number)


def cost_now(tokens, price: Price | None) -> Decimal | None:
    """What the ledger will charge for `tokens` at `price` (usage_event_record's rule, without a query)."""
    if price is None:
        return Decimal(0) if tokens.input_tokens == tokens.output_tokens == 0 else None
    return quantize(cost_of(tokens, price))


def warn_unpriced(record: CallRecord, cost: Decimal | None) -> None:
    if record.status == CallStatus.OK and cost is None and record.model not in _warned_unpriced:
        _warned_unpriced.add(record.model)
        log.warning("model %s has no price: its calls are recorded unpriced (cost NULL)", record.model)


def ledger_record(record: CallRecord) -> UsageEvent:
    """Write one CallRecord to the usage ledger now (the sync path; the gateway's batch writer likewise)."""
    context = record.context
    if context.request_id != record.request_id:
        context = dataclasses.replace(context, request_id=record.request_id)
    columns = ({"cache_hit": True, "cache_saving": record.cache_saving, "cache_tokens": record.cache_tokens}
               if record.cache_hit else {})  # llm/cache.py
    if record.guardrail_actions:  # a switch's filters acted (apps/llm/switches.py)
        columns["guardrail_actions"] = list(record.guardrail_actions)
    if record.groundedness is not None:  # a RAG answer's score (ADR 0121)
        columns["groundedness"] = record.groundedness
    event = usage_event_record(context=context, provider=record.provider, model=record.model,
                               price_name=record.price_name, operation=record.operation, tokens=record.tokens,
                               latency_ms=record.latency_ms, status=record.status, error_type=record.error_type,
                               occurred_at=record.occurred_at, **columns)
    warn_unpriced(record, event.cost)
    return event


# -- streams and results --------------------------------------------------------------------------------------
class StreamText:
    """The text a stream has produced so far, and the usage to record when it ends without the provider's."""

    def __init__(self, request: ChatRequest):
        self.request = request
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def usage_so_far(self) -> Usage:
        return Usage(input_tokens=input_estimate(self.request), output_tokens=estimate_tokens(self.text),
                     estimated=True)

    def cut_answer(self, finish_reason: str | None) -> ProviderChat:
        """What was streamed, as an answer (a cancelled stream)."""
        return ProviderChat(text=self.text, usage=self.usage_so_far(), finish_reason=finish_reason)


def chat_result(state: CallState, answer: ProviderChat, record: CallRecord, *, cost: Decimal | None,
                usage_event_id: int | None) -> ChatResult:
    return ChatResult(
        text=answer.text, model=record.model, provider=record.provider, usage=answer.usage,
        latency_ms=record.latency_ms, cost=cost, finish_reason=answer.finish_reason,
        usage_event_id=usage_event_id, request_id=record.request_id, tool_calls=answer.tool_calls,
        remote_model=answer.remote_model, refusal=answer.refusal, time_to_first_token_ms=record.ttft_ms,
        alias=record.alias, deployment=record.deployment, fallbacks=record.fallbacks,
    )


def embedding_result(vectors, usage: Usage, record: CallRecord, *, cost: Decimal | None,
                     usage_event_id: int | None, remote_model: str = "") -> EmbeddingResult:
    return EmbeddingResult(vectors=vectors, model=record.model, provider=record.provider, usage=usage,
                           latency_ms=record.latency_ms, cost=cost, usage_event_id=usage_event_id,
                           request_id=record.request_id, remote_model=remote_model, alias=record.alias,
                           deployment=record.deployment, fallbacks=record.fallbacks)
