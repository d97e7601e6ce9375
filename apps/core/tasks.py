"""The one retry policy of the portal's Celery tasks, and the one way a service queues a task of its own app.

- `retry_policy`: retry on the given transient errors with exponential backoff and full jitter, up to
  `max_retries` times. Use it as `@shared_task(name=..., **retry_policy(OSError))`.
- `tasks_register` / `task_queue`: an app's tasks.py sits on top of its services (a task only calls a
  service), so a service that must queue a task cannot import tasks.py without closing an import circle.
  The app's `hooks.register()` registers the tasks its services queue; the services queue them by their
  `name=` (`task_queue("apps.costs.tasks.repricing_job_run_task", job.pk)`), which is `.delay(...)` on the
  very task object.

(No task lives here.)
"""

from __future__ import annotations

from typing import Any

_QUEUEABLE: dict[str, Any] = {}


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


def tasks_register(*tasks) -> None:
    """From an app's hooks.register(): the tasks its services queue with task_queue."""
    for task in tasks:
        _QUEUEABLE[task.name] = task


def task_queue(name: str, *args, **kwargs):
    """Queue the registered task `name` (`.delay(*args, **kwargs)`); raises what `.delay` raises."""
    try:
        task = _QUEUEABLE[name]
    except KeyError:
        raise LookupError(f"task {name!r} is not registered: call tasks_register() in its app's hooks.register()")
    return task.delay(*args, **kwargs)
