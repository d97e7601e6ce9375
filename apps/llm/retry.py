"""The call path's only retry loop: exponential backoff with full jitter, honouring Retry-After.

The openai client is built with max_retries=0, so nothing below us retries and the ledger sees one call.
Tunable with settings (defaults in brackets): LLM_RETRY_BASE_SECONDS [0.5], LLM_RETRY_CAP_SECONDS [20],
LLM_RETRY_AFTER_MAX_SECONDS [60] — when a provider asks for a longer wait than that, we give up at once
and say when to try again rather than hold a worker (or a browser) for minutes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

from django.conf import settings
from django.utils import timezone

from apps.llm.errors import LlmError, RateLimited

log = logging.getLogger(__name__)
T = TypeVar("T")


def sleep(seconds: float) -> None:
    """The one place the call path waits. Tests replace it (tests/llm/conftest.py) to keep wall time out."""
    time.sleep(seconds)


async def asleep(seconds: float) -> None:
    """The async path's one wait; replaced in tests like `sleep`."""
    await asyncio.sleep(seconds)


def jitter() -> float:
    """A uniform draw in [0, 1); replaceable for the same reason."""
    return random.random()


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base_seconds: float = 0.5
    cap_seconds: float = 20.0
    retry_after_max_seconds: float = 60.0

    @classmethod
    def for_provider(cls, provider) -> RetryPolicy:
        return cls(
            max_retries=provider.max_retries,
            base_seconds=settings.LLM_RETRY_BASE_SECONDS,
            cap_seconds=settings.LLM_RETRY_CAP_SECONDS,
            retry_after_max_seconds=settings.LLM_RETRY_AFTER_MAX_SECONDS,
        )

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before retry number `attempt + 1`: the provider's Retry-After, else full jitter."""
        if retry_after is not None:
            return max(0.0, retry_after)
        return jitter() * min(self.cap_seconds, self.base_seconds * (2 ** attempt))


def parse_retry_after(headers) -> float | None:
    """`retry-after-ms` (OpenAI), `retry-after` in seconds or as an HTTP date; None if absent or unreadable."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(raw) - timezone.now()).total_seconds())
    except (TypeError, ValueError, IndexError):
        return None


def retry_wait(exc: LlmError, attempt: int, policy: RetryPolicy) -> float:
    """Seconds to wait before retrying after `exc` on attempt `attempt` (0-based); raises when not to retry."""
    if not exc.retryable or attempt >= policy.max_retries:
        raise exc
    if exc.retry_after is not None and exc.retry_after > policy.retry_after_max_seconds:
        if isinstance(exc, RateLimited):
            raise RateLimited(
                f"{exc.message} The provider asks to wait {exc.retry_after:.0f} s; try again then.",
                status_code=exc.status_code, retry_after=exc.retry_after, retryable=False,
            ) from exc
        raise exc
    wait = policy.delay(attempt, exc.retry_after)
    log.info("model call failed (%s), retry %d of %d in %.2f s", exc.error_type, attempt + 1, policy.max_retries, wait)
    return wait


def with_retries(attempt_fn: Callable[[], T], policy: RetryPolicy,
                 on_retry: Callable[[int, LlmError, float], None] | None = None) -> tuple[T, int]:
    """Run `attempt_fn` until it succeeds, a non-retryable LlmError, or retries run out.

    Returns (value, retries_taken). Raises the last LlmError.
    """
    attempt = 0
    while True:
        try:
            return attempt_fn(), attempt
        except LlmError as exc:
            wait = retry_wait(exc, attempt, policy)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            sleep(wait)
            attempt += 1


async def awith_retries(attempt_fn: Callable[[], Awaitable[T]], policy: RetryPolicy,
                        on_retry: Callable[[int, LlmError, float], None] | None = None) -> tuple[T, int]:
    """with_retries for coroutines: the same decisions (retry_wait), waiting with asyncio."""
    attempt = 0
    while True:
        try:
            return await attempt_fn(), attempt
        except LlmError as exc:
            wait = retry_wait(exc, attempt, policy)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            await asleep(wait)
            attempt += 1
