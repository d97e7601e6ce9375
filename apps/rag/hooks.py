"""What RAG registers at start-up (the one place; RagConfig.ready() calls `register()`).

- the `rag_collection` eval target (apps/evals/targets.py): an eval run answers its items with a collection's
  retrieval configuration and answer prompt (apps/rag/eval_target.py);
- the tasks its services queue by name (apps/core/tasks.py `task_queue`, ADR 0096).
"""

from __future__ import annotations

from django.apps import apps as django_apps

from apps.core.tasks import tasks_register
from apps.evals.targets import register_target
from apps.rag import eval_target, tasks


def register() -> None:
    tasks_register(tasks.indexing_job_run_task, tasks.retrieval_eval_run_task)
    if django_apps.is_installed("apps.evals"):  # without the evals app there is nothing to run the target
        register_target("rag_collection", "RAG collection configuration", eval_target.run, eval_target.describe,
                        prepare_fn=eval_target.prepare)
