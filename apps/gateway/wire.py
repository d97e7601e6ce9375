"""OpenAI's wire format: errors, chat and embedding requests in, completions, chunks and embeddings out.

Errors are `{"error": {"message", "type", "param", "code"}}` with the status the official SDKs map to their
exception types (400 BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError,
429 RateLimitError, 5xx InternalServerError; 413 and 423 arrive as APIStatusError with that status).
"""

from __future__ import annotations

import base64
import struct
import time
from dataclasses import dataclass, field

import orjson

from apps.llm.errors import (
    AuthenticationFailed,
    BadRequest,
    LlmError,
    ModelNotFound,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
)
from apps.llm.results import ChatRequest, ChatResult, EmbeddingResult, StreamDelta

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "invalid_request_error", 423: "use_case_not_active",
               429: "rate_limit_error", 500: "server_error", 502: "upstream_error", 503: "service_unavailable"}
# Our parameters, not forwarded: the rest go to the call path as OpenAI pass-through parameters.
OWN_FIELDS = {"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "response_format", "tools",
              "stream", "stream_options", "metadata"}


class GatewayError(Exception):
    recorded = False  # the call's usage event already holds this outcome (the front door records no refusal)
    actions: tuple[dict, ...] = ()  # guardrail safety events that go on the refusal's usage event
    switch_id: int | None = None  # the incident switch that refuses: marks the refusal's usage event (ADR 0122)

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 retry_after: int | None = None, switch_id: int | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.retry_after = status, message, code, param, retry_after
        self.switch_id = switch_id

    def body(self) -> bytes:
        return error_json(self.status, self.message, code=self.code, param=self.param)


def error_json(status: int, message: str, *, code: str | None = None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"),
                                   "param": param, "code": code}})


def from_llm_error(exc: LlmError) -> GatewayError:
    """The answer for a failure of the call path (its message is written for the caller)."""
    if isinstance(exc, ModelNotFound):
        return GatewayError(404, exc.message, code="model_not_found", param="model")
    if isinstance(exc, BadRequest):
        return GatewayError(400, exc.message, code="invalid_request")
    if isinstance(exc, RateLimited):
        retry = int(exc.retry_after + 0.999) if exc.retry_after else None
        return GatewayError(429, exc.message, code="upstream_rate_limited", retry_after=retry)
    if isinstance(exc, AuthenticationFailed):
        return GatewayError(502, f"The upstream provider refused the portal's credentials: {exc.message}",
                            code="upstream_auth")
    if isinstance(exc, StreamInterrupted):
        return GatewayError(502, exc.message, code="stream_interrupted")
    if isinstance(exc, ProviderUnavailable):
        return GatewayError(502, exc.message, code="upstream_unavailable")
    return GatewayError(502, exc.message, code=exc.error_type)


@dataclass
class ChatCall:
    model: str
    request: ChatRequest
    stream: bool
    include_usage: bool
    metadata: dict = field(default_factory=dict)


def parse_json(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except (ValueError, RecursionError):
        raise GatewayError(400, "The body is not valid JSON.", code="invalid_json")
    if not isinstance(data, dict):
        raise GatewayError(400, "The body must be a JSON object.", code="invalid_json")
    return data


def metadata_of(data: dict) -> dict:
    metadata = data.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise GatewayError(400, "metadata must be an object of strings.", param="metadata", code="invalid_type")
    return metadata


def _model(data: dict) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, "Name a model (an alias this key may use: GET /v1/models).", param="model",
                           code="missing_model")
    return model.strip()


def parse_chat(data: dict) -> ChatCall:
    model = _model(data)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise GatewayError(400, "stream must be true or false.", param="stream", code="invalid_type")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise GatewayError(400, "stream_options must be an object.", param="stream_options", code="invalid_type")
    include_usage = options.get("include_usage") is True
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError(400, "messages must be a non-empty list.", param="messages", code="invalid_messages")
    extra = {k: v for k, v in data.items() if k not in OWN_FIELDS}
    request = ChatRequest(messages=messages, temperature=data.get("temperature"), max_tokens=max_tokens,
                          response_format=data.get("response_format"), tools=data.get("tools"), extra=extra,
                          stream_include_usage=include_usage)
    return ChatCall(model=model, request=request, stream=stream, include_usage=include_usage,
                    metadata=metadata_of(data))


def parse_embeddings(data: dict) -> tuple[str, list[str], str, dict]:
    model = _model(data)
    texts = data.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise GatewayError(400, "input must be a string or a non-empty list of strings (token arrays are not "
                                "supported).", param="input", code="invalid_input")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise GatewayError(400, "encoding_format must be 'float' or 'base64'.", param="encoding_format",
                           code="invalid_value")
    unknown = set(data) - {"model", "input", "encoding_format", "user", "metadata", "dimensions"}
    if unknown:
        raise GatewayError(400, f"Unsupported parameter: {sorted(unknown)[0]}.", param=sorted(unknown)[0],
                           code="unsupported_parameter")
    return model, texts, encoding, metadata_of(data)


def _usage(result_usage) -> dict:
    return {"prompt_tokens": result_usage.input_tokens, "completion_tokens": result_usage.output_tokens,
            "total_tokens": result_usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": result_usage.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": result_usage.reasoning_tokens}}


def _tool_calls(result: ChatResult) -> list[dict]:
    return [{"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in result.tool_calls]


def completion(result: ChatResult, *, model: str, completion_id: str) -> bytes:
    message: dict = {"role": "assistant", "content": result.text if result.text or not result.tool_calls else None,
                     "refusal": result.refusal}
    if result.tool_calls:
        message["tool_calls"] = _tool_calls(result)
    return orjson.dumps({"id": completion_id, "object": "chat.completion", "created": int(time.time()),
                         "model": model, "choices": [{"index": 0, "message": message, "logprobs": None,
                                                      "finish_reason": result.finish_reason or "stop"}],
                         "usage": _usage(result.usage)})


def sse(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def chunk(*, completion_id: str, model: str, created: int, delta: dict, finish_reason: str | None = None,
          usage: dict | None = None, choices: bool = True, include_usage: bool = False) -> bytes:
    body: dict = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                  "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
                  if choices else []}
    if include_usage:
        body["usage"] = usage
    return sse(body)


def stream_delta(delta: StreamDelta) -> dict:
    """A chunk's `delta` in OpenAI's shape: the text, and tool-call pieces (a call's first piece carries its id,
    type and name; the later ones only more arguments)."""
    out: dict = {"content": delta.text} if delta.text or not delta.tool_calls else {}
    if delta.tool_calls:
        calls = []
        for piece in delta.tool_calls:
            call: dict = {"index": piece.index}
            if piece.id:
                call.update(id=piece.id, type="function")
            function = {"name": piece.name} if piece.name else {}
            function["arguments"] = piece.arguments
            call["function"] = function
            calls.append(call)
        out["tool_calls"] = calls
    return out


def final_chunks(result: ChatResult, *, completion_id: str, model: str, created: int, include_usage: bool,
                 tools_streamed: bool = False) -> bytes:
    """The finishing chunk (the tool calls, unless they were streamed as pieces), the usage chunk when asked
    for, and [DONE]."""
    delta: dict = {}
    if result.tool_calls and not tools_streamed:
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(_tool_calls(result))]
    out = chunk(completion_id=completion_id, model=model, created=created, delta=delta,
                finish_reason=result.finish_reason or "stop", include_usage=include_usage)
    if include_usage:  # OpenAI's last chunk: no choices, the usage (sent only when the client asked)
        out += chunk(completion_id=completion_id, model=model, created=created, delta={}, choices=False,
                     usage=_usage(result.usage), include_usage=True)
    return out + DONE


def stream_error(error: GatewayError) -> bytes:
    """The event that ends a stream whose upstream failed mid-way: the SDKs raise on it (no [DONE] follows)."""
    return sse(orjson.loads(error.body()))


def embeddings(result: EmbeddingResult, *, model: str, encoding: str) -> bytes:
    def encode(vector):
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return vector

    return orjson.dumps({"object": "list", "model": model,
                         "data": [{"object": "embedding", "index": i, "embedding": encode(v)}
                                  for i, v in enumerate(result.vectors)],
                         "usage": {"prompt_tokens": result.usage.input_tokens,
                                   "total_tokens": result.usage.input_tokens}})


def models_list(names: list[tuple[str, str]]) -> bytes:
    return orjson.dumps({"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                                     "owned_by": owner} for name, owner in names]})
