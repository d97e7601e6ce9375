"""One semantics on both faces of the OpenAI adapter: the sync path (the official SDK) and the async path (the
lean httpx client of the gateway's hot path, ADR 0077) send the same request and read the same recorded answer
into the same result, or the same error (type, message, status, Retry-After, retryable)."""

from __future__ import annotations

import json

import httpx
import pytest
from asgiref.sync import async_to_sync

from apps.llm.adapters.openai import OpenAIAdapter
from apps.llm.errors import LlmError
from apps.llm.models import ModelKind
from apps.llm.results import ChatRequest
from tests.factories import ModelFactory
from tests.llm.conftest import Replay, load_recording

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "system", "content": "You answer support questions briefly."},
            {"role": "user", "content": "How long do refunds take?"}]


def _faces(provider, recording: str):
    """(sync adapter, its Replay), (async adapter, its Replay): each face on its own copy of the recording."""
    sync_http, async_http = Replay(load_recording(recording)), Replay(load_recording(recording))
    sync = OpenAIAdapter(provider, http_client=httpx.Client(transport=httpx.MockTransport(sync_http)))
    asynchronous = OpenAIAdapter(provider,
                                 async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(async_http)))
    return (sync, sync_http), (asynchronous, async_http)


def _outcome(call):
    try:
        return call()
    except LlmError as exc:
        return (type(exc).__name__, exc.message, exc.status_code, exc.retry_after, exc.retryable)


def _same_request(sync_http: Replay, async_http: Replay) -> None:
    sent, asent = sync_http.requests[0], async_http.requests[0]
    assert str(sent.url) == str(asent.url)
    assert json.loads(sent.content) == json.loads(asent.content)
    for header in ("authorization", "api-key", "x-stainless-retry-count"):
        assert sent.headers.get(header) == asent.headers.get(header)


@pytest.mark.parametrize("recording", ["chat_completion", "chat_completion_reasoning", "tool_calls", "server_error",
                                       "rate_limited_then_ok", "insufficient_quota", "model_not_found",
                                       "context_length", "unauthorized", "malformed_body", "timeout"])
def test_a_chat_answer_or_failure_reads_the_same_on_the_sync_and_the_async_path(gpt4o_mini, recording):
    request = ChatRequest(messages=MESSAGES, temperature=0.2, max_tokens=200)
    (sync, sync_http), (asynchronous, async_http) = _faces(gpt4o_mini.provider, recording)

    through_sdk = _outcome(lambda: sync.chat(gpt4o_mini, request))
    lean = _outcome(lambda: async_to_sync(asynchronous.achat)(gpt4o_mini, request))

    assert lean == through_sdk
    _same_request(sync_http, async_http)


def test_azure_is_called_at_the_same_deployment_url_with_the_same_header_on_both_paths(azure_provider):
    model = ModelFactory(name="azure-gpt-4o-mini", provider=azure_provider, remote_name="support-gpt4o-mini",
                         kind=ModelKind.CHAT)
    (sync, sync_http), (asynchronous, async_http) = _faces(azure_provider, "azure_chat")
    request = ChatRequest(messages=MESSAGES, max_tokens=200)

    assert async_to_sync(asynchronous.achat)(model, request) == sync.chat(model, request)
    _same_request(sync_http, async_http)
    assert "api-version=2024-10-21" in str(async_http.requests[0].url)


@pytest.mark.parametrize("recording", ["chat_stream", "chat_stream_no_usage", "chat_stream_error"])
def test_a_stream_gives_the_same_pieces_and_end_on_both_paths(gpt4o_mini, recording):
    request = ChatRequest(messages=MESSAGES)
    (sync, sync_http), (asynchronous, async_http) = _faces(gpt4o_mini.provider, recording)

    def read_sync():
        pieces = []
        try:
            for delta in sync.chat_stream(gpt4o_mini, request):
                pieces.append(delta.final or delta.text)
        except LlmError as exc:
            pieces.append((type(exc).__name__, exc.message, exc.retryable))
        return pieces

    async def read_async():
        pieces = []
        try:
            async for delta in await asynchronous.achat_stream(gpt4o_mini, request):
                pieces.append(delta.final or delta.text)
        except LlmError as exc:
            pieces.append((type(exc).__name__, exc.message, exc.retryable))
        return pieces

    assert async_to_sync(read_async)() == read_sync()
    _same_request(sync_http, async_http)


def test_embeddings_read_the_same_on_both_paths(openai_provider):
    model = ModelFactory(name="text-embedding-3-small", provider=openai_provider,
                         remote_name="text-embedding-3-small", kind=ModelKind.EMBEDDING)
    sent = load_recording("embeddings")["interactions"][0]["request"]["json"]["input"]
    (sync, sync_http), (asynchronous, async_http) = _faces(openai_provider, "embeddings")

    assert async_to_sync(asynchronous.aembed)(model, sent) == sync.embed(model, sent)
    _same_request(sync_http, async_http)
