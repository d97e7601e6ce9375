"""An OpenAI-compatible stand-in server for tests and benchmarks: answers each chat call after `delay`
seconds, on 127.0.0.1, in a thread. Counts calls and the most calls it ever had in flight at once.

    with StandIn(delay=0.2) as server:
        provider = register_standin(server)  # Provider(kind=openai_compatible) + Model "standin-chat" + Price
        ...
    server.fail_next(3, status=429)  # the next 3 calls answer 429 (Retry-After: 0)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "standin-chat"


def default_responder(messages: list[dict]) -> str:
    """A deterministic answer: 'Answer: <the question's last line>'."""
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    lines = [line.strip() for line in str(last).splitlines() if line.strip()]
    question = lines[-1] if lines else ""
    if question.lower().startswith("question:"):
        question = question[9:].strip()
    return f"Answer: {question}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms on Linux), so every call took ~240 ms instead of `delay`. TCP_NODELAY keeps the stand-in honest.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "standin"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        stand_in = self.server.stand_in
        failure = stand_in._take_failure()
        with stand_in._lock:
            stand_in.calls += 1
            stand_in.in_flight += 1
            stand_in.max_in_flight = max(stand_in.max_in_flight, stand_in.in_flight)
        try:
            if failure:
                self._send(failure, {"error": {"message": "stand-in: injected failure", "type": "rate_limit"}},
                           {"Retry-After": "0"})
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": "not found"}})
                return
            time.sleep(stand_in.delay)
            messages = body.get("messages") or []
            text = stand_in.responder(messages)
            prompt_tokens = max(1, sum(len(str(m.get("content", ""))) for m in messages) // 4)
            completion_tokens = max(1, len(text) // 4)
            self._send(200, {
                "id": f"chatcmpl-standin-{stand_in.calls}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", MODEL),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            })
        finally:
            with stand_in._lock:
                stand_in.in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    stand_in: StandIn

    def handle_error(self, request, client_address):  # a client that went away (a killed worker) is normal here
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StandIn:
    def __init__(self, delay: float = 0.2, responder: Callable[[list[dict]], str] | None = None):
        self.delay = delay
        self.responder = responder or default_responder
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, count: int, status: int = 429) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def start(self) -> StandIn:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stand_in = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def register_standin(server: StandIn, *, name: str = "standin", model: str = MODEL, max_retries: int = 2):
    """A Provider (openai_compatible at the stand-in's URL), its chat Model and a Price. Returns the Model."""
    from decimal import Decimal

    from django.utils import timezone

    from apps.costs.models import Price
    from apps.llm.models import Model, ModelKind, Provider, ProviderKind

    provider, _ = Provider.objects.update_or_create(
        name=name, defaults={"kind": ProviderKind.OPENAI_COMPATIBLE, "base_url": server.base_url,
                             "timeout_seconds": 30.0, "max_retries": max_retries})
    chat, _ = Model.objects.update_or_create(
        name=model, defaults={"provider": provider, "remote_name": model, "kind": ModelKind.CHAT,
                              "context_window": 8192, "max_output_tokens": 1024})
    if not Price.objects.filter(model_name=model).exists():
        Price.objects.create(model_name=model, input_per_mtok=Decimal("1.00"), output_per_mtok=Decimal("2.00"),
                             valid_from=timezone.now() - timezone.timedelta(days=1))
    return chat
