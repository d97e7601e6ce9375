"""Request id, actor context, access log, Prometheus metrics, `Vary: HX-Request` on every response, and the
refusal of URLs holding text PostgreSQL cannot store."""

import logging
import re
import time
import uuid

from django.core.exceptions import SuspiciousOperation
from django.http import JsonResponse
from django.utils.cache import patch_vary_headers

from portal import metrics
from portal.request_context import RequestContext, activate, deactivate
from portal.safe_input import InputRejected, reject_bad_params, text_problem

access_log = logging.getLogger("portal.access")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def client_ip(request) -> str | None:
    # Behind a proxy set USE_X_FORWARDED_FOR in the proxy config; here we trust REMOTE_ADDR only.
    return request.META.get("REMOTE_ADDR")


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        ctx = RequestContext(request_id=request_id, ip=client_ip(request))
        request.portal_context = ctx
        handle = activate(ctx)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            response["X-Request-ID"] = request_id
            route = getattr(getattr(request, "resolver_match", None), "view_name", None) or "unresolved"
            metrics.observe_request(request.method, route, response.status_code, elapsed)
            # Still inside the request context, so the access line carries this request's id.
            if not request.path.startswith(("/static/", "/healthz", "/readyz", "/metrics")):
                access_log.info(
                    "%s %s %s %.1fms", request.method, request.path, response.status_code, elapsed * 1000,
                    extra={"method": request.method, "path": request.path, "status": response.status_code,
                           "duration_ms": round(elapsed * 1000, 1)},
                )
        finally:
            deactivate(handle)
        return response


class ActorContextMiddleware:
    """After authentication: the session user becomes the actor of audit events written in this request.

    `request.user` is lazy; nothing is loaded unless an audit event is written. API token requests
    replace it with the token and its user in PortalAuth.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ctx = getattr(request, "portal_context", None)
        if ctx is not None and ctx.user is None:
            ctx.user = request.user
        return self.get_response(request)


class HtmxVaryMiddleware:
    """The same URL serves a page and its fragment, so caches must key on HX-Request (NetBox #12760)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        patch_vary_headers(response, ("HX-Request",))
        return response


class UnstorableInputMiddleware:
    """A NUL character in the path or a query parameter is refused before any view reads it (a filter such as
    `?feature=%00` would otherwise fail inside PostgreSQL): the API answers 422 naming the parameter, pages
    answer the portal's 400 page. JSON bodies are checked by the API's parser (portal/api.py)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            problem = text_problem(request.path)
            if problem:
                raise InputRejected(f"the URL path {problem}", field="path")
            reject_bad_params(request.GET)
        except InputRejected as exc:
            if request.path.startswith("/api/"):
                return JsonResponse(exc.body(), status=exc.status)
            raise SuspiciousOperation(exc.message)
        return self.get_response(request)
