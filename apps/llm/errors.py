"""What can go wrong on a model call, in words a user can read.

Adapters translate SDK and transport failures into these; the call path retries the retryable ones
and records every failure on the usage ledger under `error_type` (the class name).
"""

from __future__ import annotations

import re

# Anything shaped like a provider key, in case a provider echoes one back in an error body.
_KEY_LIKE = re.compile(r"\b(sk|pk|rk|key|api[-_]?key)[-_][A-Za-z0-9_\-*]{6,}", re.IGNORECASE)


def scrub(message: str, limit: int = 300) -> str:
    """A provider's message, safe to show: key-like strings masked, one line, bounded length."""
    text = _KEY_LIKE.sub("[redacted]", " ".join(str(message).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LlmError(Exception):
    """Base of every failure of the call path. `str(exc)` is meant for the person who asked."""

    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None,
                 retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after  # seconds the provider asked us to wait, if it said
        if retryable is not None:
            self.retryable = retryable

    @property
    def error_type(self) -> str:
        return type(self).__name__


class ProviderUnavailable(LlmError):
    """5xx, timeouts, refused connections: worth another try."""

    retryable = True


class RateLimited(LlmError):
    """429. Retryable, unless the account is out of quota (then it says so)."""

    retryable = True


class BadRequest(LlmError):
    """The provider (or the call path) refused the request as written: 400, 422, a bad argument."""


class ContextLengthExceeded(BadRequest):
    """The prompt plus max_tokens is longer than this model's context window: an alias falls back to a
    deployment with a larger window."""


class AuthenticationFailed(LlmError):
    """401/403, or no key configured / the stored key cannot be decrypted."""


class MalformedResponse(LlmError):
    """The provider answered 2xx with a body we cannot understand."""


class ModelNotFound(LlmError):
    """The model is not in the catalog, is disabled, or the provider does not know it (404)."""


class StreamInterrupted(ProviderUnavailable):
    """A stream broke after it had started: what was sent is incomplete. Never retried or fallen back (the
    caller has bytes already); a stream ends with this error, never silently as if complete."""

    retryable = False


def stream_interrupted(exc: BaseException, provider: str, chars_sent: int) -> StreamInterrupted:
    """The error a stream raises when its upstream fails mid-way (exc: what the adapter raised)."""
    if isinstance(exc, StreamInterrupted):
        return exc
    reason = exc.message if isinstance(exc, LlmError) else type(exc).__name__
    return StreamInterrupted(f"The answer from {provider or 'the provider'} was cut off after {chars_sent} "
                             f"characters: it is incomplete. {reason}".strip(),
                             status_code=getattr(exc, "status_code", None))
