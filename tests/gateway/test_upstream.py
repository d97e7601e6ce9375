"""Upstream failures through the gateway, against the OpenAI-compatible stand-in: a stream cut mid-way ends
with an error event (never a clean end), an upstream 429 is the client's RateLimitError, a 5xx a 502; each
call recorded once."""

from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

from apps.costs.models import UsageEvent
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "How long do refunds take? Tell me in a few words please."}]


@pytest.fixture
def standin_catalog(llm_standin, transactional_db):
    provider = standin_provider(llm_standin)
    for name in ("standin-chat", "cut-stream", "rate-limit", "fail-503", "tool-call"):
        standin_model(provider, name, remote_name=name)
    return llm_standin


def test_a_stream_answers_through_the_stand_in_with_usage_recorded(gateway_url, standin_catalog, gateway_key,
                                                                  drain):
    key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    chunks = list(sdk.chat.completions.create(model="standin-chat", messages=QUESTION, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Answer:")
    assert all(c.usage is None for c in chunks)  # the upstream's usage chunk is not relayed: not asked for
    assert standin_catalog.standin.requests[-1]["stream_options"] == {"include_usage": True}
    drain()
    event = UsageEvent.objects.get()
    assert event.output_tokens > 0 and event.gateway_key_id == key.pk and event.ttft_ms is not None


def test_a_stream_cut_mid_way_ends_with_an_error_not_a_clean_end(gateway_url, standin_catalog, gateway_key, drain):
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    received = []
    with pytest.raises(openai.APIError, match="cut off"):
        for c in sdk.chat.completions.create(model="cut-stream", messages=QUESTION, stream=True):
            received.append(c)
    assert received and all(c.choices[0].finish_reason is None for c in received if c.choices)
    drain()
    assert UsageEvent.objects.get().status == "error"


def test_upstream_failures_raise_the_sdks_types_and_are_recorded(gateway_url, standin_catalog, gateway_key, drain):
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="rate-limit", messages=QUESTION)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="fail-503", messages=QUESTION)
    assert caught.value.status_code == 502
    drain()
    assert sorted(UsageEvent.objects.values_list("status", flat=True)) == ["error", "error"]


TOOLS = [{"type": "function", "function": {"name": "refund_policy", "description": "Look up the refund policy",
                                           "parameters": {"type": "object", "properties": {
                                               "question": {"type": "string"}}, "required": ["question"]}}}]


def test_the_sdk_streams_a_tool_call_in_pieces_and_reassembles_it(gateway_url, standin_catalog, gateway_key, drain):
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    chunks = list(sdk.chat.completions.create(model="tool-call", messages=QUESTION, tools=TOOLS, stream=True))

    calls: dict[int, dict] = {}
    pieces = 0
    for chunk in chunks:
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            pieces += 1
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = piece.id or call["id"]
            call["name"] += piece.function.name or ""
            call["arguments"] += piece.function.arguments or ""
    assert pieces > 2  # streamed as they came, not in one lump at the end
    assert [c["name"] for c in calls.values()] == ["refund_policy"] and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"question": QUESTION[0]["content"]}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    drain()
    assert UsageEvent.objects.get().output_tokens > 0


def test_a_plain_tool_call_answers_in_openais_message_shape(gateway_url, standin_catalog, gateway_key):
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    answer = sdk.chat.completions.create(model="tool-call", messages=QUESTION, tools=TOOLS)

    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls" and call.function.name == "refund_policy"
    assert json.loads(call.function.arguments) == {"question": QUESTION[0]["content"]}
