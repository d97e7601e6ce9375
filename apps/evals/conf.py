"""The evals settings, in one place: a Django setting wins, else the environment variable of the same name,
else the default. (docs/evals.md lists them.)"""

from __future__ import annotations

import json
import os

from django.conf import settings

DEFAULTS = {
    "EVALS_DEFAULT_CONCURRENCY": 8,  # calls in flight per run, unless the run says
    "EVALS_DEFAULT_PROVIDER_CONCURRENCY": 20,  # calls in flight per provider, across every worker (Redis)
    "EVALS_PROVIDER_CONCURRENCY": {},  # {provider name: N} overrides
    "EVALS_TASKS_PER_RUN": 2,  # worker tasks a run fans out to (each runs concurrency / tasks threads)
    "EVALS_MAX_ATTEMPTS": 4,  # tries per item on 429 / 5xx / timeouts (after the call path's own retries)
    "EVALS_RETRY_BASE_SECONDS": 2.0,
    "EVALS_RETRY_CAP_SECONDS": 60.0,
    "EVALS_STALL_SECONDS": 120,  # no progress for this long: the beat job re-queues the run
    "EVALS_CLAIM_LEASE_SECONDS": 1800,  # a claim older than this is put back even if its worker looks alive
    "EVALS_IMPORT_MAX_ROWS": 200_000,
    "EVALS_EMBEDDING_MODEL": "local-minilm",
    "EVALS_CUSTOM_EVALUATORS": [],  # dotted paths of custom evaluator modules or functions
}


def get(name: str):
    default = DEFAULTS[name]
    if hasattr(settings, name):
        return getattr(settings, name)
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, dict | list):
        return json.loads(raw) if raw.strip().startswith(("{", "[")) else [p.strip() for p in raw.split(",")]
    return raw
