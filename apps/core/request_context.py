"""Who is acting and for which request, available to the audit helper and logs without passing it around.

Set by RequestContextMiddleware for web requests and by `acting_as()` in Celery tasks and commands.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestContext:
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    user: Any = None  # a User, or None for the system
    token: Any = None  # the ApiToken a machine authenticated with, if any
    ip: str | None = None


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("portal_request", default=None)


def current() -> RequestContext | None:
    return _current.get()


def activate(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def acting_as(user=None, *, token=None, request_id: str | None = None, ip: str | None = None):
    """Run a block (a task, a command) as a given actor so its audit events name them."""
    ctx = RequestContext(user=user, token=token, ip=ip)
    if request_id:
        ctx.request_id = request_id
    handle = activate(ctx)
    try:
        yield ctx
    finally:
        deactivate(handle)
