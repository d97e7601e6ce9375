"""The async path's HTTP to an OpenAI-compatible upstream (the gateway's hot path, ADR 0077).

One `Upstream` per (provider settings, event loop): prebuilt headers and URLs, and a pooled client, aiohttp's
ClientSession (measured at about a third of httpx.AsyncClient's CPU per request here). Tests that inject an
`httpx.AsyncClient` (`use_async_http_client`, a MockTransport) are served through it instead: both clients
answer the same three things, (status, headers, body) or a stream of lines, and their exceptions are mapped by
the adapter's one `translate`.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator

import aiohttp
import httpx

from apps.llm.models import Provider, ProviderKind

OPENAI_BASE_URL = "https://api.openai.com/v1"
POOL_SIZE = 1000  # what the official SDK's pool allows


class Upstream:
    __slots__ = ("base", "headers", "http", "session", "timeout", "azure_query", "__weakref__")

    def __init__(self, provider: Provider, secret: str, http: httpx.AsyncClient | None = None):
        self.timeout = provider.timeout_seconds
        self.http = http  # an injected httpx client (tests); else this loop's aiohttp session
        self.session = None
        if http is None:
            connector = aiohttp.TCPConnector(limit=POOL_SIZE, limit_per_host=0)
            self.session = aiohttp.ClientSession(connector=connector)
            # Dropped with its event loop (a test's, a finished worker's): its pool is closed first, so the
            # session is not reported as "Unclosed client session".
            weakref.finalize(self, _close_pool, connector)
        # x-stainless-retry-count: what the official SDK sends with max_retries=0 (servers and proxies read it)
        self.headers = {"content-type": "application/json", "accept": "application/json",
                        "x-stainless-retry-count": "0"}
        if provider.kind == ProviderKind.AZURE_OPENAI:
            self.base = f"{provider.base_url.rstrip('/')}/openai/deployments/"
            self.azure_query = f"?api-version={provider.api_version}"
            self.headers["api-key"] = secret
        else:
            self.base = f"{(provider.base_url or OPENAI_BASE_URL).rstrip('/')}/"
            self.azure_query = ""
            self.headers["authorization"] = f"Bearer {secret}"

    def url(self, path: str, remote_name: str) -> str:
        if self.azure_query:  # Azure names the deployment in the path
            return f"{self.base}{remote_name}/{path}{self.azure_query}"
        return self.base + path

    def _seconds(self, timeout: float | None) -> float:
        """Per phase (connect, each read), like the SDK's httpx timeout: the provider's, or what is left of an
        alias's deadline."""
        return self.timeout if timeout is None else max(0.05, timeout)

    def _aiohttp_timeout(self, timeout: float | None) -> aiohttp.ClientTimeout:
        seconds = self._seconds(timeout)
        return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)

    async def post(self, url: str, body: bytes, timeout: float | None) -> tuple[int, object, bytes]:
        """(status, headers, body) of one POST."""
        if self.http is not None:
            response = await self.http.post(url, content=body, headers=self.headers, timeout=self._seconds(timeout))
            return response.status_code, response.headers, response.content
        async with self.session.post(url, data=body, headers=self.headers,
                                     timeout=self._aiohttp_timeout(timeout)) as response:
            return response.status, response.headers, await response.read()

    async def open_stream(self, url: str, body: bytes, timeout: float | None) -> Answer:
        """A POST whose answer is read as it comes (Server-Sent Events)."""
        if self.http is not None:
            sent = self.http.build_request("POST", url, content=body, headers=self.headers,
                                           timeout=self._seconds(timeout))
            response = await self.http.send(sent, stream=True)
            return Answer(response.status_code, response.headers, _HttpxBody(response))
        response = await self.session.post(url, data=body, headers=self.headers,
                                           timeout=self._aiohttp_timeout(timeout))
        return Answer(response.status, response.headers, _AiohttpBody(response))


def _close_pool(connector: aiohttp.TCPConnector) -> None:
    with contextlib.suppress(Exception):  # nothing left to release
        connector._close()  # the synchronous part of close(): its loop may be closed already


class Answer:
    """A streamed answer on either client: status, headers, its lines as they come, or its whole body."""

    __slots__ = ("status", "headers", "_body")

    def __init__(self, status: int, headers, body):
        self.status, self.headers, self._body = status, headers, body

    def lines(self) -> AsyncIterator[str]:
        return self._body.lines()

    async def read(self) -> bytes:
        return await self._body.read()

    async def close(self) -> None:
        await self._body.close()


class _HttpxBody:
    def __init__(self, response: httpx.Response):
        self.response = response

    def lines(self) -> AsyncIterator[str]:
        return self.response.aiter_lines()

    async def read(self) -> bytes:
        return await self.response.aread()

    async def close(self) -> None:
        await self.response.aclose()


class _AiohttpBody:
    def __init__(self, response: aiohttp.ClientResponse):
        self.response = response

    async def lines(self) -> AsyncIterator[str]:
        pending = b""  # split here: aiohttp's readline refuses lines over 64 KiB
        async for piece in self.response.content.iter_any():
            pending += piece
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.rstrip(b"\r").decode()
        if pending:
            yield pending.rstrip(b"\r").decode()

    async def read(self) -> bytes:
        return await self.response.read()

    async def close(self) -> None:
        self.response.release()
