"""Named Celery queues: one per kind of work, so a flood of evals never delays indexing or alerts."""

from kombu import Queue

DEFAULT = "default"  # short housekeeping: webhooks, alerts, notifications, rollups
LLM = "llm"  # anything that calls a model: eval runs, judge calls, re-pricing
INDEXING = "indexing"  # RAG parsing, chunking and embedding

ALL = (DEFAULT, LLM, INDEXING)
QUEUES = tuple(Queue(name) for name in ALL)

# Tasks route by name (every task has an explicit name= equal to its dotted path): a whole module by glob,
# or one task by its exact name; anything else runs on DEFAULT. tests/portal/test_tasks.py pins each route.
ROUTES = {
    "apps.costs.tasks.repricing_job_run_task": {"queue": LLM},  # re-pricing: long work, on `llm` (see above)
    "apps.evals.tasks.*": {"queue": LLM},
    "apps.redteam.tasks.*": {"queue": LLM},
    "apps.rag.tasks.*": {"queue": INDEXING},
}
