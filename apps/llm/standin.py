"""An OpenAI-compatible stand-in upstream: a lean ASGI app (no framework) served by uvicorn.

For tests and benchmarks of the call path and the gateway, offline: `/v1/chat/completions` (plain, and SSE
streaming with a final usage chunk when `stream_options.include_usage`), `/v1/embeddings`, `/v1/models`.

Behaviour is scripted per request, by the model name or the `X-Standin-Behaviour` header (the header wins):

    ok (any other name)    answers: "Answer: <the last user line>", usage counted at ~4 characters a token
    fail-<status>          answers <status> with an OpenAI error body (fail-500, fail-503, fail-400…)
    rate-limit             429 with Retry-After (X-Standin-Retry-After, default 1 second)
    cut-stream             streams the first words, then drops the connection (a plain call: a cut body)
    slow                   waits X-Standin-Latency-Ms (default 2000 ms) before answering
    ctx-<N>                a context window of N tokens: a longer prompt gets 400 context_length_exceeded
    tool-call              calls the request's first tool (or the one `tool_choice` names; also whenever
                           tool_choice is "required" or names one): streamed as OpenAI streams tool calls (id and
                           name first, then the JSON arguments in pieces), finish_reason "tool_calls"
    embed-<D>              (embeddings) D-dimensional vectors (default 8), deterministic, unit length

Latency: `latency_ms` for every answer (start option, control endpoint, or X-Standin-Latency-Ms per request),
and `chunk_ms` between stream chunks. The control endpoint scripts failures at run time:

    POST /standin/control {"failure_rate": 0.5, "failure_status": 503, "outage": true, "latency_ms": 20,
                           "fail_next": 3, "fail_next_status": 429, "fail_models": {"svc-a": 503}, "reset": true,
                           "reply": "this exact answer", "chunk_chars": 5}

`reply` answers every chat with that text instead of the echo (null: the echo again); `chunk_chars` streams the
answer in pieces of that many characters instead of word by word (0: by word), so a test can split a word, an
e-mail address or a key across deltas.
    GET  /standin/stats   {"calls": …, "statuses": {"200": …}, "in_flight": …, "max_in_flight": …}

Run it: `manage.py llm_standin --port 8900 --latency-ms 50`; in tests, `serve_in_thread(StandIn())`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from apps.core.asgi import serve_lifespan

CHAT_MODEL = "standin-chat"
EMBED_MODEL = "standin-embed"
SCRIPTED = ("fail-500", "fail-503", "rate-limit", "cut-stream", "slow", "ctx-64", "tool-call")
_FAIL = re.compile(r"^fail-(\d{3})$")
_CTX = re.compile(r"ctx-(\d+)")
_EMBED = re.compile(r"embed-(\d+)")


class _Cut(Exception):
    """Raised inside the app to drop the connection mid-answer (uvicorn closes it without finishing)."""


def default_responder(messages: list[dict]) -> str:
    """A deterministic answer: 'Answer: <the question's last line>'."""
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    if isinstance(last, list):
        last = " ".join(str(p.get("text", "")) for p in last if isinstance(p, dict))
    lines = [line.strip() for line in str(last).splitlines() if line.strip()]
    question = lines[-1] if lines else ""
    if question.lower().startswith("question:"):
        question = question[9:].strip()
    return f"Answer: {question}"


def count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def prompt_tokens_of(messages: list[dict]) -> int:
    return sum(count_tokens(json.dumps(m.get("content", ""))) + 3 for m in messages if isinstance(m, dict)) + 3


class StandIn:
    """The stand-in's script and counters (one per process; the ASGI app is `StandIn().app`)."""

    def __init__(self, *, latency_ms: float = 0.0, chunk_ms: float = 0.0, failure_rate: float = 0.0,
                 failure_status: int = 503, responder: Callable[[list[dict]], str] | None = None,
                 seed: int | None = None):
        self.defaults = {"latency_ms": latency_ms, "chunk_ms": chunk_ms, "failure_rate": failure_rate,
                         "failure_status": failure_status}
        self.responder = responder or default_responder
        self.random = random.Random(seed)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            for name, value in self.defaults.items():
                setattr(self, name, value)
            self.outage = False
            self.fail_models: dict[str, int] = {}  # model name -> status every call to it gets
            self.fail_next_statuses: list[int] = []
            self.calls = 0
            self.statuses: dict[str, int] = {}
            self.models: dict[str, int] = {}
            self.in_flight = 0
            self.max_in_flight = 0
            self.requests: list[dict] = []  # the last bodies received (most recent last, at most 100)
            self.reply: str | None = None  # answer this instead of the echo
            self.chunk_chars = 0  # stream in pieces of this many characters (0: word by word)

    # -- scripting ------------------------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 429) -> None:
        with self._lock:
            self.fail_next_statuses.extend([status] * count)

    def control(self, body: dict) -> dict:
        if body.get("reset"):
            self.reset()
        with self._lock:
            for name, cast in (("latency_ms", float), ("chunk_ms", float), ("failure_rate", float),
                               ("failure_status", int)):
                if name in body:
                    setattr(self, name, cast(body[name]))
            if "outage" in body:
                self.outage = bool(body["outage"])
            if "fail_models" in body:
                self.fail_models = {str(k): int(v) for k, v in (body["fail_models"] or {}).items()}
            if "reply" in body:
                self.reply = None if body["reply"] is None else str(body["reply"])
            if "chunk_chars" in body:
                self.chunk_chars = max(0, int(body["chunk_chars"]))
        if body.get("fail_next"):
            self.fail_next(int(body["fail_next"]), int(body.get("fail_next_status", 429)))
        return self.stats()

    def stats(self) -> dict:
        with self._lock:
            return {"calls": self.calls, "statuses": dict(self.statuses), "models": dict(self.models),
                    "in_flight": self.in_flight, "max_in_flight": self.max_in_flight, "outage": self.outage,
                    "failure_rate": self.failure_rate, "latency_ms": self.latency_ms,
                    "fail_models": dict(self.fail_models)}

    def _scripted_failure(self, model: str) -> int | None:
        with self._lock:
            if model in self.fail_models:
                return self.fail_models[model]
            if self.fail_next_statuses:
                return self.fail_next_statuses.pop(0)
            if self.outage:
                return self.failure_status
            if self.failure_rate and self.random.random() < self.failure_rate:
                return self.failure_status
        return None

    # -- ASGI -----------------------------------------------------------------------------------------------
    async def app(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        method = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        response = _Response(send)
        if path == "/standin/stats" and method == "GET":
            return await response.json(200, self.stats())
        if path == "/standin/control" and method == "POST":
            return await response.json(200, self.control(_loads(body) or {}))
        if path.endswith("/models") and method == "GET":
            names = [CHAT_MODEL, EMBED_MODEL, *SCRIPTED]
            return await response.json(200, {"object": "list", "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "standin"} for n in names]})
        if method != "POST" or not (path.endswith("/chat/completions") or path.endswith("/embeddings")):
            return await response.error(404, f"No route {method} {path}.", "not_found_error", "not_found")
        payload = _loads(body)
        if not isinstance(payload, dict):
            return await response.error(400, "The body is not a JSON object.", "invalid_request_error")
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests = [*self.requests[-99:], payload]
            model = str(payload.get("model", ""))
            self.models[model] = self.models.get(model, 0) + 1
        try:
            await self._answer(path, payload, headers, response)
        finally:
            with self._lock:
                self.in_flight -= 1
                if response.status is not None:
                    key = str(response.status) + ("-cut" if response.cut else "")
                    self.statuses[key] = self.statuses.get(key, 0) + 1

    async def _answer(self, path: str, payload: dict, headers: dict, response: _Response) -> None:
        model = str(payload.get("model") or "")
        behaviour = headers.get("x-standin-behaviour") or model
        latency = _float(headers.get("x-standin-latency-ms"), None)
        if behaviour == "slow":
            latency = 2000.0 if latency is None else latency
        latency = self.latency_ms if latency is None else latency
        if latency:
            await asyncio.sleep(latency / 1000)
        status = self._scripted_failure(model)
        if status is None and (match := _FAIL.match(behaviour)):
            status = int(match.group(1))
        if behaviour == "rate-limit":
            status = 429
        if status is not None:
            retry_after = headers.get("x-standin-retry-after", "1")
            extra = {"retry-after": retry_after} if status == 429 else {}
            kind = "rate_limit_error" if status == 429 else ("server_error" if status >= 500 else
                                                             "invalid_request_error")
            return await response.error(status, f"stand-in: scripted {status}", kind, headers=extra)
        if path.endswith("/embeddings"):
            return await self._embeddings(payload, behaviour, response)
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return await response.error(400, "messages must be a non-empty list.", "invalid_request_error")
        prompt_tokens = prompt_tokens_of(messages)
        if (match := _CTX.search(behaviour)) and prompt_tokens > int(match.group(1)):
            return await response.error(
                400, f"This model's maximum context length is {match.group(1)} tokens. However, your messages "
                     f"resulted in {prompt_tokens} tokens.", "invalid_request_error", "context_length_exceeded")
        tool = tool_to_call(payload, behaviour)
        if tool is not None:
            return await self._tool_call(payload, model, tool, messages, prompt_tokens, response)
        text = self.responder(messages) if self.reply is None else self.reply
        max_tokens = payload.get("max_tokens") or payload.get("max_completion_tokens")
        words = re.findall(r"\s*\S+", text)
        finish = "stop"
        if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
            words, finish = words[:max_tokens], "length"
        text = "".join(words)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words)}
        ident = f"chatcmpl-standin-{self.calls}"
        if payload.get("stream"):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            size = self.chunk_chars
            pieces = [text[i:i + size] for i in range(0, len(text), size)] if size else words
            return await self._stream(ident, model, pieces, finish, usage if include_usage else None,
                                      behaviour == "cut-stream", response)
        body = {"id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "finish_reason": finish, "logprobs": None}],
                "usage": usage}
        if behaviour == "cut-stream":
            return await response.cut_body(200, body)
        return await response.json(200, body)

    async def _stream(self, ident, model, words, finish, usage, cut: bool, response: _Response) -> None:
        def chunk(delta: dict, **options) -> bytes:
            return _chunk(ident, model, delta, **options)

        await response.start(200, {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
        await response.send_part(chunk({"role": "assistant", "content": ""}))
        for index, word in enumerate(words):
            if cut and index >= max(1, len(words) // 2):
                response.cut = True
                raise _Cut("stand-in: scripted mid-stream cut")
            if self.chunk_ms:
                await asyncio.sleep(self.chunk_ms / 1000)
            await response.send_part(chunk({"content": word}))
        if cut:  # a one-word answer: cut before the end all the same
            response.cut = True
            raise _Cut("stand-in: scripted mid-stream cut")
        await response.send_part(chunk({}, finish_reason=finish))
        if usage is not None:
            await response.send_part(chunk({}, choices=False, with_usage=usage))
        await response.send_part(b"data: [DONE]\n\n", more=False)

    async def _tool_call(self, payload: dict, model: str, tool: dict, messages: list[dict], prompt_tokens: int,
                         response: _Response) -> None:
        name = str(tool.get("name", ""))
        properties = (tool.get("parameters") or {}).get("properties") or {}
        argument = next(iter(properties), "input")
        arguments = json.dumps({argument: default_responder(messages).removeprefix("Answer: ")})
        call_id = f"call_standin_{self.calls}"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count_tokens(arguments),
                 "total_tokens": prompt_tokens + count_tokens(arguments)}
        ident = f"chatcmpl-standin-{self.calls}"
        if not payload.get("stream"):
            message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]}
            return await response.json(200, {"id": ident, "object": "chat.completion", "created": int(time.time()),
                                             "model": model, "usage": usage, "choices": [
                                                 {"index": 0, "message": message, "finish_reason": "tool_calls",
                                                  "logprobs": None}]})
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        pieces = [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]
        pieces += [{"index": 0, "function": {"arguments": arguments[i:i + 8]}} for i in range(0, len(arguments), 8)]
        deltas = [{"role": "assistant", "content": None}] + [{"tool_calls": [piece]} for piece in pieces]
        await self._send_chunks(ident, model, deltas, "tool_calls", usage if include_usage else None, response)

    async def _send_chunks(self, ident, model, deltas: list[dict], finish: str, usage, response: _Response) -> None:
        await response.start(200, {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
        for delta in deltas:
            if self.chunk_ms:
                await asyncio.sleep(self.chunk_ms / 1000)
            await response.send_part(_chunk(ident, model, delta))
        await response.send_part(_chunk(ident, model, {}, finish_reason=finish))
        if usage is not None:
            await response.send_part(_chunk(ident, model, {}, choices=False, with_usage=usage))
        await response.send_part(b"data: [DONE]\n\n", more=False)

    async def _embeddings(self, payload: dict, behaviour: str, response: _Response) -> None:
        texts = payload.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return await response.error(400, "input must be a string or a list of strings.", "invalid_request_error")
        match = _EMBED.search(behaviour)
        dims = int(match.group(1)) if match else 8
        data = [{"object": "embedding", "index": i, "embedding": embedding_of(text, dims)}
                for i, text in enumerate(texts)]
        tokens = sum(count_tokens(t) for t in texts)
        await response.json(200, {"object": "list", "data": data, "model": payload.get("model", EMBED_MODEL),
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _chunk(ident: str, model: str, delta: dict, finish_reason=None, choices=True, with_usage=None) -> bytes:
    data = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
            if choices else []}
    if with_usage is not None:
        data["usage"] = with_usage
    return f"data: {json.dumps(data)}\n\n".encode()


def tool_to_call(payload: dict, behaviour: str) -> dict | None:
    """The function the stand-in calls: with tools given, under the "tool-call" behaviour or when tool_choice is
    "required" or names one (that one); else None (it answers text)."""
    tools = [t.get("function") for t in payload.get("tools") or [] if isinstance(t, dict)]
    tools = [t for t in tools if isinstance(t, dict) and t.get("name")]
    choice = payload.get("tool_choice")
    if not tools or choice == "none" or not (behaviour == "tool-call" or choice == "required"
                                              or isinstance(choice, dict)):
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t["name"] == wanted), tools[0])
    return tools[0]


def embedding_of(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text`."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 + 0.001 * i for i in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _loads(body: bytes):
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _float(value, default):
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


class _Response:
    def __init__(self, send):
        self._send = send
        self.status: int | None = None
        self.cut = False

    async def start(self, status: int, headers: dict) -> None:
        self.status = status
        await self._send({"type": "http.response.start", "status": status,
                          "headers": [(k.encode(), str(v).encode()) for k, v in headers.items()]})

    async def send_part(self, data: bytes, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        await self.start(status, {"content-type": "application/json", "content-length": len(data), **(headers or {})})
        await self.send_part(data, more=False)

    async def error(self, status: int, message: str, kind: str, code: str | None = None,
                    headers: dict | None = None) -> None:
        await self.json(status, {"error": {"message": message, "type": kind, "param": None, "code": code}},
                        headers)

    async def cut_body(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        await self.start(status, {"content-type": "application/json", "content-length": len(data)})
        await self.send_part(data[: len(data) // 2])
        self.cut = True
        raise _Cut("stand-in: scripted cut body")


# -- serving ------------------------------------------------------------------------------------------------
@dataclass
class RunningStandIn:
    standin: StandIn
    host: str
    port: int

    @property
    def base_url(self) -> str:
        """What a provider's base URL is set to: http://host:port/v1."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class _QuietCuts(logging.Filter):
    """Scripted cuts are the stand-in doing its job: uvicorn need not log them as application errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Cut))


def uvicorn_config(standin: StandIn, **options):
    import uvicorn  # why: only the stand-in's server needs it, not the portal's import of this module

    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietCuts) for f in error_log.filters):
        error_log.addFilter(_QuietCuts())
    options = {"loop": "asyncio", "http": "h11", **options}
    return uvicorn.Config(standin.app, interface="asgi3", lifespan="off", access_log=False, proxy_headers=False,
                          log_level="warning", timeout_graceful_shutdown=1, **options)


@contextlib.contextmanager
def serve_in_thread(standin: StandIn, host: str = "127.0.0.1", port: int = 0):
    """Serve `standin` with uvicorn in a daemon thread on a free port (port=0); yields a RunningStandIn."""
    import uvicorn  # why: as above

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn_config(standin))
    server.install_signal_handlers = lambda: None  # not the main thread
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="llm-standin", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the stand-in upstream did not start")
        time.sleep(0.01)
    try:
        yield RunningStandIn(standin=standin, host=host, port=sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
