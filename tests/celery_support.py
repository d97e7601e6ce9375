"""A real Celery worker in a thread of the test process, against the real test Redis broker.

Celery's Django fixup assumes the worker owns its process: on worker_init / worker_process_init (which the
solo pool sends in the starting thread) it closes every database connection, which here are the test's own.
A worker in a thread of the test process must leave them alone, so the fixup's handlers are detached while
the worker runs. Use with `transactional_db` so the worker's own connection sees committed rows.
"""

from __future__ import annotations

import contextlib
import uuid

from celery.contrib.testing.worker import start_worker


@contextlib.contextmanager
def without_django_worker_fixup(app):
    from celery import signals
    from celery.fixups.django import DjangoFixup

    fixup = next(f for f in app._fixups if isinstance(f, DjangoFixup))
    init_was_connected = signals.worker_init.disconnect(dispatch_uid=fixup._worker_init_uid)
    process_init_was_connected = signals.worker_process_init.disconnect(fixup.worker_fixup.on_worker_process_init)
    try:
        yield
    finally:
        if init_was_connected:
            signals.worker_init.connect(fixup.on_worker_init, dispatch_uid=fixup._worker_init_uid)
        if process_init_was_connected:
            signals.worker_process_init.connect(fixup.worker_fixup.on_worker_process_init)


@contextlib.contextmanager
def running_worker(queues: list[str] | None = None, *, pool: str = "threads", concurrency: int = 2):
    """Run a real worker consuming `queues` (default: every portal queue) until the block ends."""
    from celery import signals

    from portal.celery import app

    hostname = f"test-{uuid.uuid4().hex[:8]}@pytest"

    def close_thread_connections(**kwargs):
        # Each task thread opened its own connections; close them so the test database can be dropped.
        from django.db import connections

        connections.close_all()

    signals.task_postrun.connect(close_thread_connections, weak=False)
    try:
        with _worker(app, hostname, queues, pool, concurrency) as worker:
            yield worker
    finally:
        signals.task_postrun.disconnect(close_thread_connections)


@contextlib.contextmanager
def _worker(app, hostname, queues, pool, concurrency):
    from portal.queues import ALL

    with without_django_worker_fixup(app), start_worker(
        app, pool=pool, concurrency=concurrency, perform_ping_check=False, loglevel="WARNING",
        hostname=hostname, queues=list(queues or ALL), shutdown_timeout=30,
    ) as worker:
        yield worker
