"""The official OpenAI SDK against a real gateway server: answers, streams, embeddings, models and errors.

Upstream: the offline local models through the one call path (apps/llm/acalls.py).
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from asgiref.sync import async_to_sync
from openai import AsyncOpenAI, OpenAI

from apps.costs.models import UsageEvent
from apps.gateway.services import gateway_key_revoke, gateway_key_update
from apps.llm.models import ModelKind
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


def client(url, secret):
    return OpenAI(base_url=url, api_key=secret, max_retries=0)


def test_a_chat_completion_answers_and_lands_on_the_ledger_once(gateway_url, local_catalog, gateway_key, drain):
    key, secret = gateway_key()
    raw = client(gateway_url, secret).chat.completions.with_raw_response.create(
        model="chat", messages=QUESTION, metadata={"tenant": "acme"})
    answer = raw.parse()
    assert "14 days" in answer.choices[0].message.content
    assert answer.usage.total_tokens > 0 and answer.choices[0].finish_reason == "stop"
    request_id = raw.headers["x-portal-request-id"]
    assert raw.headers["x-portal-tenant"] == "acme" and raw.headers["x-portal-cache"] == "miss"

    assert drain() == 1
    event = UsageEvent.objects.get()
    assert (event.request_id, event.source, event.team_id, event.feature, event.tenant, event.gateway_key_id) == (
        request_id, "gateway", key.team_id, "support-bot", "acme", key.pk)
    assert event.input_tokens == answer.usage.prompt_tokens and event.status == "ok"
    assert event.alias == "chat" and event.deployment and event.model == "local-extractive"
    assert event.upstream_ms is not None and event.latency_ms >= event.upstream_ms
    assert drain() == 0  # nothing left, nothing written twice


def test_a_stream_arrives_in_chunks_and_strips_usage_unless_asked(gateway_url, local_catalog, gateway_key, drain):
    _key, secret = gateway_key()
    sdk = client(gateway_url, secret)
    chunks = list(sdk.chat.completions.create(model="local-extractive", messages=QUESTION, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "14 days" in text and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"

    with_usage = list(sdk.chat.completions.create(model="local-extractive", messages=QUESTION, stream=True,
                                                  stream_options={"include_usage": True}))
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens > 0
    assert drain() == 2
    assert all(e.output_tokens > 0 for e in UsageEvent.objects.all())


def test_the_async_client_answers(gateway_url, local_catalog, gateway_key):
    _key, secret = gateway_key()

    async def ask():
        async with AsyncOpenAI(base_url=gateway_url, api_key=secret, max_retries=0) as sdk:
            return await sdk.chat.completions.create(model="local-extractive", messages=QUESTION)

    assert "14 days" in async_to_sync(ask)().choices[0].message.content


def test_models_lists_what_the_key_may_use(gateway_url, local_catalog, gateway_key):
    _key, secret = gateway_key(allowed_aliases=["chat", "local-extractive"])
    assert [m.id for m in client(gateway_url, secret).models.list()] == ["chat", "local-extractive"]
    _key, everything = gateway_key()
    listed = [m.id for m in client(gateway_url, everything).models.list()]
    assert listed[:2] == ["chat", "embeddings"] and "local-minilm" in listed


def test_embeddings_as_floats_and_base64(gateway_url, llm_standin, gateway_key, drain):
    provider = standin_provider(llm_standin)
    standin_model(provider, "standin-embed", remote_name="embed-8", kind=ModelKind.EMBEDDING)
    _key, secret = gateway_key()
    sdk = client(gateway_url, secret)
    answer = sdk.embeddings.create(model="standin-embed", input=["refunds take 14 days", "shipping"])  # base64
    floats = sdk.embeddings.create(model="standin-embed", input="refunds take 14 days", encoding_format="float")
    assert len(answer.data) == 2 and len(answer.data[0].embedding) == len(floats.data[0].embedding) == 8
    assert answer.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert drain() == 2
    assert set(UsageEvent.objects.values_list("operation", "model")) == {("embedding", "standin-embed")}


def test_errors_raise_the_sdks_exception_types(gateway_url, local_catalog, gateway_key):
    key, secret = gateway_key(allowed_aliases=["local-extractive", "no-such-model"])
    sdk = client(gateway_url, secret)
    with pytest.raises(openai.AuthenticationError):
        client(gateway_url, "pk-gw-00000000-" + "x" * 40).models.list()
    with pytest.raises(openai.PermissionDeniedError, match="may not use"):
        sdk.chat.completions.create(model="local-minilm", messages=QUESTION)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-model", messages=QUESTION)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="local-extractive", messages=[])
    with pytest.raises(openai.BadRequestError, match="not supported"):
        sdk.chat.completions.create(model="local-extractive", messages=QUESTION, extra_body={"bogus": 1})
    too_big = httpx.post(f"{gateway_url}/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                         content=json.dumps({"model": "local-extractive", "messages": QUESTION,
                                             "pad": "x" * (5 * 1024 * 1024)}))
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "invalid_request_error"


def test_request_and_token_limits_answer_429_with_retry_after(gateway_url, local_catalog, gateway_key):
    _key, secret = gateway_key(requests_per_minute=1)
    sdk = client(gateway_url, secret)
    sdk.chat.completions.create(model="local-extractive", messages=QUESTION)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="local-extractive", messages=QUESTION)
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    # Tokens are counted after each call: the call that crosses the limit completes, the next one is refused.
    _key, by_tokens = gateway_key(tokens_per_day=1)
    tokens = client(gateway_url, by_tokens)
    tokens.chat.completions.create(model="local-extractive", messages=QUESTION)
    with pytest.raises(openai.RateLimitError, match="tokens per day"):
        tokens.chat.completions.create(model="local-extractive", messages=QUESTION)


def test_a_refusal_after_the_key_is_known_is_a_usage_event_with_its_reason(gateway_url, local_catalog, gateway_key,
                                                                           drain):
    key, secret = gateway_key(allowed_aliases=["local-extractive"], requests_per_minute=1)
    sdk = client(gateway_url, secret)
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="local-minilm", messages=QUESTION, metadata={"tenant": "acme"})
    sdk.chat.completions.create(model="local-extractive", messages=QUESTION)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="local-extractive", messages=QUESTION)
    with pytest.raises(openai.AuthenticationError):  # no key known: nothing to attribute, nothing recorded
        client(gateway_url, "pk-gw-00000000-" + "x" * 40).chat.completions.create(model="chat", messages=QUESTION)

    assert drain() == 3
    rows = list(UsageEvent.objects.order_by("occurred_at", "pk").values_list(
        "status", "error_type", "model", "gateway_key_id", "tenant", "input_tokens"))
    assert rows == [("refused", "model_not_allowed", "local-minilm", key.pk, "acme", 0),
                    ("ok", "", "local-extractive", key.pk, "", rows[1][5]),
                    ("refused", "key_limit", "local-extractive", key.pk, "", 0)]
    assert rows[1][5] > 0


def test_revocation_and_limit_changes_apply_on_the_next_request(gateway_url, local_catalog, gateway_key, owner):
    key, secret = gateway_key()
    sdk = client(gateway_url, secret)
    sdk.models.list()  # cached in the server process now
    gateway_key_update(key=key, allowed_aliases=["local-minilm"], actor=owner)
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="local-extractive", messages=QUESTION)
    gateway_key_revoke(key=key, actor=owner)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        sdk.models.list()
