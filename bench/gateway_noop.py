"""The no-op proxy paths the server choice is measured on (bench/gateway_servers.py), one per framework, and the
floor under the gateway (bench/gateway_fast.py).

Each reads the request body, parses the JSON, and answers a fixed chat completion: what the gateway's front
door does around an upstream call, without the call. `raw_app` is a bare ASGI callable (the shape
apps/gateway/asgi.py takes); `django_app` is a Django async view behind Django's ASGI handler.

`forward_app` is the floor of any proxy on this server and upstream client: it reads the body, parses it
(orjson), names the upstream's model, posts it with the gateway's upstream client (aiohttp, one pooled session
per event loop, as apps/llm/adapters/upstream_http.py) to `BENCH_UPSTREAM_URL`, parses the answer and sends it
back. No key, limits, budgets, guardrails or recording: what is left of the gateway's CPU above it is ours.
"""

from __future__ import annotations

import json
import os

from apps.core.asgi import serve_lifespan

ANSWER = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "noop",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def raw_app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    json.loads(body or b"{}")
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


class _Forwarder:
    """`forward_app` (see the module's docstring)."""

    def __init__(self):
        self.session = None
        self.url = ""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["method"] != "POST":  # the bench's "is it up" probe
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        status, body = await self.forward(b"".join(chunks))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def forward(self, raw: bytes) -> tuple[int, bytes]:
        import aiohttp  # why: only the server process that serves the floor needs it
        import orjson

        if self.session is None:
            self.url = os.environ["BENCH_UPSTREAM_URL"]
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0))
        data = orjson.loads(raw)
        data["model"] = os.environ.get("BENCH_UPSTREAM_MODEL", "standin-chat")
        async with self.session.post(self.url, data=orjson.dumps(data),
                                     headers={"content-type": "application/json"}) as response:
            status, answer = response.status, await response.read()
        return status, orjson.dumps(orjson.loads(answer))


forward_app = _Forwarder()


def _django_app():
    from django.conf import settings

    settings.configure(DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], MIDDLEWARE=[], SECRET_KEY="bench",
                       INSTALLED_APPS=[], USE_TZ=True)
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


async def _view(request):
    from django.http import HttpResponse

    json.loads(request.body or b"{}")
    return HttpResponse(ANSWER, content_type="application/json")


def _urls():
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    return [path("v1/chat/completions", csrf_exempt(_view))]


class _LazyDjango:
    """Configure Django only in the server process that serves it (importing this module must not)."""

    app = None

    async def __call__(self, scope, receive, send):
        if _LazyDjango.app is None:
            _LazyDjango.app = _django_app()
        await _LazyDjango.app(scope, receive, send)


django_app = _LazyDjango()


def __getattr__(name):
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)
