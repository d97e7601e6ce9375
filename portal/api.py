"""The REST API under /api/v1/ (django-ninja). Token auth for machines, session auth for the browser.

Apps contribute routers in their `api.py`; they are mounted here, in the one place that sees every app.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.http import Http404, HttpRequest
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.parser import Parser
from ninja.security import HttpBearer
from ninja.utils import check_csrf

from apps.accounts.auth import TokenRejected, TokenRejection, authenticate_token, parse_authorization
from apps.core.safe_input import InputRejected, loads_json, reject_bad_params


class PortalAuth(HttpBearer):
    """`Authorization: Bearer gp_…` for machines; the session (with CSRF on writes) for the browser."""

    def __call__(self, request: HttpRequest):
        raw = parse_authorization(request.headers.get("Authorization"))
        if raw is not None:
            token = _authenticate_throttled(request, raw or "")
            request.user = token.user
            ctx = getattr(request, "portal_context", None)
            if ctx is not None:
                ctx.user, ctx.token = token.user, token
            return token
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_active:
            if request.method not in ("GET", "HEAD", "OPTIONS") and check_csrf(request) is not None:
                raise PermissionDenied("CSRF check failed: send the X-CSRFToken header with session requests.")
            return user
        raise TokenRejected(TokenRejection("missing", "Authentication required: send 'Authorization: Bearer <token>'."))

    def authenticate(self, request, token):  # pragma: no cover - __call__ does the work
        return None


class TokensThrottled(Exception):
    def __init__(self, retry_after: int):
        super().__init__("throttled")
        self.retry_after = retry_after


def _authenticate_throttled(request, raw: str):
    """Bearer authentication, refused for a while from an address that sent too many invalid tokens."""
    from apps.accounts import services, throttle
    from apps.core.middleware import client_ip

    address = client_ip(request)
    block = throttle.token_block(address)
    if block is not None:
        raise TokensThrottled(block.retry_after)
    try:
        return authenticate_token(raw)
    except TokenRejected:
        counted = throttle.token_failure(address)
        if counted.newly_blocked:
            services.sign_in_blocked_record(scope="token-address", username=None, address=address,
                                            failures=counted.count, seconds=settings.API_TOKEN_LOCKOUT_SECONDS)
        raise


class PortalParser(Parser):
    """Every JSON body and form ninja parses is checked once, here, for text PostgreSQL cannot store (NUL,
    lone surrogates) and for nesting too deep to walk; the answer names the field (see portal/safe_input.py).
    Endpoints that read a batch themselves (usage ingest, OTLP) check each item instead, so one bad item
    does not cost the batch."""

    def parse_body(self, request):
        return loads_json(request.body)

    def parse_querydict(self, data, list_fields, request):
        reject_bad_params(data)
        return super().parse_querydict(data, list_fields, request)


api = NinjaAPI(
    title="GenAI Portal API",
    version="1",
    urls_namespace="api",
    auth=PortalAuth(),
    docs_url="/docs",
    parser=PortalParser(),
)


@api.exception_handler(InputRejected)
def _input_rejected(request, exc: InputRejected):
    return api.create_response(request, exc.body(), status=exc.status)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    # ninja wraps whatever the body parser raised into "Cannot parse request body": answer with our reason.
    if isinstance(exc.__cause__, InputRejected):
        return _input_rejected(request, exc.__cause__)
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return api.create_response(request, {"detail": f"The body is too large: send at most {limit:,} bytes."},
                               status=413)


@api.exception_handler(TokenRejected)
def _token_rejected(request, exc: TokenRejected):
    response = api.create_response(request, {"detail": exc.rejection.message, "reason": exc.rejection.reason},
                                   status=401)
    response["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{exc.rejection.reason}"'
    return response


@api.exception_handler(TokensThrottled)
def _throttled(request, exc: TokensThrottled):
    response = api.create_response(request, {
        "detail": f"Too many invalid API tokens from your address: bearer authentication from it is paused for "
                  f"{exc.retry_after} s. Check the token your client sends.",
        "reason": "throttled"}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    return api.create_response(request, {"detail": str(exc) or "You may not do this."}, status=403)


@api.exception_handler(Http404)
def _not_found(request, exc):
    return api.create_response(request, {"detail": str(exc) or "Not found."}, status=404)


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    if hasattr(exc, "error_dict"):
        errors = [{"field": field, "message": " ".join(m for e in errs for m in e.messages)}
                  for field, errs in exc.error_dict.items()]
    else:
        errors = [{"field": None, "message": message} for message in exc.messages]
    return api.create_response(request, {"detail": "Invalid input.", "errors": errors}, status=422)


def actor_of(request):
    """The actor for permission checks: the token for machines, else the session user."""
    return request.auth


from apps.accounts.api import router as accounts_router  # noqa: E402
from apps.audit.api import router as audit_router  # noqa: E402
from apps.costs.api import router as costs_router  # noqa: E402
from apps.evals.api import router as evals_router  # noqa: E402
from apps.llm.api import router as llm_router  # noqa: E402
from apps.prompts.api import router as prompts_router  # noqa: E402
from apps.rag.api import router as rag_router  # noqa: E402
from apps.reviews.api import router as reviews_router  # noqa: E402

api.add_router("/accounts", accounts_router)
api.add_router("/audit", audit_router)
api.add_router("", costs_router)  # /api/v1/usage, /api/v1/otlp/v1/traces, /api/v1/usage/summary
api.add_router("/evals", evals_router)
api.add_router("", "apps.evals.api.feedback_router")  # /api/v1/feedback (evals: online feedback)
api.add_router("/llm", llm_router)
api.add_router("/prompts", prompts_router)
api.add_router("/rag", rag_router)
api.add_router("/use-cases", reviews_router)
