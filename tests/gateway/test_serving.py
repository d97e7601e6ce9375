"""The gateway as `make run` serves it (uvicorn on its C parser and uvloop, ADR 0134; the `gateway_url` server):
the official SDK's answers from every endpoint, a chunked body stopped at the size limit, a client gone mid-stream
(which this server reports only through `receive()`), and the database connection closed at a worker's end."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from openai import OpenAI

from apps.costs.models import UsageEvent
from apps.gateway.asgi import Gateway
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


def test_the_sdk_gets_its_answers_from_every_endpoint(gateway_url, local_catalog, gateway_key, drain):
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    answer = sdk.chat.completions.create(model="chat", messages=QUESTION)
    streamed = list(sdk.chat.completions.create(model="chat", messages=QUESTION, stream=True,
                                                stream_options={"include_usage": True}))
    vectors = sdk.embeddings.create(model="embeddings", input=["refunds", "returns"])
    names = {m.id for m in sdk.models.list()}
    refused = httpx.post(f"{gateway_url}/chat/completions", json={"model": "chat", "messages": QUESTION},
                         headers={"Authorization": "Bearer pk-gw-not-a-key"})

    assert "14 days" in answer.choices[0].message.content
    assert "14 days" in "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert streamed[-1].usage.completion_tokens > 0
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0
    assert {"chat", "embeddings"} <= names
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert drain() == 3 and UsageEvent.objects.filter(status="ok").count() == 3


def test_a_chunked_body_is_read_and_one_past_the_limit_is_refused_with_413(gateway_url, local_catalog,
                                                                            gateway_key, settings, drain):
    """No Content-Length: the body arrives in pieces and the gateway's size check sees each one."""
    _key, secret = gateway_key()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    body = b'{"model": "chat", "messages": [{"role": "user", "content": "Refunds take 14 days. How long?"}]}'

    def pieces(data: bytes, size: int):
        yield from (data[i:i + size] for i in range(0, len(data), size))

    answered = httpx.post(f"{gateway_url}/chat/completions", content=pieces(body, 7), headers=headers)
    settings.GATEWAY_MAX_BODY_BYTES = 64
    too_big = httpx.post(f"{gateway_url}/chat/completions", content=pieces(body, 7), headers=headers)

    assert "content-length" not in httpx.Request("POST", "http://x", content=pieces(body, 7)).headers
    assert answered.status_code == 200 and "14 days" in answered.json()["choices"][0]["message"]["content"]
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"
    assert drain() == 1  # the refused body never reached a key or a call


def test_a_client_gone_mid_stream_is_recorded_at_once_as_far_as_it_streamed(gateway_url, llm_standin, gateway_key,
                                                                             drain, caplog):
    """The server drops a send to a gone client without a word; the gateway hears of the going from `receive()`
    and stops at its next chunk: the upstream is closed and the call recorded as cancelled with its estimated
    usage, long before the six-second answer would have ended."""
    provider = standin_provider(llm_standin)
    standin_model(provider, "slow-stream")
    llm_standin.standin.control({"chunk_ms": 100, "reply": " ".join(["word"] * 60)})  # about six seconds
    _key, secret = gateway_key()

    with httpx.Client(timeout=10) as client, client.stream(
            "POST", f"{gateway_url}/chat/completions", headers={"Authorization": f"Bearer {secret}"},
            json={"model": "slow-stream", "messages": QUESTION, "stream": True}) as response:
        request_id = response.headers["x-portal-request-id"]
        assert next(line for line in response.iter_lines() if '"content":"word' in line.replace(" ", ""))
    gone = time.monotonic()
    recorded = 0
    while not recorded and time.monotonic() - gone < 3:
        recorded = drain()
        time.sleep(0.05)

    assert recorded == 1
    event = UsageEvent.objects.get(request_id=request_id)
    assert event.status == "ok" and 0 < event.output_tokens < 30  # what was streamed, estimated
    next_answer = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0).chat.completions.create(
        model="slow-stream", messages=QUESTION)
    assert "word" in next_answer.choices[0].message.content  # the gateway serves on
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a client's going is no failure


def test_a_workers_end_closes_the_database_connection_its_sync_work_opened(transactional_db):
    """The lifespan's shutdown, which the server sends as a worker stops: the connection asgiref's one sync thread
    opened is closed there."""
    from asgiref.sync import SyncToAsync
    from django.db import connection

    def opened() -> bool:
        connection.ensure_connection()
        return connection.connection is not None

    def still_open() -> bool:
        return connection.connection is not None

    on_sync_thread = SyncToAsync.single_thread_executor
    assert on_sync_thread.submit(opened).result()
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(Gateway()({"type": "lifespan"}, receive, send))

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not on_sync_thread.submit(still_open).result()
