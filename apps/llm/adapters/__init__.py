"""Adapters turn one provider's API into the call path's vocabulary (results.py, errors.py).

`adapter_for(provider)` picks one by the provider's kind. Tests and replays route the openai adapter's HTTP
through their own `httpx.Client` with `use_http_client(client)`, and its async HTTP (acalls.py) through an
`httpx.AsyncClient` with `use_async_http_client(client)`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import httpx

from apps.llm.models import Model, Provider, ProviderKind
from apps.llm.results import ChatRequest, ProviderChat, ProviderEmbedding, StreamDelta

_http_client: contextvars.ContextVar[httpx.Client | None] = contextvars.ContextVar("llm_http_client", default=None)
_async_http_client: contextvars.ContextVar[httpx.AsyncClient | None] = contextvars.ContextVar(
    "llm_async_http_client", default=None)


class Adapter(Protocol):
    """Every method takes an optional per-attempt `timeout` (seconds): what is left of an alias's deadline."""

    def chat(self, model: Model, request: ChatRequest, timeout: float | None = None) -> ProviderChat: ...

    def chat_stream(self, model: Model, request: ChatRequest, timeout: float | None = None) -> Iterator[StreamDelta]:
        """Connect (raising LlmError if refused) and return an iterator of deltas; the last carries `final`."""

    def embed(self, model: Model, texts: list[str], timeout: float | None = None) -> ProviderEmbedding: ...

    async def achat(self, model: Model, request: ChatRequest, timeout: float | None = None) -> ProviderChat: ...

    async def achat_stream(self, model: Model, request: ChatRequest,
                           timeout: float | None = None) -> AsyncIterator[StreamDelta]:
        """Connect (raising LlmError if refused, before any delta); an async iterator of deltas, `final` last."""

    async def aembed(self, model: Model, texts: list[str], timeout: float | None = None) -> ProviderEmbedding: ...

    def test_connection(self) -> str:
        """A short description of what answered; raises LlmError if nothing did."""


@contextlib.contextmanager
def use_http_client(client: httpx.Client):
    """Send the openai adapter's requests through `client` (e.g. one with an httpx.MockTransport)."""
    handle = _http_client.set(client)
    try:
        yield client
    finally:
        _http_client.reset(handle)


@contextlib.contextmanager
def use_async_http_client(client: httpx.AsyncClient):
    """Send the openai adapter's async requests (acalls.py) through `client` instead of its aiohttp session."""
    handle = _async_http_client.set(client)
    try:
        yield client
    finally:
        _async_http_client.reset(handle)


def adapter_for(provider: Provider) -> Adapter:
    if provider.kind == ProviderKind.LOCAL:
        from apps.llm.adapters.local import LocalAdapter

        return LocalAdapter(provider)
    from apps.llm.adapters.openai import OpenAIAdapter

    return OpenAIAdapter(provider, http_client=_http_client.get(), async_http_client=_async_http_client.get())
