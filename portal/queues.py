"""Named Celery queues: one per kind of work, so a flood of evals never delays indexing or alerts."""

from kombu import Queue

DEFAULT = "default"  # short housekeeping: webhooks, alerts, notifications, rollups
LLM = "llm"  # anything that calls a model: eval runs, judge calls, re-pricing
INDEXING = "indexing"  # RAG parsing, chunking and embedding

ALL = (DEFAULT, LLM, INDEXING)
QUEUES = tuple(Queue(name) for name in ALL)

# Tasks route by module: apps put long model-calling work in tasks named *.llm_* or *.index_*.
ROUTES = {
    "apps.evals.tasks.*": {"queue": LLM},
    "apps.rag.tasks.*": {"queue": INDEXING},
}
