"""A real gateway server for the SDK tests: uvicorn on its C parser and uvloop (as `make run` serves it, ADR 0134)
in a thread on a free port, serving apps.gateway's app.

The tests that use it take `transactional_db` (through `gateway_url`), so the rows they create are committed
and the server's own connections see them. Recorded calls wait on the Redis stream until `drain()` writes them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from apps.costs.selectors import capped_budgets_reset
from apps.gateway import recording
from apps.gateway.asgi import Gateway
from apps.gateway.services import gateway_key_create


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app):
    """Serve a gateway app in a thread on a free port, with the server options `make run` uses; yields the SDK's
    base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning",
                                          access_log=False, loop="uvloop", http="httptools"))
    thread = threading.Thread(target=server.run, name="gateway-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def gateway_server(django_db_setup, django_db_blocker):
    """(base_url, app): one server for the session; each test's rows are committed (transactional_db)."""
    app = Gateway()
    server = serving(app)
    base_url = server.__enter__()
    try:
        yield base_url, app
    finally:
        with django_db_blocker.unblock():  # the server's lifespan shutdown closes its database connection
            server.__exit__(None, None, None)
    # The server's database work ran on asgiref's one sync thread: close its connection before the test
    # database is dropped.
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def gateway_url(gateway_server, transactional_db):
    """The base URL for the SDK (`OpenAI(base_url=gateway_url, api_key=...)`); the stream starts empty."""
    from apps.core import redis as portal_redis

    client = portal_redis.client()
    client.delete(recording.stream_key())
    for kind in ("budget", "lim"):
        # Budget counters and holds, and key limit windows, of an earlier test's or run's (emptied) rows: a new
        # test database hands out the same key ids again.
        for name in client.scan_iter(match=portal_redis.key("gateway", kind, "*"), count=1000):
            client.delete(name)
    capped_budgets_reset()
    base_url, app = gateway_server
    app.admitted.clear()
    yield base_url


@pytest.fixture
def local_catalog(transactional_db):
    """The offline models and the demo's aliases on them: "chat" (local-extractive), "embeddings" (MiniLM)."""
    from apps.llm.aliases import aliases_seed_local
    from apps.llm.services import catalog_seed_local

    catalog_seed_local()
    aliases_seed_local()


@pytest.fixture
def gateway_key(team, owner):
    """gateway_key(**options) -> (GatewayKey, secret) for the team, created by its owner."""

    def make(**options):
        options.setdefault("name", "support-bot")
        options.setdefault("feature", "support-bot")
        issued = gateway_key_create(team=team, actor=owner, **options)
        return issued.key, issued.secret

    return make


@pytest.fixture
def drain():
    """drain() -> how many recorded calls the writer put on the ledger (what `gateway_recorder` does)."""
    return lambda: recording.drain_all("test-writer")
