"""OpenAI, Azure OpenAI and OpenAI-compatible servers (vLLM, Ollama, LiteLLM…).

Two faces, one semantics (openai_wire.py builds the bodies, parses the answers and maps the failures for both):
the sync path sends through the official SDK (an injectable httpx.Client); the async path (acalls.py, the
gateway's hot path) sends the JSON itself with a pooled httpx.AsyncClient per event loop and reads the answer
and the SSE stream itself: the SDK's request building was three quarters of the gateway's own time (ADR 0077).

Nothing here retries (the SDK is built with max_retries=0): the call path's loop (retry.py) is the only one, so
every attempt is visible and the ledger records one call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import weakref
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
import openai
import pydantic
from openai.types.chat import ChatCompletion

from apps.llm.adapters import openai_wire as wire
from apps.llm.adapters.upstream_http import OPENAI_BASE_URL, Upstream
from apps.llm.crypto import provider_api_key
from apps.llm.errors import AuthenticationFailed, LlmError, ProviderUnavailable, scrub
from apps.llm.models import Model, Provider, ProviderKind
from apps.llm.results import ChatRequest, ProviderChat, ProviderEmbedding, StreamDelta

NO_KEY = "EMPTY"  # what vLLM's docs send when the server needs no key; never the process's OPENAI_API_KEY
_MALFORMED = (json.JSONDecodeError, pydantic.ValidationError, openai.APIResponseValidationError,
              KeyError, TypeError, AttributeError, ValueError, IndexError)

_clients: dict[tuple, openai.OpenAI] = {}
_clients_lock = threading.Lock()
_upstreams: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> {settings: Upstream}


def _timeout(timeout: float | None) -> dict:
    """A per-attempt timeout (what is left of an alias's deadline), when shorter than the provider's."""
    return {} if timeout is None else {"timeout": max(0.05, timeout)}


class OpenAIAdapter:
    def __init__(self, provider: Provider, http_client: httpx.Client | None = None,
                 async_http_client: httpx.AsyncClient | None = None):
        self.provider = provider
        self.http_client = http_client
        self.async_http_client = async_http_client

    # -- client ---------------------------------------------------------------------------------------------
    def _secret(self) -> str:
        provider = self.provider
        key = provider_api_key(provider)
        if key is None and provider.kind in (ProviderKind.OPENAI, ProviderKind.AZURE_OPENAI):
            raise AuthenticationFailed(
                f"Provider {provider.name} has no API key: set one on the Models page, or name the environment "
                "variable that holds it."
            )
        return key.reveal() if key else NO_KEY

    def _client(self, timeout: float | None = None) -> openai.OpenAI:
        provider = self.provider
        secret = self._secret()
        timeout = timeout or provider.timeout_seconds
        cache_key = (provider.pk, provider.updated_at, provider.kind, provider.base_url, provider.api_version,
                     timeout, hashlib.sha256(secret.encode()).hexdigest())
        common = {"api_key": secret, "timeout": timeout, "max_retries": 0, "http_client": self.http_client}
        if self.http_client is not None:  # an injected transport (tests, replays): never cached
            return self._build(common)
        cached = _clients.get(cache_key)
        if cached is not None:
            return cached
        # Built under the lock: an eval run's threads all make their first call at once, and each building its
        # own client (an httpx pool and a TLS context, ~50 ms of CPU) cost ~1 s of a 2-core worker's start.
        with _clients_lock:
            cached = _clients.get(cache_key)
            if cached is not None:
                return cached
            client = self._build(common)
            for k in [k for k in _clients if k[0] == provider.pk]:  # the provider changed: its old client goes
                _clients.pop(k)
            _clients[cache_key] = client
        return client

    def _upstream(self) -> Upstream:
        """The async path's HTTP: one per (provider settings, event loop), its connection pool reused.

        The key is decrypted only when one is built, not per request. An injected async client (tests) is
        never cached.
        """
        provider = self.provider
        if self.async_http_client is not None:
            return Upstream(provider, self._secret(), self.async_http_client)
        per_loop = _upstreams.setdefault(asyncio.get_running_loop(), {})
        cache_key = (provider.pk, provider.updated_at, provider.kind, provider.base_url, provider.api_version,
                     provider.timeout_seconds, provider.api_key_env)
        found = per_loop.get(cache_key)
        if found is None:
            found = Upstream(provider, self._secret())
            for k in [k for k in per_loop if k[0] == provider.pk]:  # the provider changed: its old client goes
                per_loop.pop(k)
            per_loop[cache_key] = found
        return found

    def _build(self, common: dict) -> openai.OpenAI:
        provider = self.provider
        if provider.kind == ProviderKind.AZURE_OPENAI:
            return openai.AzureOpenAI(azure_endpoint=provider.base_url, api_version=provider.api_version, **common)
        return openai.OpenAI(base_url=provider.base_url or OPENAI_BASE_URL, **common)

    # -- errors ---------------------------------------------------------------------------------------------
    def translate(self, exc: BaseException, model: Model | None = None) -> LlmError:
        """An SDK or transport exception -> an LlmError with a message a user can act on (both paths)."""
        if isinstance(exc, LlmError):
            return exc
        provider = self.provider
        if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
            return wire.timeout_error(provider, provider.timeout_seconds)  # aiohttp's timeouts are TimeoutErrors
        if isinstance(exc, openai.APIConnectionError):
            return wire.connection_error(provider, exc.__cause__)
        if isinstance(exc, httpx.TransportError | aiohttp.ClientError):
            return wire.connection_error(provider, exc)
        if isinstance(exc, openai.APIStatusError):
            return wire.status_error(provider, exc.status_code, exc.body, exc.message, exc.response.headers,
                                     model.remote_name if model is not None else None)
        if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
            return ProviderUnavailable(f"{provider.name} reported an error mid-answer: {scrub(exc.message)}",
                                       retryable=False)
        if isinstance(exc, _MALFORMED):
            return wire.malformed(provider)
        return ProviderUnavailable(f"{provider.name} failed unexpectedly ({type(exc).__name__}).", retryable=False)

    def _status_error(self, status: int, headers, content: bytes, model: Model) -> LlmError:
        """A non-2xx answer on the async path, read as the SDK reads it (then the same mapping)."""
        body, message = wire.status_error_body(status, content.decode("utf-8", "replace"))
        return wire.status_error(self.provider, status, body, message, headers, model.remote_name)

    # -- calls: sync, through the SDK ----------------------------------------------------------------------
    def _chat_kwargs(self, model: Model, request: ChatRequest, timeout: float | None = None) -> dict:
        return {**wire.chat_body(self.provider.kind, model.remote_name, request), **_timeout(timeout)}

    def chat(self, model: Model, request: ChatRequest, timeout: float | None = None) -> ProviderChat:
        client = self._client()
        try:
            completion = client.chat.completions.create(**self._chat_kwargs(model, request, timeout))
            data = completion.to_dict() if isinstance(completion, ChatCompletion) else None
            return wire.completion_of(data, request, self.provider.name)
        except Exception as exc:
            raise self.translate(exc, model) from exc

    def chat_stream(self, model: Model, request: ChatRequest, timeout: float | None = None) -> Iterator[StreamDelta]:
        client = self._client()
        kwargs = self._chat_kwargs(model, request, timeout)
        try:
            stream = client.chat.completions.create(**kwargs, stream=True, stream_options=wire.STREAM_OPTIONS)
        except Exception as exc:
            raise self.translate(exc, model) from exc
        return self._iterate(stream, model, request)

    def _iterate(self, stream, model: Model, request: ChatRequest) -> Iterator[StreamDelta]:
        assembled = wire.StreamAssembler()
        try:
            for chunk in stream:
                delta = assembled.delta(chunk.to_dict())
                if delta is not None:
                    yield delta
        except Exception as exc:
            raise self.translate(exc, model) from exc
        finally:
            stream.close()
        yield StreamDelta(final=assembled.final(request))

    def embed(self, model: Model, texts: list[str], timeout: float | None = None) -> ProviderEmbedding:
        client = self._client()
        try:
            response = client.embeddings.create(model=model.remote_name, input=texts, encoding_format="float",
                                                **_timeout(timeout))
            return wire.embeddings_of(response.to_dict(), texts, self.provider.name)
        except Exception as exc:
            raise self.translate(exc, model) from exc

    # -- calls: async, the lean client (acalls.py; the gateway's hot path) -----------------------------------
    async def _apost(self, path: str, model: Model, body: dict, timeout: float | None):
        """POST a JSON body; the answer's JSON, or the LlmError of what went wrong."""
        upstream = self._upstream()
        try:
            status, headers, content = await upstream.post(upstream.url(path, model.remote_name), wire.dumps(body),
                                                           timeout)
        except Exception as exc:
            raise self.translate(exc, model) from exc
        if not 200 <= status < 300:
            raise self._status_error(status, headers, content, model)
        try:
            return wire.loads(content)
        except Exception as exc:
            raise self.translate(exc, model) from exc

    async def achat(self, model: Model, request: ChatRequest, timeout: float | None = None) -> ProviderChat:
        data = await self._apost("chat/completions", model,
                                 wire.chat_body(self.provider.kind, model.remote_name, request), timeout)
        try:
            return wire.completion_of(data, request, self.provider.name)
        except Exception as exc:
            raise self.translate(exc, model) from exc

    async def achat_stream(self, model: Model, request: ChatRequest,
                           timeout: float | None = None) -> AsyncIterator[StreamDelta]:
        """Connect (raising LlmError if refused, before any delta) and return an async iterator of deltas."""
        upstream = self._upstream()
        body = wire.chat_body(self.provider.kind, model.remote_name, request)
        body["stream"], body["stream_options"] = True, wire.STREAM_OPTIONS
        try:
            answer = await upstream.open_stream(upstream.url("chat/completions", model.remote_name),
                                                wire.dumps(body), timeout)
        except Exception as exc:
            raise self.translate(exc, model) from exc
        if not 200 <= answer.status < 300:
            try:
                content = await answer.read()
            except Exception:  # noqa: BLE001 - the status says enough
                content = b""
            finally:
                await answer.close()
            raise self._status_error(answer.status, answer.headers, content, model)
        return self._aiterate(answer, model, request)

    async def _aiterate(self, answer, model: Model, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        assembled = wire.StreamAssembler()
        name = self.provider.name
        try:
            async for data in _sse_data(answer.lines()):
                if data.startswith("[DONE]"):
                    break
                chunk = wire.loads(data)
                if not isinstance(chunk, dict):
                    continue
                failed = wire.stream_error(name, chunk)
                if failed is not None:
                    raise failed
                delta = assembled.delta(chunk)
                if delta is not None:
                    yield delta
        except Exception as exc:
            raise self.translate(exc, model) from exc
        finally:
            await answer.close()
        yield StreamDelta(final=assembled.final(request))

    async def aembed(self, model: Model, texts: list[str], timeout: float | None = None) -> ProviderEmbedding:
        data = await self._apost("embeddings", model, {"model": model.remote_name, "input": texts,
                                                       "encoding_format": "float"}, timeout)
        try:
            return wire.embeddings_of(data, texts, self.provider.name)
        except Exception as exc:
            raise self.translate(exc, model) from exc

    def test_connection(self) -> str:
        client = self._client(timeout=min(self.provider.timeout_seconds, 15.0))
        try:
            listed = {m.id for m in client.models.list().data}
        except Exception as exc:
            raise self.translate(exc) from exc
        message = f"Connected: the API key works and {len(listed)} models are listed."
        if self.provider.kind != ProviderKind.AZURE_OPENAI:  # Azure lists base models, not deployments
            missing = sorted(m.remote_name for m in self.provider.models.filter(is_active=True)
                             if m.remote_name not in listed)
            if missing:
                message += f" Not offered by the provider: {', '.join(missing)}."
        return message


async def _sse_data(source: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each Server-Sent Event (multi-line data joined); other fields and comments skipped."""
    lines: list[str] = []
    async for line in source:
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[6:] if line.startswith("data: ") else line[5:])
    if lines:
        yield "\n".join(lines)
