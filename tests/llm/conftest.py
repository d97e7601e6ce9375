"""Fixtures for the model call path: recorded HTTP replayed at the httpx transport, providers, prices.

A recording (tests/llm/recordings/*.json) is a list of interactions, each the request the portal is
expected to send and the response the provider gave: `json`, an `sse` list of events, a raw `text` body,
or `raise` (an httpx exception name, e.g. ReadTimeout).
"""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from apps.costs.services import UsageContext
from apps.llm import retry
from apps.llm.adapters import use_async_http_client, use_http_client
from apps.llm.models import ModelKind, ProviderKind
from apps.llm.services import provider_create
from tests.factories import ModelFactory, PriceFactory

RECORDINGS = Path(__file__).parent / "recordings"
OPENAI_KEY = "sk-test-4f9a1c2e7b3d8e6f0a5b9c1d2e3f1234"
AZURE_KEY = "azure-key-0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def load_recording(name: str) -> dict:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


class Replay:
    """An httpx transport handler that answers with a recording's responses in order and keeps what was sent."""

    def __init__(self, recording: dict):
        self.interactions = recording["interactions"]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = len(self.requests) - 1
        assert index < len(self.interactions), f"unexpected request #{index + 1}: {request.method} {request.url}"
        response = self.interactions[index]["response"]
        if "raise" in response:
            raise getattr(httpx, response["raise"])("recorded transport failure", request=request)
        headers = dict(response.get("headers", {}))
        if "json" in response:
            content = json.dumps(response["json"]).encode()
        elif "sse" in response:
            content = "".join(
                f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n" for event in response["sse"]
            ).encode()
        else:
            content = response.get("text", "").encode()
        return httpx.Response(response["status"], headers=headers, content=content)

    def recorded_request(self, index: int = 0) -> dict:
        return self.interactions[index]["request"]

    def sent_json(self, index: int = 0) -> dict:
        return json.loads(self.requests[index].content)


@pytest.fixture
def replay():
    """replay("chat_completion") -> Replay; the call path's HTTP goes to it for the rest of the test."""
    with contextlib.ExitStack() as stack:
        def use(name: str) -> Replay:
            handler = Replay(load_recording(name))
            client = stack.enter_context(httpx.Client(transport=httpx.MockTransport(handler)))
            stack.enter_context(use_http_client(client))
            return handler

        yield use


@pytest.fixture
def areplay():
    """areplay("chat_completion") -> Replay for the async path (acalls.py): an httpx.AsyncClient on it."""
    with contextlib.ExitStack() as stack:
        def use(name: str) -> Replay:
            handler = Replay(load_recording(name))
            client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
            stack.enter_context(use_async_http_client(client))
            return handler

        yield use


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    """Backoff waits are recorded, not slept: no wall time, and tests can assert what was asked for."""
    waited: list[float] = []

    async def awaited(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(retry, "sleep", waited.append)
    monkeypatch.setattr(retry, "asleep", awaited)
    monkeypatch.setattr(retry, "jitter", lambda: 0.5)
    return waited


@pytest.fixture
def usage_context(team):
    return UsageContext(source="playground", team_id=team.pk, feature="support-bot", tenant="acme",
                        prompt_name="refund-answer", prompt_version=3)


@pytest.fixture
def openai_provider(db):
    return provider_create(name="openai", kind=ProviderKind.OPENAI, api_key=OPENAI_KEY, max_retries=2,
                           timeout_seconds=30)


@pytest.fixture
def azure_provider(db):
    return provider_create(name="azure-eu", kind=ProviderKind.AZURE_OPENAI, api_key=AZURE_KEY,
                           base_url="https://contoso-eu.openai.azure.com", api_version="2024-10-21", max_retries=1)


@pytest.fixture
def vllm_provider(db):
    return provider_create(name="vllm", kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://vllm.internal:8000/v1",
                           max_retries=0)


@pytest.fixture
def gpt4o_mini(openai_provider):
    return ModelFactory(name="gpt-4o-mini", provider=openai_provider, remote_name="gpt-4o-mini",
                        kind=ModelKind.CHAT, context_window=128000, max_output_tokens=16384)


@pytest.fixture
def gpt4o_mini_price(db):
    """OpenAI's list price: $0.15 in, $0.075 cached in, $0.60 out per 1M tokens."""
    return PriceFactory(model_name="gpt-4o-mini", input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.60"),
                        cached_input_per_mtok=Decimal("0.075"))


@pytest.fixture
def local_models(db):
    """The offline provider and its two models, as `seed_demo` creates them."""
    from apps.llm.models import Model, Provider
    from apps.llm.services import catalog_seed_local

    catalog_seed_local()
    return {"provider": Provider.objects.get(name="local"), "chat": Model.objects.get(name="local-extractive"),
            "embedding": Model.objects.get(name="local-minilm")}
