"""OpenAI's chat and embeddings wire format, with no I/O: request bodies, answers parsed from plain dicts,
and failures mapped to the call path's errors. Both faces of the OpenAI adapter use it (one semantics):

- the sync path sends through the official SDK and hands its answer here as a dict (`to_dict()`), its
  exceptions as (status, body, headers);
- the async path (the gateway's hot path, ADR 0077) sends the JSON built here with a pooled
  `httpx.AsyncClient` and parses the answer and the SSE stream here, without the SDK's request building.
"""

from __future__ import annotations

import orjson

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
from apps.llm.models import ProviderKind
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

NATIVE = (ProviderKind.OPENAI, ProviderKind.AZURE_OPENAI)
STREAM_OPTIONS = {"include_usage": True}  # always asked: the usage chunk is what settles a stream's cost


def chat_body(kind: str, remote_name: str, request: ChatRequest) -> dict:
    """The chat completion's JSON body (the SDK's keyword arguments are the same names)."""
    body: dict = {"model": remote_name, "messages": request.messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        # OpenAI and Azure deprecated max_tokens (o-series reject it); compatible servers know max_tokens.
        body["max_completion_tokens" if kind in NATIVE else "max_tokens"] = request.max_tokens
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.tools:
        body["tools"] = request.tools
    body.update(request.extra)  # checked by the call path (callcore.EXTRA_PARAMETERS)
    return body


def dumps(data) -> bytes:
    return orjson.dumps(data)


def loads(raw: bytes | str):
    """JSON -> Python; raises MalformedResponse's cause (orjson.JSONDecodeError, a ValueError)."""
    return orjson.loads(raw)


# -- answers ----------------------------------------------------------------------------------------------
def usage_of(raw) -> Usage | None:
    """OpenAI usage -> Usage, with cached input and reasoning tokens. None if the provider sent none."""
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    cached = int((raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    if not cached:  # DeepSeek and some gateways report cache hits here instead
        cached = int(raw.get("prompt_cache_hit_tokens") or 0)
    reasoning = int((raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    if prompt == 0 and completion == 0:
        return None  # some servers send zeros instead of nothing; estimate rather than record a free call
    return Usage(input_tokens=prompt, output_tokens=completion, cached_input_tokens=min(cached, prompt),
                 reasoning_tokens=min(reasoning, completion))


def estimated_usage(request: ChatRequest, text: str, tool_calls: tuple[ToolCall, ...] = ()) -> Usage:
    output = estimate_tokens(text) + sum(estimate_tokens(c.name) + estimate_tokens(c.arguments) for c in tool_calls)
    return Usage(input_tokens=estimate_messages_tokens(request.messages, request.tools), output_tokens=output,
                 estimated=True)


def completion_of(data, request: ChatRequest, provider: str) -> ProviderChat:
    """A chat completion (dict) -> ProviderChat; MalformedResponse if it is not one."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
        raise MalformedResponse(f"{provider} answered without a choice: not a chat completion.")
    choice = choices[0]
    message = choice["message"]
    tool_calls = tuple(
        ToolCall(id=call.get("id") or "", name=call["function"].get("name") or "",
                 arguments=call["function"].get("arguments") or "")
        for call in (message.get("tool_calls") or []) if call.get("function")
    )
    text = message.get("content") or ""
    usage = usage_of(data.get("usage")) or estimated_usage(request, text, tool_calls)
    return ProviderChat(text=text, usage=usage, finish_reason=choice.get("finish_reason"), tool_calls=tool_calls,
                        remote_model=data.get("model") or "", refusal=message.get("refusal"))


def embeddings_of(data, texts: list[str], provider: str) -> ProviderEmbedding:
    """An embeddings answer (dict) -> ProviderEmbedding, vectors in the order of `texts`."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != len(texts):
        got = len(items) if isinstance(items, list) else "no"
        raise MalformedResponse(f"{provider} returned {got} vectors for {len(texts)} texts.")
    vectors = [[float(x) for x in item["embedding"]] for item in sorted(items, key=lambda d: d["index"])]
    if len({len(v) for v in vectors}) > 1:
        raise MalformedResponse(f"{provider} returned vectors of different lengths.")
    prompt_tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
    usage = (Usage(input_tokens=prompt_tokens) if prompt_tokens
             else Usage(input_tokens=sum(estimate_tokens(t) for t in texts), estimated=True))
    return ProviderEmbedding(vectors=vectors, usage=usage, remote_model=data.get("model") or "")


class StreamAssembler:
    """Chat completion chunks (dicts) -> text pieces as they come, and the whole answer at the end."""

    def __init__(self):
        self.parts: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict] = {}
        self.finish_reason = None
        self.usage: Usage | None = None
        self.remote_model = ""
        self.tool_pieces: list[ToolCallDelta] = []  # the last chunk's tool-call pieces

    def delta(self, chunk: dict) -> StreamDelta | None:
        """Take one chunk; the StreamDelta to pass on (its text and tool-call pieces), None if it has neither."""
        text = self.feed(chunk)
        if not text and not self.tool_pieces:
            return None
        return StreamDelta(text=text, tool_calls=tuple(self.tool_pieces))

    def feed(self, chunk: dict) -> str:
        """Take one chunk; return its text ("" if none)."""
        self.tool_pieces = []
        self.remote_model = chunk.get("model") or self.remote_model
        if chunk.get("usage") is not None:
            self.usage = usage_of(chunk["usage"])  # OpenAI sends it on a last chunk with no choices
        text = ""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    self.parts.append(content)
                    text += content
                if delta.get("refusal"):
                    self.refusal.append(delta["refusal"])
                for call in delta.get("tool_calls") or ():
                    slot = self.calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                    slot["id"] = call.get("id") or slot["id"]
                    function = call.get("function")
                    if function:
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
                    self.tool_pieces.append(ToolCallDelta(
                        index=call.get("index", 0), id=call.get("id") or "",
                        name=(function.get("name") or "") if function else "",
                        arguments=(function.get("arguments") or "") if function else ""))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return text

    def final(self, request: ChatRequest) -> ProviderChat:
        tool_calls = tuple(ToolCall(**self.calls[i]) for i in sorted(self.calls))
        text = "".join(self.parts)
        return ProviderChat(
            text=text, usage=self.usage or estimated_usage(request, text, tool_calls),
            finish_reason=self.finish_reason, tool_calls=tool_calls, remote_model=self.remote_model,
            refusal="".join(self.refusal) or None,
        )


def stream_error(provider: str, data: dict) -> LlmError | None:
    """An error event inside a 200 stream (`{"error": {...}}`), or None for an ordinary chunk."""
    error = data.get("error")
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return ProviderUnavailable(f"{provider} reported an error mid-answer: {scrub(message)}", retryable=False)


# -- failures ---------------------------------------------------------------------------------------------
def timeout_error(provider, timeout_seconds: float) -> LlmError:
    return ProviderUnavailable(f"{provider.name} did not answer within {timeout_seconds:g} s (timeout).")


def connection_error(provider, cause: BaseException | None) -> LlmError:
    reason = f": {scrub(str(cause), 120)}" if cause else ""
    return ProviderUnavailable(f"Could not connect to {provider.name}{reason}.")


def malformed(provider) -> LlmError:
    return MalformedResponse(f"{provider.name} answered with a body that is not valid JSON of the expected shape.")


def status_error_body(status: int, text: str) -> tuple[object, str]:
    """(body, message) of a non-2xx answer as the SDK reads it: the JSON's `error` object (or the raw text),
    and "Error code: N - <its message>"."""
    body: object = text.strip()
    message = f"Error code: {status}"
    try:
        parsed = orjson.loads(text)
    except ValueError:
        return body, message
    body = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        message += f" - {body['message']}"
    return body, message


def status_error(provider, status: int, body: object, message: str, headers, remote: str | None) -> LlmError:
    """A non-2xx answer -> an LlmError with a message a user can act on (both paths come here)."""
    name = provider.name
    body = body if isinstance(body, dict) else {}
    code = str(body.get("code") or "")
    detail = scrub(body.get("message") or message or "")
    retry_after = parse_retry_after(headers)
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
        what = "deployment" if provider.kind == ProviderKind.AZURE_OPENAI else "model"
        return ModelNotFound(f"{name} does not know the {what} '{remote or '?'}' (HTTP 404).", status_code=status)
    if status in (408, 409) or status >= 500:
        return ProviderUnavailable(f"{name} failed with HTTP {status}. {detail}".strip(), status_code=status,
                                   retry_after=retry_after)
    if code == "context_length_exceeded":
        return ContextLengthExceeded(f"The prompt plus max_tokens is longer than the model's context window. "
                                     f"{detail}", status_code=status)
    return BadRequest(f"{name} refused the request (HTTP {status}): {detail or 'no reason given'}",
                      status_code=status)
