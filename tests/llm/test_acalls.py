"""The async face of the one call path (acalls.py): the offline provider, and recorded OpenAI HTTP through an
httpx.AsyncClient on a MockTransport (the official SDK's AsyncOpenAI on top). Each call hands exactly one
CallRecord to the recorder and writes nothing to PostgreSQL itself.

The coroutines run through asgiref's async_to_sync, so the routes cache's rare database read (sync_to_async)
happens on the test's thread and sees the test's rows.
"""

from __future__ import annotations

import gc
import json
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.costs.models import UsageEvent
from apps.costs.services import UsageContext
from apps.llm import acalls, callcore
from apps.llm.adapters import use_async_http_client
from apps.llm.errors import BadRequest, ModelNotFound, ProviderUnavailable, RateLimited, StreamInterrupted
from apps.llm.models import ModelKind
from apps.llm.results import CallRecord, ChatRequest
from apps.llm.services import model_update
from tests.factories import ModelFactory, PriceFactory
from tests.support.standin import standin_model, standin_provider

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "system", "content": "You answer support questions briefly."},
            {"role": "user", "content": "How long do refunds take?"}]
QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


class Records(list):
    """A Recorder that keeps what it is given."""

    async def __call__(self, record: CallRecord) -> None:
        self.append(record)

    @property
    def only(self) -> CallRecord:
        assert len(self) == 1, f"expected exactly one call record, got {len(self)}"
        return self[0]


@pytest.fixture
def records():
    return Records()


def run(fn, **kwargs):
    return async_to_sync(fn)(**kwargs)


def stream_all(**kwargs):
    """Open a stream, read it to the end; (deltas, stream)."""

    async def go():
        stream = acalls.achat_stream(**kwargs)
        await stream.open()
        return [delta.text async for delta in stream], stream

    return async_to_sync(go)()


# -- the offline provider -------------------------------------------------------------------------------------
def test_achat_on_the_local_model_answers_and_hands_one_record_to_the_recorder(local_models, usage_context,
                                                                             records):
    result = run(acalls.achat, model="local-extractive", request=ChatRequest(messages=QUESTION),
                 context=usage_context, recorder=records)

    assert "14 days" in result.text
    record = records.only
    assert (record.request_id, record.provider, record.model, record.operation, record.status) == (
        usage_context.request_id, "local", "local-extractive", "chat", "ok")
    assert record.context.team_id == usage_context.team_id and record.context.feature == "support-bot"
    assert record.tokens.input_tokens == result.usage.input_tokens > 0 and record.estimated is True
    assert (record.alias, record.deployment, record.fallbacks, record.cache_hit) == ("", "", 0, False)
    assert result.usage_event_id is None and result.request_id == usage_context.request_id
    assert UsageEvent.objects.count() == 0  # the async path never writes the ledger itself


def test_achat_stream_on_the_local_model_streams_words_then_gives_the_result(local_models, usage_context,
                                                                            records):
    deltas, stream = stream_all(model="local-extractive", request=ChatRequest(messages=QUESTION),
                                context=usage_context, recorder=records)

    assert len(deltas) > 1 and "".join(deltas) == stream.result.text
    assert records.only.status == "ok" and records.only.ttft_ms is not None
    assert stream.result.time_to_first_token_ms == records.only.ttft_ms


def test_aembed_on_minilm_returns_unit_vectors_and_one_record(local_models, usage_context, records):
    result = run(acalls.aembed, model="local-minilm", texts=["refunds", "shipping times"], context=usage_context,
                 recorder=records)

    assert len(result.vectors) == 2 and result.dimensions == 384
    assert (records.only.operation, records.only.tokens.input_tokens) == ("embedding", result.usage.input_tokens)


def test_an_unknown_or_wrong_kind_model_is_a_readable_error_and_still_recorded(local_models, usage_context,
                                                                               records):
    with pytest.raises(ModelNotFound, match="no model named 'gpt-7'"):
        run(acalls.achat, model="gpt-7", request=ChatRequest(messages=QUESTION), context=usage_context,
            recorder=records)
    with pytest.raises(BadRequest, match="embedding model"):
        run(acalls.achat, model="local-minilm", request=ChatRequest(messages=QUESTION), context=usage_context,
            recorder=records)

    assert [(r.model, r.status, r.error_type) for r in records] == [
        ("gpt-7", "error", "ModelNotFound"), ("local-minilm", "error", "BadRequest")]
    assert records[1].request_id == f"{usage_context.request_id}-2"  # a reused context: its own id per call


def test_routes_are_cached_in_process_and_a_catalog_change_is_seen_at_once(local_models, usage_context, records):
    request = ChatRequest(messages=QUESTION)
    run(acalls.achat, model="local-extractive", request=request, context=usage_context, recorder=records)

    with CaptureQueriesContext(connection) as queries:
        run(acalls.achat, model="local-extractive", request=request, context=usage_context, recorder=records)
    assert queries.captured_queries == []  # the hot path: no database query per request

    model_update(model=local_models["chat"], is_active=False)
    with pytest.raises(ModelNotFound, match="disabled"):
        run(acalls.achat, model="local-extractive", request=request, context=usage_context, recorder=records)


@pytest.mark.parametrize("extra, message", [
    ({"top_k": 3}, "'top_k' is not supported"),
    ({"top_p": 1.5}, "top_p must be from 0 to 1"),
    ({"n": 2}, "only 1 is supported"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "up to 4 strings"),
    ({"seed": "42"}, "seed must be a whole number"),
    ({"tool_choice": "sometimes"}, "tool_choice must be"),
    ({"logprobs": "yes"}, "true or false"),
])
def test_pass_through_parameters_are_checked_for_type(local_models, usage_context, records, extra, message):
    with pytest.raises(BadRequest, match=message):
        run(acalls.achat, model="local-extractive", request=ChatRequest(messages=QUESTION, extra=extra),
            context=usage_context, recorder=records)
    assert records.only.status == "error"


def test_a_refusing_preflight_hook_is_recorded_as_refused_and_nothing_is_called(areplay, gpt4o_mini,
                                                                               gpt4o_mini_price, usage_context,
                                                                               records):
    http = areplay("chat_completion")
    asked = []

    class OverBudget(Exception):
        pass

    async def preflight(check: acalls.PreflightCheck) -> None:
        asked.append(check)
        raise OverBudget("team cap reached")

    with pytest.raises(OverBudget):
        run(acalls.achat, model="gpt-4o-mini", request=ChatRequest(messages=MESSAGES, max_tokens=100),
            context=usage_context, recorder=records, preflight=preflight)

    assert http.requests == []
    check = asked[0]
    assert (check.model, check.provider, check.max_output_tokens) == ("gpt-4o-mini", "openai", 100)
    expected = (check.input_tokens * Decimal("0.15") + 100 * Decimal("0.60")) / 1_000_000
    assert check.worst_case_cost == expected and check.context.request_id == usage_context.request_id
    assert (records.only.status, records.only.error_type) == ("refused", "OverBudget")


# -- the official SDK (AsyncOpenAI) over recorded HTTP --------------------------------------------------------
def test_achat_sends_the_openai_request_with_pass_through_parameters_and_prices_it(areplay, gpt4o_mini,
                                                                                  gpt4o_mini_price, usage_context,
                                                                                  records):
    http = areplay("chat_completion")
    request = ChatRequest(messages=MESSAGES, temperature=0.2, max_tokens=200,
                          extra={"top_p": 0.9, "seed": 7, "stop": ["\n\n"], "user": "u-42"})

    result = run(acalls.achat, model="gpt-4o-mini", request=request, context=usage_context, recorder=records)

    sent = http.sent_json()
    assert str(http.requests[0].url) == "https://api.openai.com/v1/chat/completions"
    assert http.requests[0].headers["x-stainless-retry-count"] == "0"  # the SDK never retries
    assert (sent["top_p"], sent["seed"], sent["stop"], sent["user"]) == (0.9, 7, ["\n\n"], "u-42")
    assert sent["max_completion_tokens"] == 200 and sent["temperature"] == 0.2
    assert result.text == "Refunds are issued within 14 days of the return arriving."
    tokens = records.only.tokens
    assert (tokens.input_tokens, tokens.cached_input_tokens, tokens.output_tokens) == (1200, 1024, 14)
    assert result.cost == (176 * Decimal("0.15") + 1024 * Decimal("0.075") + 14 * Decimal("0.60")) / 1_000_000
    assert records.only.upstream_ms is not None and records.only.price_name == "gpt-4o-mini"


def test_the_stream_always_asks_for_the_usage_chunk_and_records_real_usage(areplay, gpt4o_mini,
                                                                          gpt4o_mini_price, usage_context,
                                                                          records):
    http = areplay("chat_stream")

    deltas, stream = stream_all(model="gpt-4o-mini", request=ChatRequest(messages=MESSAGES),
                                context=usage_context, recorder=records)

    assert http.sent_json()["stream_options"] == {"include_usage": True}
    assert "".join(deltas) == stream.result.text == "Refunds are issued within 14 days."
    assert stream.result.usage.estimated is False and records.only.tokens.output_tokens == 8
    assert stream.result.cost is not None and stream.result.cost > 0


def test_a_429_is_retried_after_the_providers_retry_after(areplay, gpt4o_mini, usage_context, records, sleeps):
    http = areplay("rate_limited_then_ok")

    result = run(acalls.achat, model="gpt-4o-mini", request=ChatRequest(messages=MESSAGES),
                 context=usage_context, recorder=records)

    assert len(http.requests) == 2 and sleeps == [2.0]
    assert result.text and records.only.status == "ok"


def test_a_stream_that_cannot_connect_raises_from_open_before_any_delta(areplay, vllm_provider, usage_context,
                                                                       records):
    areplay("server_error")
    ModelFactory(name="llama-3.1-8b", provider=vllm_provider, remote_name="meta-llama/Llama-3.1-8B-Instruct",
                 kind=ModelKind.CHAT)
    got = []

    async def go():
        stream = acalls.achat_stream(model="llama-3.1-8b", request=ChatRequest(messages=MESSAGES),
                                     context=usage_context, recorder=records)
        await stream.open()
        got.extend([d async for d in stream])

    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        async_to_sync(go)()
    assert got == []
    assert (records.only.status, records.only.error_type) == ("error", "ProviderUnavailable")


class _CutAfterFirstChunk(httpx.AsyncByteStream):
    """An upstream that sends one SSE chunk, then the connection drops."""

    async def __aiter__(self):
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                 "choices": [{"index": 0, "delta": {"content": "Refunds are"}, "finish_reason": None}]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
        raise httpx.ReadError("connection reset by peer")


def test_a_stream_cut_mid_way_raises_stream_interrupted_after_recording(gpt4o_mini, usage_context, records):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_CutAfterFirstChunk())

    got = []

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            with use_async_http_client(client):
                stream = acalls.achat_stream(model="gpt-4o-mini", request=ChatRequest(messages=MESSAGES),
                                             context=usage_context, recorder=records)
                async for delta in stream:
                    got.append(delta.text)

    with pytest.raises(StreamInterrupted, match="cut off after 11 characters"):
        async_to_sync(go)()
    assert got == ["Refunds are"]
    record = records.only
    assert (record.status, record.error_type) == ("error", "StreamInterrupted")
    assert record.tokens.output_tokens > 0 and record.estimated is True  # what was streamed is counted


def test_closing_a_stream_early_records_it_as_cancelled(areplay, gpt4o_mini, usage_context, records):
    areplay("chat_stream")

    async def go():
        async with acalls.achat_stream(model="gpt-4o-mini", request=ChatRequest(messages=MESSAGES),
                                       context=usage_context, recorder=records) as stream:
            first = await stream.__anext__()
        return first, stream

    first, stream = async_to_sync(go)()
    assert first.text and stream.result.finish_reason == "cancelled"
    assert records.only.status == "ok" and records.only.estimated is True


def test_a_stream_dropped_open_without_aclose_is_still_recorded_as_cancelled(areplay, gpt4o_mini, usage_context,
                                                                           records):
    areplay("chat_stream")

    async def go():
        stream = acalls.achat_stream(model="gpt-4o-mini", request=ChatRequest(messages=MESSAGES),
                                     context=usage_context, recorder=records)
        first = await stream.__anext__()
        del stream  # a caller that forgets aclose(): the finaliser records on this loop
        gc.collect()
        await acalls.dropped_streams_settled()
        return first

    first = async_to_sync(go)()
    assert first.text
    assert (records.only.status, records.only.estimated) == ("ok", True)
    assert records.only.tokens.output_tokens > 0  # what was streamed is counted


def test_streamed_tool_calls_come_as_pieces_and_assemble_in_the_result(llm_standin, usage_context, records):
    provider = standin_provider(llm_standin)
    standin_model(provider, "svc-tools", remote_name="tool-call")
    tools = [{"type": "function", "function": {"name": "refund_policy", "parameters": {
        "type": "object", "properties": {"country": {"type": "string"}}}}}]

    async def go():
        stream = acalls.achat_stream(model="svc-tools", request=ChatRequest(messages=MESSAGES, tools=tools),
                                     context=usage_context, recorder=records)
        return [delta async for delta in stream], stream

    deltas, stream = async_to_sync(go)()
    pieces = [piece for delta in deltas for piece in delta.tool_calls]
    assert len(pieces) > 2 and pieces[0].id and pieces[0].name == "refund_policy"
    assert "".join(p.arguments for p in pieces) == stream.result.tool_calls[0].arguments
    assert json.loads(stream.result.tool_calls[0].arguments) == {"country": "How long do refunds take?"}
    assert stream.result.finish_reason == "tool_calls" and records.only.tokens.output_tokens > 0


def test_a_rate_limit_without_retries_left_is_a_rate_limited_error(areplay, vllm_provider, usage_context,
                                                                   records):
    areplay("rate_limited_then_ok")
    ModelFactory(name="llama-3.1-8b", provider=vllm_provider, remote_name="m", kind=ModelKind.CHAT)

    with pytest.raises(RateLimited):
        run(acalls.achat, model="llama-3.1-8b", request=ChatRequest(messages=MESSAGES), context=usage_context,
            recorder=records)
    assert records.only.error_type == "RateLimited"


def test_a_call_record_survives_a_trip_through_json_and_onto_the_ledger(local_models, records):
    PriceFactory(model_name="local-extractive", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"))
    context = UsageContext(source="api", feature="support-bot", tenant="acme")
    run(acalls.achat, model="local-extractive", request=ChatRequest(messages=QUESTION), context=context,
        recorder=records)

    again = CallRecord.from_dict(json.loads(json.dumps(records.only.to_dict())))
    assert again == records.only
    event = callcore.ledger_record(again)
    assert (event.request_id, event.model, event.tenant, event.status) == (context.request_id, "local-extractive",
                                                                           "acme", "ok")
    assert event.cost is not None and event.cost > 0
