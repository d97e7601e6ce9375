"""OpenAI, Azure OpenAI and OpenAI-compatible servers (vLLM, Ollama, LiteLLM…) through the official SDK.

The SDK never retries (max_retries=0): the call path's loop (retry.py) is the only one, so every attempt is
visible and the ledger records one call. The SDK's HTTP goes through an injectable httpx.Client.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import weakref
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pydantic
from openai.types.chat import ChatCompletion

from apps.llm.crypto import provider_api_key
from apps.llm.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextLengthExceeded,
    LlmError,
    MalformedResponse,
    ModelNotFound,
    ProviderUnavailable,
    RateLimited,
    scrub,
)
from apps.llm.models import Model, Provider, ProviderKind
from apps.llm.results import (
    ChatRequest,
    ProviderChat,
    ProviderEmbedding,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from apps.llm.retry import parse_retry_after
from apps.llm.tokens import estimate_messages_tokens, estimate_tokens

OPENAI_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "EMPTY"  # what vLLM's docs send when the server needs no key; never the process's OPENAI_API_KEY
_MALFORMED = (json.JSONDecodeError, pydantic.ValidationError, openai.APIResponseValidationError,
              KeyError, TypeError, AttributeError, ValueError)

_clients: dict[tuple, openai.OpenAI] = {}
_clients_lock = threading.Lock()
_aclients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> {settings: AsyncOpenAI}


def usage_from(raw) -> Usage | None:
    """OpenAI usage -> Usage, with cached input and reasoning tokens. None if the provider sent none."""
    if raw is None:
        return None
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    completion = int(getattr(raw, "completion_tokens", 0) or 0)
    prompt_details = getattr(raw, "prompt_tokens_details", None)
    cached = int(getattr(prompt_details, "cached_tokens", 0) or 0)
    if not cached:  # DeepSeek and some gateways report cache hits here instead
        cached = int((getattr(raw, "model_extra", None) or {}).get("prompt_cache_hit_tokens") or 0)
    completion_details = getattr(raw, "completion_tokens_details", None)
    reasoning = int(getattr(completion_details, "reasoning_tokens", 0) or 0)
    if prompt == 0 and completion == 0:
        return None  # some servers send zeros instead of nothing; estimate rather than record a free call
    return Usage(input_tokens=prompt, output_tokens=completion, cached_input_tokens=min(cached, prompt),
                 reasoning_tokens=min(reasoning, completion))


def _estimated_usage(request: ChatRequest, text: str, tool_calls: tuple[ToolCall, ...] = ()) -> Usage:
    output = estimate_tokens(text) + sum(estimate_tokens(c.name) + estimate_tokens(c.arguments) for c in tool_calls)
    return Usage(input_tokens=estimate_messages_tokens(request.messages, request.tools), output_tokens=output,
                 estimated=True)


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

    def _aclient(self) -> openai.AsyncOpenAI:
        """The async SDK client: one per (provider settings, event loop), its httpx.AsyncClient pool reused.

        The key is decrypted only when a client is built, not per request. An injected async transport
        (tests) is never cached.
        """
        provider = self.provider
        if self.async_http_client is not None:
            return self._abuild(self._secret(), self.async_http_client)
        per_loop = _aclients.setdefault(asyncio.get_running_loop(), {})
        cache_key = (provider.pk, provider.updated_at, provider.kind, provider.base_url, provider.api_version,
                     provider.timeout_seconds, provider.api_key_env)
        found = per_loop.get(cache_key)
        if found is None:
            found = self._abuild(self._secret(), None)
            for k in [k for k in per_loop if k[0] == provider.pk]:  # the provider changed: its old client goes
                per_loop.pop(k)
            per_loop[cache_key] = found
        return found

    def _abuild(self, secret: str, http_client: httpx.AsyncClient | None) -> openai.AsyncOpenAI:
        provider = self.provider
        common = {"api_key": secret, "timeout": provider.timeout_seconds, "max_retries": 0,
                  "http_client": http_client}
        if provider.kind == ProviderKind.AZURE_OPENAI:
            return openai.AsyncAzureOpenAI(azure_endpoint=provider.base_url, api_version=provider.api_version,
                                           **common)
        return openai.AsyncOpenAI(base_url=provider.base_url or OPENAI_BASE_URL, **common)

    def _build(self, common: dict) -> openai.OpenAI:
        provider = self.provider
        if provider.kind == ProviderKind.AZURE_OPENAI:
            return openai.AzureOpenAI(azure_endpoint=provider.base_url, api_version=provider.api_version, **common)
        return openai.OpenAI(base_url=provider.base_url or OPENAI_BASE_URL, **common)

    # -- errors ---------------------------------------------------------------------------------------------
    def translate(self, exc: BaseException, model: Model | None = None) -> LlmError:
        """An SDK/transport exception -> an LlmError with a message a user can act on."""
        if isinstance(exc, LlmError):
            return exc
        name = self.provider.name
        if isinstance(exc, openai.APITimeoutError):
            return ProviderUnavailable(f"{name} did not answer within {self.provider.timeout_seconds:g} s (timeout).")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            reason = f": {scrub(str(cause), 120)}" if cause else ""
            return ProviderUnavailable(f"Could not connect to {name}{reason}.")
        if isinstance(exc, openai.APIStatusError):
            return self._translate_status(exc, model)
        if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
            return ProviderUnavailable(f"{name} reported an error mid-answer: {scrub(exc.message)}",
                                       retryable=False)
        if isinstance(exc, _MALFORMED):
            return MalformedResponse(f"{name} answered with a body that is not valid JSON of the expected shape.")
        return ProviderUnavailable(f"{name} failed unexpectedly ({type(exc).__name__}).", retryable=False)

    def _translate_status(self, exc: openai.APIStatusError, model: Model | None) -> LlmError:
        name, status = self.provider.name, exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        code = str(body.get("code") or getattr(exc, "code", "") or "")
        detail = scrub(body.get("message") or exc.message or "")
        retry_after = parse_retry_after(exc.response.headers)
        if status == 429:
            if code == "insufficient_quota" or "exceeded your current quota" in detail.lower():
                return RateLimited(f"The {name} account has run out of quota or credit (429 insufficient_quota); "
                                   "retrying will not help until billing is fixed.", status_code=status,
                                   retryable=False)
            return RateLimited(f"{name} is rate limiting requests (429). {detail}".strip(), status_code=status,
                               retry_after=retry_after)
        if status in (401, 403):  # the provider's text may quote part of the key: not shown
            return AuthenticationFailed(f"{name} rejected the API key (HTTP {status}). Check the key, or the "
                                        "environment variable it is read from, on the Models page.",
                                        status_code=status)
        if status == 404:
            what = "deployment" if self.provider.kind == ProviderKind.AZURE_OPENAI else "model"
            remote = model.remote_name if model is not None else "?"
            return ModelNotFound(f"{name} does not know the {what} '{remote}' (HTTP 404).", status_code=status)
        if status in (408, 409) or status >= 500:
            return ProviderUnavailable(f"{name} failed with HTTP {status}. {detail}".strip(), status_code=status,
                                       retry_after=retry_after)
        if code == "context_length_exceeded":
            return ContextLengthExceeded(f"The prompt plus max_tokens is longer than the model's context window. "
                                         f"{detail}", status_code=status)
        return BadRequest(f"{name} refused the request (HTTP {status}): {detail or 'no reason given'}",
                          status_code=status)

    # -- calls ----------------------------------------------------------------------------------------------
    def _chat_kwargs(self, model: Model, request: ChatRequest, timeout: float | None = None) -> dict:
        kwargs: dict = {"model": model.remote_name, "messages": request.messages, **_timeout(timeout)}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            # OpenAI and Azure deprecated max_tokens (o-series reject it); compatible servers know max_tokens.
            native = self.provider.kind in (ProviderKind.OPENAI, ProviderKind.AZURE_OPENAI)
            kwargs["max_completion_tokens" if native else "max_tokens"] = request.max_tokens
        if request.response_format is not None:
            kwargs["response_format"] = request.response_format
        if request.tools:
            kwargs["tools"] = request.tools
        kwargs.update(request.extra)  # checked by the call path (callcore.EXTRA_PARAMETERS)
        return kwargs

    def chat(self, model: Model, request: ChatRequest, timeout: float | None = None) -> ProviderChat:
        client = self._client()
        try:
            completion = client.chat.completions.create(**self._chat_kwargs(model, request, timeout))
            return self._parse_completion(completion, request)
        except Exception as exc:
            raise self.translate(exc, model) from exc

    def _parse_completion(self, completion, request: ChatRequest) -> ProviderChat:
        choices = getattr(completion, "choices", None) if isinstance(completion, ChatCompletion) else None
        if not choices or getattr(choices[0], "message", None) is None:
            raise MalformedResponse(f"{self.provider.name} answered without a choice: not a chat completion.")
        choice = choices[0]
        message = choice.message
        tool_calls = tuple(
            ToolCall(id=call.id or "", name=call.function.name or "", arguments=call.function.arguments or "")
            for call in (getattr(message, "tool_calls", None) or []) if getattr(call, "function", None)
        )
        text = message.content or ""
        usage = usage_from(getattr(completion, "usage", None)) or _estimated_usage(request, text, tool_calls)
        return ProviderChat(text=text, usage=usage, finish_reason=choice.finish_reason, tool_calls=tool_calls,
                            remote_model=getattr(completion, "model", "") or "",
                            refusal=getattr(message, "refusal", None))

    def chat_stream(self, model: Model, request: ChatRequest, timeout: float | None = None) -> Iterator[StreamDelta]:
        client = self._client()
        kwargs = self._chat_kwargs(model, request, timeout)
        try:
            stream = client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
        except Exception as exc:
            raise self.translate(exc, model) from exc
        return self._iterate(stream, model, request)

    def _iterate(self, stream, model: Model, request: ChatRequest) -> Iterator[StreamDelta]:
        assembled = _StreamAssembler()
        try:
            for chunk in stream:
                delta = assembled.delta(chunk)
                if delta is not None:
                    yield delta
        except Exception as exc:
            raise self.translate(exc, model) from exc
        finally:
            stream.close()
        yield StreamDelta(final=assembled.final(request))

    # -- async calls (the gateway's hot path; acalls.py) ----------------------------------------------------
    async def achat(self, model: Model, request: ChatRequest, timeout: float | None = None) -> ProviderChat:
        client = self._aclient()
        try:
            completion = await client.chat.completions.create(**self._chat_kwargs(model, request, timeout))
            return self._parse_completion(completion, request)
        except Exception as exc:
            raise self.translate(exc, model) from exc

    async def achat_stream(self, model: Model, request: ChatRequest,
                           timeout: float | None = None) -> AsyncIterator[StreamDelta]:
        """Connect (raising LlmError if refused, before any delta) and return an async iterator of deltas."""
        client = self._aclient()
        try:
            stream = await client.chat.completions.create(**self._chat_kwargs(model, request, timeout), stream=True,
                                                          stream_options={"include_usage": True})
        except Exception as exc:
            raise self.translate(exc, model) from exc
        return self._aiterate(stream, model, request)

    async def _aiterate(self, stream, model: Model, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        assembled = _StreamAssembler()
        try:
            async for chunk in stream:
                delta = assembled.delta(chunk)
                if delta is not None:
                    yield delta
        except Exception as exc:
            raise self.translate(exc, model) from exc
        finally:
            await stream.close()
        yield StreamDelta(final=assembled.final(request))

    async def aembed(self, model: Model, texts: list[str], timeout: float | None = None) -> ProviderEmbedding:
        client = self._aclient()
        try:
            response = await client.embeddings.create(model=model.remote_name, input=texts, encoding_format="float",
                                                      **_timeout(timeout))
        except Exception as exc:
            raise self.translate(exc, model) from exc
        return self._parse_embeddings(response, model, texts)

    def embed(self, model: Model, texts: list[str], timeout: float | None = None) -> ProviderEmbedding:
        client = self._client()
        try:
            response = client.embeddings.create(model=model.remote_name, input=texts, encoding_format="float",
                                                **_timeout(timeout))
        except Exception as exc:
            raise self.translate(exc, model) from exc
        return self._parse_embeddings(response, model, texts)

    def _parse_embeddings(self, response, model: Model, texts: list[str]) -> ProviderEmbedding:
        try:
            data = getattr(response, "data", None)
            if not isinstance(data, list) or len(data) != len(texts):
                got = len(data) if isinstance(data, list) else "no"
                raise MalformedResponse(f"{self.provider.name} returned {got} vectors for {len(texts)} texts.")
            vectors = [[float(x) for x in item.embedding] for item in sorted(data, key=lambda d: d.index)]
        except Exception as exc:
            raise self.translate(exc, model) from exc
        if len({len(v) for v in vectors}) > 1:
            raise MalformedResponse(f"{self.provider.name} returned vectors of different lengths.")
        raw_usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(raw_usage, "prompt_tokens", 0) or 0)
        usage = (Usage(input_tokens=prompt_tokens) if prompt_tokens
                 else Usage(input_tokens=sum(estimate_tokens(t) for t in texts), estimated=True))
        return ProviderEmbedding(vectors=vectors, usage=usage, remote_model=getattr(response, "model", "") or "")

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


class _StreamAssembler:
    """Chat completion chunks -> text pieces as they come, and the whole answer at the end (sync and async)."""

    def __init__(self):
        self.parts: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict] = {}
        self.finish_reason = None
        self.usage: Usage | None = None
        self.remote_model = ""
        self.tool_pieces: list[ToolCallDelta] = []  # the last chunk's tool-call pieces

    def delta(self, chunk) -> StreamDelta | None:
        """Take one chunk; the StreamDelta to pass on (its text and tool-call pieces), None if it has neither."""
        text = self.feed(chunk)
        if not text and not self.tool_pieces:
            return None
        return StreamDelta(text=text, tool_calls=tuple(self.tool_pieces))

    def feed(self, chunk) -> str:
        """Take one chunk; return its text ("" if none)."""
        self.tool_pieces = []
        self.remote_model = getattr(chunk, "model", None) or self.remote_model
        if getattr(chunk, "usage", None) is not None:
            self.usage = usage_from(chunk.usage)  # OpenAI sends it on a last chunk with no choices
        text = ""
        for choice in getattr(chunk, "choices", None) or []:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    self.parts.append(delta.content)
                    text += delta.content
                if getattr(delta, "refusal", None):
                    self.refusal.append(delta.refusal)
                for call in getattr(delta, "tool_calls", None) or []:
                    slot = self.calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = call.id or slot["id"]
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["arguments"] += call.function.arguments or ""
                    function = call.function
                    self.tool_pieces.append(ToolCallDelta(
                        index=call.index, id=call.id or "", name=(function.name or "") if function else "",
                        arguments=(function.arguments or "") if function else ""))
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        return text

    def final(self, request: ChatRequest) -> ProviderChat:
        tool_calls = tuple(ToolCall(**self.calls[i]) for i in sorted(self.calls))
        text = "".join(self.parts)
        return ProviderChat(
            text=text, usage=self.usage or _estimated_usage(request, text, tool_calls),
            finish_reason=self.finish_reason, tool_calls=tool_calls, remote_model=self.remote_model,
            refusal="".join(self.refusal) or None,
        )
