"""Probes, metrics, request ids and structured logs, against the real test PostgreSQL and Redis and a
real Celery worker."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kombu import Exchange, Queue
from prometheus_client.parser import text_string_to_metric_families

from apps.core.heartbeat import HEARTBEAT_KEY
from apps.core.logging import JsonFormatter, RequestContextFilter
from apps.core.request_context import acting_as
from portal.celery import write_heartbeat
from tests.celery_support import without_django_worker_fixup

HEARTBEAT_PATTERN = HEARTBEAT_KEY.format(hostname="*")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_client(settings):
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture
def no_heartbeats(redis_client):
    """No worker is alive in the test Redis database, before and after the test."""

    def clear():
        for key in redis_client.scan_iter(match=HEARTBEAT_PATTERN):
            redis_client.delete(key)

    clear()
    yield redis_client
    clear()


# --- liveness and readiness -----------------------------------------------------------------------

def test_healthz_answers_200_json_and_is_never_cached(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_is_503_and_names_the_worker_check_when_no_worker_heartbeat_exists(client, no_heartbeats):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["worker"] == {"ok": False, "workers": []}
    assert body["checks"]["database"]["ok"] is True and body["checks"]["database"]["pgvector"]
    assert body["checks"]["redis"] == {"ok": True}


@pytest.mark.django_db
def test_readyz_is_200_once_a_worker_heartbeat_is_written(client, no_heartbeats, settings):
    write_heartbeat("celery@probe-host")
    key = HEARTBEAT_KEY.format(hostname="celery@probe-host")
    assert 0 < no_heartbeats.ttl(key) <= settings.PORTAL_WORKER_HEARTBEAT_TTL  # it expires if not renewed

    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["checks"]["worker"] == {"ok": True, "workers": ["celery@probe-host"]}


@pytest.mark.django_db
def test_readyz_counts_only_the_heartbeats_of_this_run(client, no_heartbeats, settings):
    """Issue #11: a heartbeat left by the previous `make run` (still inside its TTL) is not this run's worker."""
    settings.PORTAL_RUN_ID = "run-now"
    write_heartbeat("celery@old-run", "run-before")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == {"ok": False, "workers": [], "other_runs": ["celery@old-run"]}

    write_heartbeat("celery@this-run")  # the worker of this run carries PORTAL_RUN_ID
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["worker"]["workers"] == ["celery@this-run"]


@pytest.mark.django_db
def test_readyz_is_not_ready_while_the_database_lacks_pgvector(client, no_heartbeats):
    """A reachable database whose migrations have not run (no pgvector) cannot serve the portal yet."""
    from django.db import connection

    write_heartbeat("celery@probe-host")
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION vector CASCADE")  # inside the test's transaction: rolled back after
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False, "pgvector": None, "error": "pgvector extension missing: run migrations",
    }
    assert response.json()["checks"]["worker"]["ok"] is True


@pytest.mark.django_db
def test_readyz_names_redis_when_redis_is_unreachable(client, settings, tmp_path):
    settings.REDIS_URL = f"unix://{tmp_path / 'no-redis-here.sock'}"
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False and checks["redis"]["error"]
    assert checks["worker"]["ok"] is False
    assert checks["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_becomes_ready_when_a_real_celery_worker_starts(client, no_heartbeats):
    """A real worker (solo pool, in a thread) against the test broker writes the heartbeat /readyz reads."""
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    hostname = f"readyz-{uuid.uuid4().hex[:8]}@test"
    assert client.get("/readyz").status_code == 503
    # A private queue: the worker must not run messages other tests left in the portal's queues.
    queue = f"readyz-probe-{uuid.uuid4().hex[:8]}"
    body = None
    try:
        with without_django_worker_fixup(app), start_worker(
            app, pool="solo", perform_ping_check=False, loglevel="WARNING",
            hostname=hostname, queues=[queue], shutdown_timeout=30,
        ):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                response = client.get("/readyz")
                body = response.json()
                if response.status_code == 200:
                    break
                time.sleep(0.2)
            assert response.status_code == 200, body
            assert hostname in body["checks"]["worker"]["workers"]
    finally:
        no_heartbeats.delete(HEARTBEAT_KEY.format(hostname=hostname))
        with app.connection_for_write() as conn:  # the private queue's bindings, through kombu's own delete
            private = Queue(queue, Exchange(queue), routing_key=queue)(conn.default_channel)
            private.declare()
            private.delete()


# --- metrics --------------------------------------------------------------------------------------

def _requests_total(text: str, route: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name in ("portal_http_requests", "portal_http_requests_total"):
            return sum(s.value for s in family.samples
                       if s.name == "portal_http_requests_total" and s.labels["route"] == route
                       and s.labels["method"] == "GET" and s.labels["status"] == "200")
    return 0.0


def test_metrics_count_requests_by_route_method_and_status(client, settings):
    settings.METRICS_TOKEN = None
    before = _requests_total(client.get("/metrics").content.decode(), "healthz")
    client.get("/healthz")
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE portal_http_requests_total counter" in text
    assert "portal_http_request_duration_seconds_bucket" in text
    assert _requests_total(text, "healthz") == before + 2


def test_metrics_require_the_bearer_token_when_metrics_token_is_set(client, settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="scrape-token-0123456789").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789")
    assert response.status_code == 200
    assert "portal_http_requests_total" in response.content.decode()


def test_metrics_sum_every_gunicorn_process_when_prometheus_multiproc_dir_is_set(client, settings, tmp_path,
                                                                                monkeypatch):
    """Two processes count requests into the shared directory; /metrics (a third process) reports both."""
    settings.METRICS_TOKEN = None
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL,
    }
    code = "from apps.core import metrics; metrics.observe_request('GET', 'multiproc-probe', 200, 0.01)"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert _requests_total(response.content.decode(), "multiproc-probe") == 2


# --- request ids and Vary -------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/", "/no-such-page/", "/accounts/login/"])
def test_every_response_carries_a_request_id_and_varies_on_hx_request(client, settings, path):
    settings.METRICS_TOKEN = None
    response = client.get(path)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert "HX-Request" in [v.strip() for v in response["Vary"].split(",")]


@pytest.mark.django_db
def test_error_responses_carry_the_request_id_and_vary_too(client):
    response = client.post("/healthz", HTTP_X_REQUEST_ID="post-to-a-get-only-probe")  # 405
    assert response.status_code == 405
    assert response["X-Request-ID"] == "post-to-a-get-only-probe"
    assert "HX-Request" in response["Vary"]


def test_a_valid_incoming_request_id_is_echoed(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a9c2e.trace_01")
    assert response["X-Request-ID"] == "lb-7f3a9c2e.trace_01"


@pytest.mark.parametrize("incoming", ["short", "has spaces in it", "<script>alert(1)</script>", "x" * 65])
def test_an_invalid_incoming_request_id_is_replaced(client, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


# --- structured logs ------------------------------------------------------------------------------

def _json_handler(stream) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(JsonFormatter())
    return handler


@contextlib.contextmanager
def _access_log():
    """The access log's JSON lines written meanwhile (INFO and up), in a string stream."""
    stream = io.StringIO()
    logger = logging.getLogger("portal.access")
    handler = _json_handler(stream)
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def test_json_formatter_writes_one_json_object_per_record_with_the_request_id():
    stream = io.StringIO()
    logger = logging.getLogger("portal.tests.json")
    handler = _json_handler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with acting_as(request_id="req-0123456789ab"):
            logger.info("indexed %d chunks", 12, extra={"job_id": 7})
            try:
                raise ValueError("boom\nwith a second line")
            except ValueError:
                logger.exception("failed")
        logger.info("outside any request")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # a traceback stays inside its one line
    first, second, third = (json.loads(line) for line in lines)
    assert first["msg"] == "indexed 12 chunks" and first["request_id"] == "req-0123456789ab"
    assert first["level"] == "INFO" and first["logger"] == "portal.tests.json" and first["job_id"] == 7
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert second["request_id"] == "req-0123456789ab" and "ValueError: boom" in second["exc"]
    assert third["request_id"] == "-"


@pytest.mark.django_db
def test_the_access_log_line_is_json_with_the_request_id_of_the_response(client):
    with _access_log() as stream:
        response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="access-log-0001")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["request_id"] == response["X-Request-ID"] == "access-log-0001"
    assert (record["method"], record["path"], record["status"]) == ("GET", "/no-such-page/", 404)
    assert record["duration_ms"] >= 0


def test_probes_and_metrics_stay_out_of_the_access_log(client):
    with _access_log() as stream:
        client.get("/healthz")
    assert stream.getvalue() == ""


def test_the_settings_console_handler_uses_the_json_formatter_and_the_request_filter(settings):
    """Built from settings.LOGGING's own class paths, as dictConfig builds it in production (LOG_FORMAT=json)."""
    from django.utils.module_loading import import_string

    config = settings.LOGGING
    assert "request_context" in config["handlers"]["console"]["filters"]
    formatter = import_string(config["formatters"]["json"]["()"])()
    request_filter = import_string(config["filters"]["request_context"]["()"])()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(request_filter)
    handler.setFormatter(formatter)
    logger = logging.getLogger("portal.tests.configured")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with acting_as(request_id="configured-0001"):
            logger.warning("through the settings' classes")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "configured-0001" and line["msg"] == "through the settings' classes"


@pytest.mark.django_db
def test_djangos_error_response_log_line_carries_the_request_id_too(client, no_heartbeats):
    """django.request logs 4xx/5xx after RequestContextMiddleware returned; the id comes from the request."""
    stream = io.StringIO()
    logger = logging.getLogger("django.request")
    handler = _json_handler(stream)
    logger.addHandler(handler)
    try:
        response = client.get("/readyz", HTTP_X_REQUEST_ID="readyz-log-0001")
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 503
    (record,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert record["msg"] == "Service Unavailable: /readyz"
    assert record["request_id"] == "readyz-log-0001"
