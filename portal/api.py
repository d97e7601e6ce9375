"""The REST API under /api/v1/ (django-ninja). Token auth for machines, session auth for the browser.

Apps contribute routers in their `api.py`; they are mounted here, in the one place that sees every app.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import URLPattern
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer
from ninja.utils import check_csrf

from apps.accounts import services, throttle
from apps.accounts.auth import TokenRejected, TokenRejection, authenticate_token, parse_authorization
from apps.core.api_errors import STATUS_TEXT, ApiError, ApiProblem, error_body, field_errors
from apps.core.middleware import client_ip
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
    lone surrogates) and for nesting too deep to walk; the answer names the field (see apps/core/safe_input.py).
    Endpoints that read a batch themselves (usage ingest, OTLP) check each item instead, so one bad item
    does not cost the batch."""

    def parse_body(self, request):
        return loads_json(request.body)

    def parse_querydict(self, data, list_fields, request):
        reject_bad_params(data)
        return super().parse_querydict(data, list_fields, request)


class PortalAPI(NinjaAPI):
    def get_openapi_schema(self, *args, **kwargs):
        return declare_framework_errors(super().get_openapi_schema(*args, **kwargs))

    @property
    def urls(self):
        patterns, app_name, namespace = super().urls
        return [_json_405(p) if isinstance(p, URLPattern) else p for p in patterns], app_name, namespace


def _json_405(pattern: URLPattern) -> URLPattern:
    """A method a path does not serve: the JSON error body, not ninja's plain-text 405."""
    view = pattern.callback

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and "json" not in response.get("Content-Type", ""):
            return method_not_allowed({m.strip() for m in response.get("Allow", "").split(",") if m.strip()})
        return response

    return URLPattern(pattern.pattern, wrapped, pattern.default_args, pattern.name)


_ERROR_REF = {"$ref": "#/components/schemas/ApiError"}
_UNSAFE = {"post", "put", "patch", "delete"}


def declare_framework_errors(schema: dict) -> dict:
    """Add to each operation the error statuses the framework answers for it, all with the one ApiError body:
    401 (every operation needs a credential), 429 (bearer auth paused after too many invalid tokens), 403 on writes (session callers without the CSRF header), 422 when
    it takes parameters or a body (validation), 400 and 413 when it takes a body (bad JSON, too large) and 404
    when its path has parameters (a value the URL pattern does not accept)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, sub in ApiError.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs").items():
        components.setdefault(name, sub)
    components.setdefault("ApiError", ApiError.model_json_schema(ref_template="#/components/schemas/{model}"))
    components["ApiError"].pop("$defs", None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {401, 429}
            if method in _UNSAFE:
                statuses.add(403)
            if operation.get("parameters") or operation.get("requestBody"):
                statuses.add(422)
            if operation.get("requestBody"):
                statuses |= {400, 413}
            if "{" in path:
                statuses.add(404)
            responses = operation["responses"] = {str(k): v for k, v in operation.get("responses", {}).items()}
            for status in sorted(statuses):
                responses.setdefault(str(status), {"description": STATUS_TEXT[status],
                                                   "content": {"application/json": {"schema": _ERROR_REF}}})
            for status, response in responses.items():  # ninja describes a declared error as "Not Found" etc.
                if status.isdigit() and int(status) in STATUS_TEXT:
                    response["description"] = STATUS_TEXT[int(status)]
    return schema


api = PortalAPI(
    title="GenAI Portal API",
    version="1",
    urls_namespace="api",
    auth=PortalAuth(),
    docs_url="/docs",
    parser=PortalParser(),
)


def _error(request, status: int, detail: str, errors: list[dict] | None = None, **extra):
    return api.create_response(request, error_body(detail, errors, **extra), status=status)


@api.exception_handler(ApiProblem)
def _problem(request, exc: ApiProblem):
    return api.create_response(request, exc.body, status=exc.status)


@api.exception_handler(InputRejected)
def _input_rejected(request, exc: InputRejected):
    return api.create_response(request, exc.body(), status=exc.status)


@api.exception_handler(TokenRejected)
def _token_rejected(request, exc: TokenRejected):
    response = _error(request, 401, exc.rejection.message, reason=exc.rejection.reason)
    response["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{exc.rejection.reason}"'
    return response


@api.exception_handler(TokensThrottled)
def _throttled(request, exc: TokensThrottled):
    response = _error(request, 429, f"Too many invalid API tokens from your address: bearer authentication from "
                                    f"it is paused for {exc.retry_after} s. Check the token your client sends.",
                      reason="throttled")
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    return _error(request, 403, str(exc) or "You may not do this.")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, 404, str(exc) or "Not found.")


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    if hasattr(exc, "error_dict"):
        errors = [{"field": field, "message": " ".join(m for e in errs for m in e.messages)}
                  for field, errs in exc.error_dict.items()]
    else:
        errors = [{"field": None, "message": message} for message in exc.messages]
    return _error(request, 422, "Invalid input.", errors)


@api.exception_handler(NinjaValidationError)
def _invalid_parameters(request, exc: NinjaValidationError):
    """django-ninja's own validation of parameters and bodies: the same body as every other 422."""
    return _error(request, 422, "Invalid input.", field_errors(exc.errors))


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    """django-ninja's HttpError (400 for a body that is not JSON, its own 401/403)."""
    # ninja wraps whatever the body parser raised into "Cannot parse request body": answer with our reason.
    if isinstance(exc.__cause__, InputRejected):
        return _input_rejected(request, exc.__cause__)
    detail = str(exc)
    if exc.status_code == 400 and detail.startswith("Cannot parse request body"):
        detail = "The body is not valid JSON."
    return _error(request, exc.status_code, detail)


@api.exception_handler(RequestDataTooBig)
def _too_large(request, exc):
    return _error(request, 413, f"The body is too large: send at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes.")


def method_not_allowed(allowed: set[str]) -> JsonResponse:
    response = JsonResponse(error_body(f"Method not allowed: use {', '.join(sorted(allowed))}."), status=405)
    response["Allow"] = ", ".join(sorted(allowed))
    return response


def actor_of(request):
    """The actor for permission checks: the token for machines, else the session user."""
    return request.auth


from apps.accounts.api import router as accounts_router  # noqa: E402
from apps.audit.api import router as audit_router  # noqa: E402
from apps.costs.api import router as costs_router  # noqa: E402
from apps.evals.api import router as evals_router  # noqa: E402
from apps.experiments.api import router as experiments_router  # noqa: E402
from apps.incidents.api import router as incidents_router  # noqa: E402
from apps.llm.api import router as llm_router  # noqa: E402
from apps.prompts.api import router as prompts_router  # noqa: E402
from apps.rag.api import router as rag_router  # noqa: E402
from apps.redteam.api import router as redteam_router  # noqa: E402
from apps.reviews.api import router as reviews_router  # noqa: E402
from apps.scorecards.api import router as scorecards_router  # noqa: E402
from apps.slos.api import router as slos_router  # noqa: E402

api.add_router("/accounts", accounts_router)
api.add_router("/audit", audit_router)
api.add_router("", costs_router)  # /api/v1/usage, /api/v1/otlp/v1/traces, /api/v1/usage/summary
api.add_router("/evals", evals_router)
api.add_router("", "apps.evals.api.feedback_router")  # /api/v1/feedback (evals: online feedback)
api.add_router("/llm", llm_router)
api.add_router("/prompts", prompts_router)
api.add_router("/rag", rag_router)
api.add_router("/use-cases", reviews_router)
api.add_router("/use-cases", scorecards_router)  # /api/v1/use-cases/{id}/scorecard
api.add_router("/incidents", incidents_router)
api.add_router("/incidents", "apps.incidents.followup_api.router")  # the review, runbooks, Art. 73
api.add_router("", slos_router)  # /api/v1/slos, /api/v1/use-cases/{id}/slos
api.add_router("/experiments", experiments_router)
api.add_router("/redteam", redteam_router)

