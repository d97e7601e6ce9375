"""Prometheus metrics served at /metrics.

Under gunicorn with several worker processes set PROMETHEUS_MULTIPROC_DIR (an empty directory, before the
processes start): each process then writes its values there and /metrics sums them, instead of answering
with the counters of whichever process the scrape happened to reach.
"""

import functools
import hmac
import os

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("portal_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "portal_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MODEL_CALLS = Counter("portal_model_calls_total", "Model calls through the llm call path",
                      ["provider_kind", "model", "operation", "status"])
MODEL_TOKENS = Counter("portal_model_tokens_total", "Tokens through the llm call path", ["model", "direction"])
# Routing (apps/llm/routing.py, breakers.py): per alias deployment.
DEPLOYMENT_ATTEMPTS = Counter("portal_llm_deployment_attempts_total", "Attempts on an alias deployment",
                              ["deployment", "outcome"])
DEPLOYMENT_SKIPS = Counter("portal_llm_deployment_skips_total", "Deployments passed over (breaker open, busy, limited)",
                           ["deployment", "reason"])
FALLBACKS = Counter("portal_llm_fallbacks_total", "Calls moved to another deployment after a failure",
                    ["alias", "error_type"])
BREAKER_TRANSITIONS = Counter("portal_llm_breaker_transitions_total", "Circuit breaker state changes",
                              ["deployment", "state"])
BREAKER_OPEN = Gauge("portal_llm_breaker_open", "1 while this process last saw the deployment's breaker open",
                     ["deployment"], multiprocess_mode="max")


GATEWAY_REQUESTS = Counter("portal_gateway_requests_total", "Requests answered by the /v1/ gateway",
                           ["endpoint", "status", "code"])
GATEWAY_CACHE = Counter("portal_gateway_cache_total", "The gateway's response cache: lookups that hit or missed, "
                        "answers stored", ["endpoint", "result"])
GATEWAY_LATENCY = Histogram(
    "portal_gateway_request_seconds", "Gateway time from the request to its answer's first byte (streams) or "
    "whole answer", ["endpoint"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

# Guardrails in the gateway's path (apps/gateway/guard.py): each safety event, and the time the checks took per
# request and direction (input: before the call; output: the answer's scan, for streams summed over the deltas).
GATEWAY_GUARDRAIL_ACTIONS = Counter("portal_gateway_guardrail_actions_total", "Guardrail actions (safety events)",
                                    ["direction", "check", "action"])
GATEWAY_GUARDRAIL_SECONDS = Histogram(
    "portal_gateway_guardrail_seconds", "Guardrail time per request and direction", ["direction"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))


@functools.lru_cache(maxsize=4096)
def labelled(metric, *values: str):
    """`metric.labels(*values)`, looked up once: the gateway and the call path label several metrics per request,
    and labels() costs tens of microseconds each time (the child for given values never changes)."""
    return metric.labels(*values)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def authorized(authorization: str) -> bool:
    """May this Authorization header read the metrics? Yes when METRICS_TOKEN is unset, else only its bearer."""
    token = getattr(settings, "METRICS_TOKEN", None)
    return not token or hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


# Collectors of state every process shares (Redis), read at each scrape: registered by apps' hooks.
SHARED = CollectorRegistry(auto_describe=False)
_shared_kinds: set[type] = set()


def register_shared_collector(collector) -> None:
    """Add a collector (an object with `collect()`) whose figures are shared by every process: the web's
    /metrics serves them once, whichever process answers and whatever PROMETHEUS_MULTIPROC_DIR says."""
    if type(collector) not in _shared_kinds:  # once per kind: hooks may run again (tests)
        _shared_kinds.add(type(collector))
        SHARED.register(collector)


def render(*, shared: bool = True) -> tuple[bytes, str]:
    """This process's (or, with PROMETHEUS_MULTIPROC_DIR, every process's) metrics, then the shared ones."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return body + (generate_latest(SHARED) if shared else b""), CONTENT_TYPE_LATEST
