"""The stand-in upstream (apps/llm/standin.py), spoken to by the official openai SDK exactly as a provider would be."""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.costs.services import UsageContext
from apps.llm import acalls, calls
from apps.llm.errors import BadRequest, ProviderUnavailable, StreamInterrupted
from apps.llm.results import ChatRequest
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?"}]


@pytest.fixture
def sdk(llm_standin):
    return openai.OpenAI(base_url=llm_standin.base_url, api_key="EMPTY", max_retries=0, timeout=5)


def test_chat_answers_with_usage(sdk):
    completion = sdk.chat.completions.create(model="standin-chat", messages=QUESTION)

    assert completion.choices[0].message.content == "Answer: how long do refunds take?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens == 6


def test_max_tokens_cuts_the_answer_with_finish_reason_length(sdk):
    completion = sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=2)

    assert completion.choices[0].message.content == "Answer: how"
    assert (completion.choices[0].finish_reason, completion.usage.completion_tokens) == ("length", 2)


def test_a_stream_ends_with_a_usage_chunk_only_when_asked(sdk):
    chunks = list(sdk.chat.completions.create(model="standin-chat", messages=QUESTION, stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert text == "Answer: how long do refunds take?"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"

    plain = list(sdk.chat.completions.create(model="standin-chat", messages=QUESTION, stream=True))
    assert all(c.usage is None for c in plain)


def test_embeddings_are_deterministic_unit_vectors(sdk):
    first = sdk.embeddings.create(model="embed-16", input=["refunds", "shipping"])
    again = sdk.embeddings.create(model="embed-16", input="refunds")

    assert [len(d.embedding) for d in first.data] == [16, 16]
    assert first.data[0].embedding == again.data[0].embedding != first.data[1].embedding
    assert math.isclose(sum(x * x for x in first.data[0].embedding), 1.0, rel_tol=1e-9)
    assert first.usage.prompt_tokens > 0


def test_models_lists_the_scripted_names(sdk):
    names = {m.id for m in sdk.models.list().data}

    assert {"standin-chat", "standin-embed", "fail-500", "rate-limit", "cut-stream"} <= names


def test_scripted_failures_raise_the_sdks_own_error_types(sdk):
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="fail-500", messages=QUESTION)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="rate-limit", messages=QUESTION)
    assert limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.BadRequestError) as too_long:
        sdk.chat.completions.create(model="ctx-8", messages=QUESTION)
    assert too_long.value.code == "context_length_exceeded"
    # the header scripts any model name
    with pytest.raises(openai.APIStatusError) as unavailable:
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION,
                                    extra_headers={"X-Standin-Behaviour": "fail-503"})
    assert unavailable.value.status_code == 503


def test_a_cut_stream_breaks_the_connection_mid_answer(sdk, llm_standin):
    received = []
    with pytest.raises(openai.APIConnectionError):  # the SDK's word for a connection dropped mid-body
        for chunk in sdk.chat.completions.create(model="cut-stream", messages=QUESTION, stream=True):
            received.extend(c.delta.content or "" for c in chunk.choices)

    assert 0 < len("".join(received)) < len("Answer: how long do refunds take?")
    assert llm_standin.standin.stats()["statuses"] == {"200-cut": 1}


def test_the_control_endpoint_scripts_an_outage_and_counts_calls(sdk, llm_standin):
    control = httpx.post(f"{llm_standin.url}/standin/control", json={"outage": True, "failure_status": 502})
    assert control.json()["outage"] is True

    with pytest.raises(openai.APIStatusError) as down:
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION)
    assert down.value.status_code == 502

    httpx.post(f"{llm_standin.url}/standin/control", json={"outage": False, "fail_next": 1, "fail_next_status": 429})
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION)
    assert sdk.chat.completions.create(model="standin-chat", messages=QUESTION).choices

    stats = httpx.get(f"{llm_standin.url}/standin/stats").json()
    assert (stats["calls"], stats["statuses"]) == (3, {"502": 1, "429": 1, "200": 1})


def test_the_async_sdk_streams_from_it(llm_standin):
    async def go():
        client = openai.AsyncOpenAI(base_url=llm_standin.base_url, api_key="EMPTY", max_retries=0)
        stream = await client.chat.completions.create(model="standin-chat", messages=QUESTION, stream=True,
                                                      stream_options={"include_usage": True})
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return "".join(parts)

    assert asyncio.run(go()) == "Answer: how long do refunds take?"


def test_the_command_refuses_impossible_options():
    with pytest.raises(CommandError, match="share from 0 to 1"):
        call_command("llm_standin", "--port", "1", "--failure-rate", "2")


def test_the_command_serves_answers_scripted_failures_and_cut_streams_as_the_test_server_does():
    """`manage.py llm_standin` (what the benches and people run) serves on uvicorn's httptools parser, the test
    server on h11: a scripted cut must still end the stream unfinished, never cleanly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "manage.py", "llm_standin", "--port", str(port)], cwd=settings.BASE_DIR,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", max_retries=0, timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = sdk.chat.completions.create(model="standin-chat", messages=QUESTION)
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "the stand-in did not start"
                time.sleep(0.1)
        assert answer.choices[0].message.content == "Answer: how long do refunds take?"
        with pytest.raises(openai.RateLimitError):
            sdk.chat.completions.create(model="rate-limit", messages=QUESTION)
        with pytest.raises(openai.APIConnectionError):  # the SDK's name for a body cut short
            for _chunk in sdk.chat.completions.create(model="cut-stream", messages=QUESTION, stream=True):
                pass
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- the call path over it -------------------------------------------------------------------------------------
@pytest.fixture
def standin_catalog(db, llm_standin):
    provider = standin_provider(llm_standin)
    return {"provider": provider, "chat": standin_model(provider, "sc-chat"),
            "cut": standin_model(provider, "sc-cut", "cut-stream"),
            "down": standin_model(provider, "sc-down", "fail-500"),
            "small": standin_model(provider, "sc-small", "ctx-8", context_window=8, max_output_tokens=4)}


def test_the_sync_call_path_answers_through_it(standin_catalog):
    result = calls.chat(model="sc-chat", messages=QUESTION, context=UsageContext(source="playground"))

    assert result.text == "Answer: how long do refunds take?" and result.usage.estimated is False


def test_the_call_path_translates_its_failures(standin_catalog):
    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        calls.chat(model="sc-down", messages=QUESTION, context=UsageContext(source="playground"))
    with pytest.raises(BadRequest, match="context window"):
        calls.chat(model="sc-small", messages=QUESTION, context=UsageContext(source="playground"))


def test_the_async_call_path_raises_stream_interrupted_on_a_cut(standin_catalog):
    records = []

    async def recorder(record):
        records.append(record)

    async def go():
        stream = acalls.achat_stream(model="sc-cut", request=ChatRequest(messages=QUESTION),
                                     context=UsageContext(source="api"), recorder=recorder)
        await stream.open()
        return [d.text async for d in stream]

    with pytest.raises(StreamInterrupted):
        async_to_sync(go)()
    assert [(r.status, r.error_type) for r in records] == [("error", "StreamInterrupted")]
