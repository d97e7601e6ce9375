"""The gateway on granian's own interface, RSGI (ADR 0132): how `make run` and compose serve it.

The gateway is written once, as an ASGI application (asgi.py; uvicorn and the tests' servers call it so). Under
granian's RSGI the same `Gateway` answers through `serve()`: the body arrives in one await (`await protocol()`),
a whole answer leaves in one call (`response_bytes`), a stream through granian's stream transport. That spares
granian's ASGI message hand-offs, one cross-thread wake-up per message: 0.2–0.3 ms of added p50 at 500 req/s on
two cores (BENCHMARKS.md "rsgi").

What ASGI gives the gateway is kept: a body without a Content-Length arrives in chunks, so the gateway's size
limit stops it early; a client gone mid-answer is a ConnectionResetError (the stream is closed and recorded as
cancelled); at shutdown the worker's database connection is closed, as ASGI's lifespan does.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import SyncToAsync
from django.db import close_old_connections
from granian.rsgi import ProtocolClosed, ProtocolError

_GONE = (ProtocolClosed, ProtocolError)  # granian's "the client is gone" (both RuntimeErrors)


class Exchange:
    """One request's ASGI `receive` and `send`, spoken to an RSGI protocol object."""

    __slots__ = ("protocol", "chunks", "done", "status", "headers", "stream")

    def __init__(self, protocol, chunked: bool):
        self.protocol = protocol
        self.chunks = protocol.__aiter__() if chunked else None  # no Content-Length: read as it comes
        self.done = False  # the whole body was handed over
        self.status, self.headers, self.stream = 200, [], None

    async def receive(self) -> dict:
        if self.done:  # the gateway asks again only to learn of a disconnect
            await self.protocol.client_disconnect()
            return {"type": "http.disconnect"}
        try:
            if self.chunks is None:
                self.done = True
                return {"type": "http.request", "body": await self.protocol(), "more_body": False}
            try:
                return {"type": "http.request", "body": await self.chunks.__anext__(), "more_body": True}
            except StopAsyncIteration:
                self.done = True
                return {"type": "http.request", "body": b"", "more_body": False}
        except _GONE:
            self.done = True
            return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in message["headers"]]
            return
        body = message.get("body", b"")
        try:
            if self.stream is None:
                if not message.get("more_body"):
                    self.protocol.response_bytes(self.status, self.headers, body)
                    return
                self.stream = self.protocol.response_stream(self.status, self.headers)
            if body:
                await self.stream.send_bytes(body)
        except _GONE as exc:
            raise ConnectionResetError("the client closed the connection") from exc


async def serve(app, scope, protocol) -> None:
    """Answer one RSGI call with the ASGI application `app` (HTTP only: the gateway serves no websockets)."""
    if scope.proto != "http":
        return
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in scope.headers.items()]
    exchange = Exchange(protocol, chunked="content-length" not in scope.headers)
    await app({"type": "http", "method": scope.method, "path": scope.path, "headers": headers,
               "query_string": scope.query_string.encode("latin-1")}, exchange.receive, exchange.send)


def shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """RSGI's end of a worker (`__rsgi_del__`): close the database connection its sync work opened, on the one
    thread asgiref ran that work on (granian calls this after its loop stopped; its embedded server, the tests',
    from inside the loop: a plain blocking call suits both)."""
    SyncToAsync.single_thread_executor.submit(close_old_connections).result(timeout=10)
