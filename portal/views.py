"""Home page, health probes, metrics and error pages."""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core import metrics
from apps.core import redis as core_redis
from apps.core.api_errors import error_body
from apps.core.heartbeat import HEARTBEAT_KEY, HEARTBEAT_PATTERN
from portal import warmup
from portal.home import home_summary

log = logging.getLogger(__name__)


@login_required
def home(request):
    return render(request, "portal/home.html", {"summary": home_summary(actor=request.user)})


@never_cache
@require_GET
def healthz(request):
    """Liveness: the process answers. Checks nothing else, so a database outage never restarts the web."""
    return JsonResponse({"status": "ok"})


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - report any failure as not ready
        return {"ok": False, "error": type(exc).__name__}
    if row is None:  # reachable, but migrations have not run: retrieval and embeddings would fail
        return {"ok": False, "pgvector": None, "error": "pgvector extension missing: run migrations"}
    return {"ok": True, "pgvector": row[0]}


def _redis_client():
    """The pooled client with a short read timeout: a probe answers within seconds, even with Redis hung."""
    return core_redis.client(socket_timeout=2)


def _check_redis() -> dict:
    try:
        return {"ok": bool(_redis_client().ping())}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__}


def _check_worker() -> dict:
    """A fresh heartbeat of this run's worker (PORTAL_RUN_ID, when set): a heartbeat left by a previous
    `make run` (still inside its TTL) does not count; it is listed under `other_runs`."""
    try:
        client = _redis_client()
        keys = sorted(client.scan_iter(match=HEARTBEAT_PATTERN, count=100))
        values = client.mget(keys) if keys else []
        run_id = settings.PORTAL_RUN_ID
        workers, others = [], []
        for key, value in zip(keys, values, strict=True):
            if value is None:  # expired between SCAN and MGET
                continue
            name = key.decode().split(HEARTBEAT_KEY.format(hostname=""), 1)[-1]
            (workers if not run_id or value.decode() == run_id else others).append(name)
        check = {"ok": bool(workers), "workers": workers}
        if others:
            check["other_runs"] = others
        return check
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__}


@never_cache
@require_GET
def readyz(request):
    """Readiness: database (with pgvector), Redis and at least one live Celery worker, each named."""
    checks = {"database": _check_database(), "redis": _check_redis(), "worker": _check_worker()}
    models = warmup.readiness()
    if models is not None:  # PORTAL_WARM_MODELS: not ready until this process has loaded the embedding model
        checks["models"] = models
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


@never_cache
@require_GET
def metrics_view(request):
    if not metrics.authorized(request.headers.get("Authorization", "")):
        return HttpResponse("metrics require the METRICS_TOKEN bearer token\n", status=401, content_type="text/plain")
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)


def _request_id(request) -> str:
    return getattr(request, "request_id", "")


def _api_error(request, status: int, detail: str) -> JsonResponse | None:
    """Under /api/ an error is the API's JSON error body (apps/core/api_errors.py), not an HTML page."""
    if not request.path.startswith("/api/"):
        return None
    return JsonResponse(error_body(detail), status=status)


def error_400(request, exception=None):
    if api := _api_error(request, 400, "Bad request."):
        return api
    return render(request, "errors/400.html", {"request_id": _request_id(request)}, status=400)


def error_403(request, exception=None):
    message = str(exception) if exception and str(exception) else "You do not have permission to do this."
    if api := _api_error(request, 403, message):
        return api
    return render(request, "errors/403.html", {"message": message, "request_id": _request_id(request)}, status=403)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: the portal's 403 page instead of Django's bare one (Django already logs the reason)."""
    message = "This form has expired or was sent from another site. Reload the page and try again."
    return render(request, "errors/403.html", {"message": message, "request_id": _request_id(request)}, status=403)


def error_404(request, exception=None):
    if api := _api_error(request, 404, "Not found: no API operation answers this path."):
        return api
    return render(request, "errors/404.html", {"request_id": _request_id(request)}, status=404)


def error_500(request):
    if api := _api_error(request, 500, f"Server error (request id {_request_id(request)})."):
        return api
    # No RequestContext: its context processors (user, navigation) may query the database that just failed.
    body = loader.render_to_string("errors/500.html", {"request_id": _request_id(request)})
    return HttpResponse(body, status=500)
