"""The one retry policy of the portal's Celery tasks: retry on the given transient errors with exponential
backoff and full jitter, up to `max_retries` times. Use it as `@shared_task(name=..., **retry_policy(OSError))`.

`enqueue(name, *args)` queues a task by its registered name, the way the beat schedule and the queue routes
name tasks: a service sends work to its app's `tasks.py` without importing it, so `tasks.py` (which calls the
services) stays the top of its app's import graph and no import circle forms. (No task lives here.)"""

from __future__ import annotations

from celery import current_app


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


def enqueue(name: str, *args):
    """`task.delay(*args)` for the task registered as `name` (e.g. "apps.rag.tasks.indexing_job_run_task")."""
    task = current_app.tasks.get(name)
    if task is None:  # this process has not imported the tasks modules yet: Celery's autodiscovery does, once
        current_app.loader.import_default_modules()
        task = current_app.tasks[name]
    return task.delay(*args)
