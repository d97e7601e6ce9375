"""The one answer to an ASGI `lifespan` scope, for the portal's lean ASGI apps (the gateway, the stand-in)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


async def serve_lifespan(receive, send, on_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    """Complete start-up at once; at shutdown await `on_shutdown` (if any), then complete and return."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
