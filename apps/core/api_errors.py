"""The API's one error body: every 4xx/5xx answer of /api/v1/ is an `ApiError`, built by `error_body`.

    {"detail": "What went wrong, in one sentence.",
     "errors": [{"field": "team", "message": "…", …}],    # one entry per field or row at fault ([] if none)
     "reason": "expired",                                 # only 401 (why the token was refused) and 429
     "guard": "use_case",                                 # only 423: which resolve guard refused
     "report": {…}}                                       # only a refused dataset import: its counts

Operations declare the statuses their own code answers with `errors(403, 404, …)`; the statuses the framework
answers for every operation (401, 400/413 on bodies, 422 on parameters, 404 on path parameters) are added to
the OpenAPI schema in one place (portal/api.py). A base-layer helper: apps import it, it imports no app.
"""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import ConfigDict

# What each status means in the schema's response descriptions.
STATUS_TEXT = {
    400: "Bad request: the body is not valid JSON, or its envelope is not the expected one",
    401: "Authentication required, or the token was refused (see `reason`)",
    403: "Forbidden: the caller (or the token's scope) may not do this; session writes need the CSRF header",
    404: "Not found, or not visible to the caller",
    405: "Method not allowed",
    409: "Conflict",
    413: "The body is too large",
    415: "Unsupported media type",
    422: "Invalid input: `errors` names each field at fault",
    423: "Locked: a resolve guard refuses to serve this prompt (see `guard`)",
    429: "Too many invalid API tokens from this address: bearer authentication is paused (see `Retry-After`)",
    503: "A check this answer depends on could not run",
}


class ErrorItem(Schema):
    """One problem: the field (or row, or template) at fault and what is wrong with it."""

    field: str | None = None
    message: str
    kind: str | None = None  # e.g. missing / extra / syntax (templates), a pydantic error type (parameters)
    variable: str | None = None
    line: int | None = None
    where: str | None = None  # body / query / path (parameters), a template or a YAML location


class ApiError(Schema):
    model_config = ConfigDict(json_schema_extra={"required": ["detail", "errors"]})  # error_body always sends both

    detail: str
    errors: list[ErrorItem] = []
    reason: str | None = None
    guard: str | None = None
    report: dict[str, Any] | None = None


def error_body(detail: str, errors: list[dict] | None = None, **extra: Any) -> dict:
    """The body of an error answer: `detail`, `errors` (always a list) and any of reason / guard / report."""
    unknown = set(extra) - {"reason", "guard", "report"}
    if unknown:
        raise TypeError(f"error_body() takes no {', '.join(sorted(unknown))}")
    body: dict[str, Any] = {"detail": detail, "errors": list(errors or [])}
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


class ApiProblem(Exception):
    """Raise to answer an error: `raise ApiProblem(409, "…", errors=[…], guard=…)` (portal/api.py renders it)."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.body = error_body(detail, errors, **extra)


def errors(*statuses: int) -> dict[int, type[ApiError]]:
    """`response={200: Out, **errors(403, 404)}`: the error statuses an operation's own code answers."""
    return dict.fromkeys(statuses, ApiError)


def field_errors(validation_errors: list[dict]) -> list[dict]:
    """django-ninja's (pydantic's) validation errors as `ErrorItem`s: field path, message, type and location."""
    items = []
    for err in validation_errors:
        loc = [str(part) for part in err.get("loc", ())]
        where = loc[0] if loc else None
        # loc is (source, [argument name,] field, …): drop the source and ninja's argument name for bodies
        path = loc[2:] if where == "body" and len(loc) > 2 else loc[1:]
        items.append({"field": ".".join(path) or None, "message": str(err.get("msg", "Invalid value.")),
                      "kind": str(err.get("type")) if err.get("type") else None, "where": where})
    return items
