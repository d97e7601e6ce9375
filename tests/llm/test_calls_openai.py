"""The one call path against recorded OpenAI / Azure / vLLM HTTP: what is sent, what comes back, what is recorded."""

from decimal import Decimal

import pytest

from apps.costs.models import UsageEvent
from apps.llm import calls
from apps.llm.errors import (
    AuthenticationFailed,
    ContextLengthExceeded,
    MalformedResponse,
    ModelNotFound,
    ProviderUnavailable,
    RateLimited,
)
from apps.llm.models import ModelKind
from tests.factories import ModelFactory, PriceFactory
from tests.llm.conftest import AZURE_KEY, OPENAI_KEY

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "system", "content": "You answer support questions briefly."},
            {"role": "user", "content": "How long do refunds take?"}]


def only_event() -> UsageEvent:
    events = list(UsageEvent.objects.all())
    assert len(events) == 1, f"expected exactly one usage event, got {len(events)}"
    return events[0]


def test_chat_sends_the_openai_request_and_records_a_priced_usage_event(replay, gpt4o_mini, gpt4o_mini_price,
                                                                        usage_context):
    http = replay("chat_completion")

    result = calls.chat(model="gpt-4o-mini", messages=MESSAGES, context=usage_context, temperature=0.2,
                        max_tokens=200)

    sent = http.requests[0]
    assert str(sent.url) == http.recorded_request()["url"] == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.headers["x-stainless-retry-count"] == "0"
    assert http.sent_json() == http.recorded_request()["json"]  # model, messages, max_completion_tokens, temperature
    assert result.text == "Refunds are issued within 14 days of the return arriving."
    assert result.finish_reason == "stop"
    assert result.remote_model == "gpt-4o-mini-2024-07-18"
    assert (result.usage.input_tokens, result.usage.cached_input_tokens, result.usage.output_tokens) == (1200, 1024, 14)
    assert result.usage.estimated is False
    # 176 uncached x $0.15 + 1024 cached x $0.075 + 14 out x $0.60, per million
    expected = (176 * Decimal("0.15") + 1024 * Decimal("0.075") + 14 * Decimal("0.60")) / 1_000_000
    assert result.cost == expected

    event = only_event()
    assert event.pk == result.usage_event_id
    assert (event.model, event.provider, event.operation, event.status) == ("gpt-4o-mini", "openai", "chat", "ok")
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (1200, 1024, 14)
    assert event.cost == expected and event.price == gpt4o_mini_price
    assert (event.team_id, event.feature, event.tenant, event.source) == (usage_context.team_id, "support-bot",
                                                                          "acme", "playground")
    assert (event.prompt_name, event.prompt_version) == ("refund-answer", 3)
    assert event.request_id == usage_context.request_id


def test_cached_and_reasoning_tokens_are_parsed_and_priced(replay, openai_provider, usage_context):
    http = replay("chat_completion_reasoning")
    ModelFactory(name="o4-mini", provider=openai_provider, remote_name="o4-mini", kind=ModelKind.CHAT,
                 context_window=200000, max_output_tokens=100000)
    PriceFactory(model_name="o4-mini", input_per_mtok=Decimal("1.10"), cached_input_per_mtok=Decimal("0.275"),
                 output_per_mtok=Decimal("4.40"), reasoning_per_mtok=None)

    result = calls.chat(model="o4-mini", messages=MESSAGES, context=usage_context, max_tokens=2000)

    assert "temperature" not in http.sent_json()  # not sent unless asked: o-series reject it
    assert http.sent_json()["max_completion_tokens"] == 2000 and "max_tokens" not in http.sent_json()
    usage = result.usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens, usage.reasoning_tokens) == (
        2048, 1536, 900, 640)
    # reasoning tokens are part of the output and, with no reasoning price, billed at the output price
    expected = (512 * Decimal("1.10") + 1536 * Decimal("0.275") + 900 * Decimal("4.40")) / 1_000_000
    assert result.cost == expected
    event = only_event()
    assert (event.reasoning_tokens, event.cached_input_tokens, event.cost) == (640, 1536, expected)


def test_stream_yields_deltas_and_takes_usage_from_the_last_chunk(replay, gpt4o_mini, gpt4o_mini_price,
                                                                  usage_context):
    http = replay("chat_stream")

    stream = calls.chat_stream(model="gpt-4o-mini", messages=MESSAGES, context=usage_context)
    assert UsageEvent.objects.count() == 0  # recorded when the stream ends, with the real usage
    deltas = list(stream)

    assert http.sent_json()["stream"] is True
    assert http.sent_json()["stream_options"] == {"include_usage": True}
    assert deltas == ["Refunds", " are", " issued", " within", " 14", " days", "."]
    result = stream.result
    assert result.text == "".join(deltas) == "Refunds are issued within 14 days."
    assert result.finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.cached_input_tokens, result.usage.output_tokens) == (1200, 1024, 8)
    assert result.usage.estimated is False
    assert result.time_to_first_token_ms is not None
    event = only_event()
    assert (event.status, event.output_tokens, event.cached_input_tokens) == ("ok", 8, 1024)
    assert event.cost == (176 * Decimal("0.15") + 1024 * Decimal("0.075") + 8 * Decimal("0.60")) / 1_000_000


def test_stream_without_usage_estimates_it_and_says_so(replay, vllm_provider, usage_context):
    http = replay("chat_stream_no_usage")
    ModelFactory(name="llama-3.1-8b", provider=vllm_provider, remote_name="meta-llama/Llama-3.1-8B-Instruct",
                 kind=ModelKind.CHAT)

    stream = calls.chat_stream(model="llama-3.1-8b", messages=MESSAGES, context=usage_context)
    text = "".join(stream)

    assert str(http.requests[0].url) == "http://vllm.internal:8000/v1/chat/completions"
    assert http.sent_json()["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert text == "Refunds are issued within 14 days."
    usage = stream.result.usage
    assert usage.estimated is True
    assert usage.input_tokens > 10 and usage.output_tokens > 5
    event = only_event()
    assert event.input_tokens == usage.input_tokens and event.output_tokens == usage.output_tokens
    assert event.cost is None and event.is_unpriced  # no price for this model: flagged, not $0
    assert stream.result.unpriced


def test_closing_a_stream_early_still_records_one_event(replay, gpt4o_mini, usage_context):
    replay("chat_stream")

    with calls.chat_stream(model="gpt-4o-mini", messages=MESSAGES, context=usage_context) as stream:
        first = next(stream)

    assert first == "Refunds"
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.usage.estimated is True
    assert only_event().status == "ok"


def test_embeddings_come_back_in_input_order_with_usage(replay, openai_provider, usage_context):
    http = replay("embeddings")
    ModelFactory(name="text-embedding-3-small", provider=openai_provider, remote_name="text-embedding-3-small",
                 kind=ModelKind.EMBEDDING, embedding_dimensions=8)
    PriceFactory(model_name="text-embedding-3-small", input_per_mtok=Decimal("0.02"), output_per_mtok=Decimal("0"),
                 cached_input_per_mtok=None)

    result = calls.embed(model="text-embedding-3-small", texts=["refund policy", "opening hours"],
                         context=usage_context)

    assert str(http.requests[0].url) == "https://api.openai.com/v1/embeddings"
    assert http.sent_json() == http.recorded_request()["json"]
    assert result.dimensions == 8
    assert result.vectors[0][0] == pytest.approx(-0.0221)  # the provider sent index 1 first
    assert result.vectors[1][0] == pytest.approx(0.0123)
    assert result.usage.input_tokens == 4
    event = only_event()
    assert (event.operation, event.input_tokens, event.cost) == ("embedding", 4, 4 * Decimal("0.02") / 1_000_000)


def test_rate_limit_is_retried_after_the_time_the_provider_asked_for(replay, gpt4o_mini, gpt4o_mini_price,
                                                                     usage_context, sleeps):
    http = replay("rate_limited_then_ok")

    result = calls.chat(model="gpt-4o-mini", messages=MESSAGES, context=usage_context, temperature=0.2,
                        max_tokens=200)

    assert len(http.requests) == 2
    assert sleeps == [2.0]  # Retry-After: 2, not our own backoff
    assert result.text.startswith("Refunds")
    event = only_event()
    assert event.status == "ok" and event.cost is not None


def test_server_errors_are_retried_with_backoff_then_reported(replay, gpt4o_mini, usage_context, sleeps):
    http = replay("server_error")

    with pytest.raises(ProviderUnavailable) as failure:
        calls.chat(model="gpt-4o-mini", messages=MESSAGES, context=usage_context)

    assert len(http.requests) == 3  # the first attempt and max_retries=2
    # full jitter (the test pins the draw at 0.5): 0.5 x 0.5 s, then 0.5 x 1 s
    assert sleeps == [0.25, 0.5]
    assert "HTTP 500" in str(failure.value)
    event = only_event()
    assert (event.status, event.error_type, event.input_tokens, event.cost) == (
        "error", "ProviderUnavailable", 0, Decimal(0))


def test_timeouts_are_retried_then_reported_as_unavailable(replay, gpt4o_mini, usage_context, sleeps):
    http = replay("timeout")

    with pytest.raises(ProviderUnavailable) as failure:
        calls.chat(model="gpt-4o-mini", messages=MESSAGES, context=usage_context)

    assert len(http.requests) == 3
    assert len(sleeps) == 2
    assert "timeout" in str(failure.value)
    assert only_event().error_type == "ProviderUnavailable"


@pytest.mark.parametrize(("recording", "error", "says"), [
    ("malformed_body", MalformedResponse, "not valid JSON"),
    ("insufficient_quota", RateLimited, "out of quota"),
    ("model_not_found", ModelNotFound, "does not know the model 'gpt-4o-mini'"),
    ("context_length", ContextLengthExceeded, "longer than the model's context window"),  # a BadRequest
])
def test_a_failure_that_retrying_cannot_fix_fails_at_once_with_a_readable_message(
        replay, gpt4o_mini, usage_context, sleeps, recording, error, says):
    http = replay(recording)

    with pytest.raises(error) as failure:
        calls.chat(model="gpt-4o-mini", messages=MESSAGES, context=usage_context)

    assert len(http.requests) == 1 and sleeps == []
    assert says in str(failure.value)
    assert (only_event().status, only_event().error_type) == ("error", error.__name__)


def test_a_rejected_key_fails_at_once_without_echoing_it(replay, gpt4o_mini, usage_context):
    http = replay("unauthorized")

    with pytest.raises(AuthenticationFailed) as failure:
        calls.chat(model="gpt-4o-mini", messages=MESSAGES, context=usage_context)

    assert len(http.requests) == 1
    message = str(failure.value)
    assert "rejected the API key" in message and "sk-" not in message and "1234" not in message
    assert only_event().error_type == "AuthenticationFailed"


def test_azure_uses_the_deployment_path_api_version_and_api_key_header(replay, azure_provider, usage_context):
    http = replay("azure_chat")
    ModelFactory(name="azure-gpt-4o-mini", provider=azure_provider, remote_name="support-gpt4o-mini",
                 price_name="gpt-4o-mini", kind=ModelKind.CHAT)
    PriceFactory(model_name="gpt-4o-mini", provider="azure-eu", input_per_mtok=Decimal("0.165"),
                 output_per_mtok=Decimal("0.66"), cached_input_per_mtok=Decimal("0.083"))
    PriceFactory(model_name="gpt-4o-mini")  # the provider-agnostic list price loses to the Azure-specific one

    result = calls.chat(model="azure-gpt-4o-mini", messages=MESSAGES, context=usage_context)

    sent = http.requests[0]
    assert sent.url.path == "/openai/deployments/support-gpt4o-mini/chat/completions"
    assert sent.url.params["api-version"] == "2024-10-21"
    assert sent.headers["api-key"] == AZURE_KEY
    assert "authorization" not in sent.headers
    assert result.text == "Refunds are issued within 14 days."
    event = only_event()
    assert (event.model, event.provider) == ("azure-gpt-4o-mini", "azure-eu")
    assert event.cost == (1200 * Decimal("0.165") + 9 * Decimal("0.66")) / 1_000_000


def test_tool_calls_are_returned(replay, gpt4o_mini, usage_context):
    replay("tool_calls")
    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]

    result = calls.chat(model="gpt-4o-mini", messages=MESSAGES, context=usage_context, tools=tools)

    assert result.finish_reason == "tool_calls"
    assert result.text == ""
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("call_Xy7pQ2rS9tU4vW1z", "lookup_order", '{"order_id": "A-1042"}')]


def test_compatible_servers_get_max_tokens_not_max_completion_tokens(replay, vllm_provider, usage_context):
    http = replay("chat_stream_no_usage")
    ModelFactory(name="llama-3.1-8b", provider=vllm_provider, remote_name="meta-llama/Llama-3.1-8B-Instruct",
                 kind=ModelKind.CHAT)

    list(calls.chat_stream(model="llama-3.1-8b", messages=MESSAGES, context=usage_context, max_tokens=64))

    assert http.sent_json()["max_tokens"] == 64 and "max_completion_tokens" not in http.sent_json()
    assert http.requests[0].headers["authorization"] == "Bearer EMPTY"  # never the server's own OPENAI_API_KEY


def test_an_error_mid_stream_raises_and_records_the_partial_call(replay, gpt4o_mini, usage_context):
    replay("chat_stream_error")
    stream = calls.chat_stream(model="gpt-4o-mini", messages=MESSAGES, context=usage_context)
    received = []

    with pytest.raises(ProviderUnavailable, match="error mid-answer"):
        for delta in stream:
            received.append(delta)

    assert received == ["Refunds", " are", " issued"]
    event = only_event()
    assert (event.status, event.error_type) == ("error", "StreamInterrupted")  # never a silent, complete-looking end
    assert event.output_tokens > 0  # what was streamed before the failure is counted (estimated)
    with pytest.raises(RuntimeError, match="has not finished"):
        _ = stream.result


def test_a_stream_dropped_unfinished_is_still_recorded(replay, gpt4o_mini, usage_context):
    import gc

    replay("chat_stream")
    stream = calls.chat_stream(model="gpt-4o-mini", messages=MESSAGES, context=usage_context)
    next(stream)
    del stream
    gc.collect()

    assert only_event().status == "ok"
