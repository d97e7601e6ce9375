"""Live health per alias deployment: calls, error rate and p50/p95 latency of the attempts that ended in the last
LLM_HEALTH_WINDOW_MINUTES, with the breaker's state.

Written on the hot path for free: the breaker's release script (breakers._RELEASE), already one Redis round trip
per attempt, also counts the attempt in its deployment's per-minute hash (total, failures, a latency bin; four
bins per doubling, as the ledger's token histograms: ±9 % around a bin's middle). Read here in one pipelined
round trip for a page or a scrape; the ledger's rollups are hourly at best and carry no deployment, so they
would be neither fresh nor this cheap. Attempts with no verdict on the deployment (a bad request, a cancelled
stream) are not counted, as the breaker does not count them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

from apps.core import redis as core_redis
from apps.costs.rollups import percentile_from_bins
from apps.llm import breakers
from apps.llm.breakers import BreakerState
from apps.llm.selectors import deployment_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeploymentHealth:
    deployment_id: int
    state: str  # the breaker: closed | open | half_open | unknown (Redis unreachable)
    calls: int  # attempts that ended in the window
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    minutes: int

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.calls if self.calls else None


def _window(deployment_ids: list[int], minutes: int, now: float) -> dict[int, dict[bytes, int]]:
    """Each deployment's counters summed over the window's minute hashes (one pipelined round trip)."""
    last = int(now // 60)
    pipe = core_redis.client().pipeline(transaction=False)
    for pk in deployment_ids:
        for minute in range(last - minutes + 1, last + 1):
            pipe.hgetall(breakers.health_key(pk, minute))
    answers = iter(pipe.execute())
    sums: dict[int, dict[bytes, int]] = {}
    for pk in deployment_ids:
        total: dict[bytes, int] = {}
        for _minute in range(minutes):
            for field, value in next(answers).items():
                total[field] = total.get(field, 0) + int(value)
        sums[pk] = total
    return sums


def deployment_health(deployment_ids: list[int], *, minutes: int | None = None,
                      now: float | None = None) -> dict[int, DeploymentHealth]:
    """Health of each deployment over the last `minutes` (LLM_HEALTH_WINDOW_MINUTES), the current one included."""
    if not deployment_ids:
        return {}
    minutes = max(1, minutes or settings.LLM_HEALTH_WINDOW_MINUTES)
    states = breakers.states(deployment_ids)
    try:
        sums = _window(deployment_ids, minutes, time.time() if now is None else now)
    except Exception:  # noqa: BLE001 - a page or a scrape must not fail because Redis is away
        log.warning("deployment health: Redis unreachable", exc_info=True)
        sums = {}
    out = {}
    for pk in deployment_ids:
        counts = sums.get(pk, {})
        bins = {int(field[1:]): n for field, n in counts.items() if field.startswith(b"b")}
        state = states.get(pk, BreakerState(pk, "unknown", 0, 0)).state
        out[pk] = DeploymentHealth(deployment_id=pk, state=state, calls=counts.get(b"t", 0),
                                   failures=counts.get(b"f", 0), p50_ms=percentile_from_bins(bins, 0.5),
                                   p95_ms=percentile_from_bins(bins, 0.95), minutes=minutes)
    return out


class HealthCollector:
    """The live health as Prometheus gauges, read at each scrape of the web's /metrics (shared state: every
    process would report the same figures, so the gateway's own scrape leaves them out)."""

    STATES = ("closed", "open", "half_open")

    def collect(self):
        try:
            labels = deployment_labels()
            health = deployment_health(list(labels))
        except Exception:  # noqa: BLE001 - a scrape answers with what it has; the database may be away
            log.warning("deployment health metrics: could not read the deployments", exc_info=True)
            return
        window = settings.LLM_HEALTH_WINDOW_MINUTES
        calls = GaugeMetricFamily("portal_llm_deployment_window_calls",
                                  f"Attempts that ended on the deployment in the last {window} minutes",
                                  labels=["deployment"])
        errors = GaugeMetricFamily("portal_llm_deployment_error_ratio",
                                   f"Share of the last {window} minutes' attempts that failed",
                                   labels=["deployment"])
        latency = GaugeMetricFamily("portal_llm_deployment_latency_ms",
                                    f"Attempt latency over the last {window} minutes (binned, ±9 %)",
                                    labels=["deployment", "quantile"])
        state = GaugeMetricFamily("portal_llm_deployment_breaker_state",
                                  "1 for the breaker's current state (shared by every process)",
                                  labels=["deployment", "state"])
        for pk, label in labels.items():
            h = health[pk]
            calls.add_metric([label], h.calls)
            if h.error_rate is not None:
                errors.add_metric([label], h.error_rate)
            for quantile, value in (("0.5", h.p50_ms), ("0.95", h.p95_ms)):
                if value is not None:
                    latency.add_metric([label, quantile], value)
            for name in self.STATES:
                state.add_metric([label, name], 1 if h.state == name else 0)
        yield from (calls, errors, latency, state)
