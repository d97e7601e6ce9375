"""The gateway's application on granian's own interface (RSGI), for measuring what the interface is worth: an
adapter that hands the ASGI application the same messages (ADR 0129, "what is left").

    .venv/bin/python -m bench.gateway_fast --rates 200,500 --workers 2 --no-floor --contender \
        '{"name": "rsgi_2w", "workers": 2, "args": ["--interface", "rsgi"], "app": "bench.gateway_rsgi:application"}'

One await for the body (`await protocol()`), one call for a whole answer (`response_bytes`), a stream transport for
SSE. A bench contender, not the served gateway: a request body without a Content-Length is read whole here before
the gateway's size check, a client gone mid-stream is not mapped to the gateway's ConnectionResetError, and the
process's database connections are not closed at shutdown.
"""

from __future__ import annotations

from portal.gateway_asgi import application as gateway


class _Channels:
    __slots__ = ("protocol", "read", "status", "headers", "stream")

    def __init__(self, protocol):
        self.protocol, self.read, self.status, self.headers, self.stream = protocol, False, 200, [], None

    async def receive(self) -> dict:
        if not self.read:
            self.read = True
            return {"type": "http.request", "body": await self.protocol(), "more_body": False}
        await self.protocol.client_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]]
            return
        body = message.get("body", b"")
        if self.stream is None:
            if not message.get("more_body"):
                self.protocol.response_bytes(self.status, self.headers, body)
                return
            self.stream = self.protocol.response_stream(self.status, self.headers)
        if body:
            await self.stream.send_bytes(body)


class _Rsgi:
    def __rsgi_init__(self, loop) -> None:
        pass

    def __rsgi_del__(self, loop) -> None:
        pass

    async def __rsgi__(self, scope, protocol) -> None:
        if scope.proto != "http":
            return
        channels = _Channels(protocol)
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in scope.headers.items()]
        await gateway({"type": "http", "method": scope.method, "path": scope.path, "headers": headers},
                      channels.receive, channels.send)


application = _Rsgi()
