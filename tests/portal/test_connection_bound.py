"""Issue #12: concurrent clients of the dev server (the real runserver `make run` starts) must not pile up
PostgreSQL connections. Each process borrows from a pool of DATABASE_POOL_MAX_SIZE connections, so idle
keep-alive threads hold none and the count stays under the pool size while /readyz stays green.

The full 2-minute run and the 10-minute soak against `make run` are `python -m bench.web_connections`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from bench.common import stop_process
from bench.web_connections import connection_counter, load

BASE_DIR = Path(__file__).resolve().parents[2]
POOL_SIZE = 4
CLIENTS = 50
SECONDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(application_name: str) -> str:
    db = settings.DATABASES["default"]
    auth = f"{db['USER']}:{db['PASSWORD']}@" if db["USER"] else ""
    host = f"host={db['HOST']}&" if db["HOST"].startswith("/") else ""
    netloc = "" if host else f"{db['HOST']}:{db['PORT'] or 5432}"
    return f"postgresql://{auth}{netloc}/{db['NAME']}?{host}application_name={application_name}"


@pytest.fixture
def runserver(db):
    """`manage.py runserver` with the dev settings (as `make run` starts it) on the test database."""
    from portal.celery import write_heartbeat

    app_name = f"bound-{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4().hex
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"PORTAL_TEST_SUFFIX", "PORTAL_TEST_REDIS_DB"}}
    env.update(DJANGO_SETTINGS_MODULE="portal.settings.dev", DATABASE_URL=database_url(app_name),
               REDIS_URL=settings.REDIS_URL, DATABASE_POOL_MAX_SIZE=str(POOL_SIZE), DEBUG="false",
               LOG_LEVEL="WARNING", PORTAL_RUN_ID=run_id)
    log_dir = Path(settings.MEDIA_ROOT).parent / f"runserver-{app_name}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / "runserver.log").open("wb")
    process = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload",
                                "--skip-checks"], cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    # No Celery worker here: a stand-in heartbeat for this run keeps /readyz about the database and Redis.
    stop = threading.Event()

    def heartbeat():
        while not stop.is_set():
            write_heartbeat("bound-test@local", run_id)
            stop.wait(2)

    beater = threading.Thread(target=heartbeat, daemon=True)
    beater.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((log_dir / "runserver.log").read_text()[-3000:])
                time.sleep(0.2)
        yield url, f"application_name = '{app_name}'", log_dir / "runserver.log"
    finally:
        stop.set()
        stop_process(process, 20, group=True)
        log.close()
        shutil.rmtree(log_dir, ignore_errors=True)


def test_fifty_clients_of_the_dev_server_stay_within_the_connection_pool(runserver):
    url, is_web, log = runserver
    count = connection_counter(database_url("bound-probe"), is_web)
    try:
        result = load(url, clients=CLIENTS, seconds=SECONDS, paths=["/readyz", "/accounts/login/", "/healthz"],
                      count_connections=count)
        idle_after = count()
    finally:
        count.close()
    assert result.requests > CLIENTS, log.read_text()[-3000:]
    assert result.samples > 5
    assert result.server_errors == 0, (result.as_dict(), log.read_text()[-3000:])
    assert result.errors == 0, result.as_dict()
    assert result.readyz_failures == [], result.as_dict()
    assert 1 <= result.peak_connections <= POOL_SIZE, result.as_dict()
    assert idle_after <= POOL_SIZE


def test_without_a_pool_connections_are_not_kept_past_a_request(monkeypatch):
    """DATABASE_POOL_MAX_SIZE=0 (pgbouncer): no persistent connections unless asked for."""
    from portal.settings.base import connection_limits

    monkeypatch.setenv("DATABASE_POOL_MAX_SIZE", "0")
    monkeypatch.delenv("DATABASE_CONN_MAX_AGE", raising=False)
    assert connection_limits({})["CONN_MAX_AGE"] == 0
    assert "pool" not in connection_limits({})["OPTIONS"]
    monkeypatch.setenv("DATABASE_POOL_MAX_SIZE", "6")
    limits = connection_limits({"sslmode": "require"})
    assert limits["CONN_MAX_AGE"] == 0
    assert limits["OPTIONS"]["sslmode"] == "require"
    assert limits["OPTIONS"]["pool"]["max_size"] == 6
