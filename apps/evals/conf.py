"""The evals settings, in one place: a Django setting wins, else the environment variable of the same name
(read through apps/core/env.py), else the default. (docs/evals.md and docs/configuration.md list them.)"""

from __future__ import annotations

from django.conf import settings

from apps.core.env import envfloat, envint, envjson, envstr

# Each reader runs at call time, so a changed environment (tests) is seen without a reload.
_FROM_ENV = {
    # calls in flight per run, unless the run says
    "EVALS_DEFAULT_CONCURRENCY": lambda: envint("EVALS_DEFAULT_CONCURRENCY", 8),
    # calls in flight per provider, across every worker (Redis)
    "EVALS_DEFAULT_PROVIDER_CONCURRENCY": lambda: envint("EVALS_DEFAULT_PROVIDER_CONCURRENCY", 20),
    # {provider name: N} overrides
    "EVALS_PROVIDER_CONCURRENCY": lambda: envjson("EVALS_PROVIDER_CONCURRENCY", {}),
    # worker tasks a run fans out to (each runs concurrency / tasks threads)
    "EVALS_TASKS_PER_RUN": lambda: envint("EVALS_TASKS_PER_RUN", 2),
    # tries per item on 429 / 5xx / timeouts (after the call path's own retries)
    "EVALS_MAX_ATTEMPTS": lambda: envint("EVALS_MAX_ATTEMPTS", 4),
    "EVALS_RETRY_BASE_SECONDS": lambda: envfloat("EVALS_RETRY_BASE_SECONDS", 2.0),
    "EVALS_RETRY_CAP_SECONDS": lambda: envfloat("EVALS_RETRY_CAP_SECONDS", 60.0),
    # no progress for this long: the beat job re-queues the run
    "EVALS_STALL_SECONDS": lambda: envint("EVALS_STALL_SECONDS", 120),
    # a claim older than this is put back even if its worker looks alive
    "EVALS_CLAIM_LEASE_SECONDS": lambda: envint("EVALS_CLAIM_LEASE_SECONDS", 1800),
    "EVALS_IMPORT_MAX_ROWS": lambda: envint("EVALS_IMPORT_MAX_ROWS", 200_000),
    "EVALS_EMBEDDING_MODEL": lambda: envstr("EVALS_EMBEDDING_MODEL", "local-minilm") or "local-minilm",
    # dotted paths of custom evaluator modules or functions
    "EVALS_CUSTOM_EVALUATORS": lambda: envjson("EVALS_CUSTOM_EVALUATORS", []),
}


def get(name: str):
    if hasattr(settings, name):
        return getattr(settings, name)
    return _FROM_ENV[name]()
