"""What RAG registers at start-up (the one place; RagConfig.ready() calls `register()`).

- the `rag_collection` eval target (apps/evals/targets.py): an eval run answers its items with a collection's
  retrieval configuration and answer prompt (apps/rag/eval_target.py).
"""

from __future__ import annotations

from django.apps import apps as django_apps

from apps.evals.targets import register_target
from apps.rag import eval_target


def register() -> None:
    if django_apps.is_installed("apps.evals"):  # without the evals app there is nothing to run the target
        register_target("rag_collection", "RAG collection configuration", eval_target.run, eval_target.describe,
                        prepare_fn=eval_target.prepare)
