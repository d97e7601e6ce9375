"""The one retry policy of the portal's Celery tasks: retry on the given transient errors with exponential
backoff and full jitter, up to `max_retries` times. Use it as `@shared_task(name=..., **retry_policy(OSError))`.
(No task lives here.)"""

from __future__ import annotations


def retry_policy(*errors: type[BaseException], max_retries: int = 5, backoff_max: int = 600) -> dict:
    if not errors:
        raise ValueError("retry_policy needs the errors to retry on")
    return {
        "autoretry_for": errors,
        "retry_backoff": True,
        "retry_backoff_max": backoff_max,
        "retry_jitter": True,
        "max_retries": max_retries,
    }
