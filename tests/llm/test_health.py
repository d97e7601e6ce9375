"""Live health per deployment (apps/llm/health.py): every attempt the breaker releases is counted in the same
Redis round trip (calls, failures, a latency bin), read back as error rate and p50/p95 over the window; shown
on the aliases page and as Prometheus gauges on the web's /metrics."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync

from apps.costs.services import UsageContext
from apps.llm import acalls, breakers
from apps.llm.aliases import alias_create, deployment_create
from apps.llm.health import deployment_health
from apps.llm.models import ModelKind
from apps.llm.results import ChatRequest
from apps.llm.routing import Target
from tests.support.standin import standin_model, standin_provider

pytestmark = pytest.mark.django_db
QUESTION = [{"role": "user", "content": "How long do refunds take?"}]


@pytest.fixture
def fallback_alias(llm_standin):
    """An alias whose first tier answers 503 and whose second answers; health and breakers start clean."""
    provider = standin_provider(llm_standin)
    alias = alias_create(name="health-chat", kind=ModelKind.CHAT, max_attempts=2)
    down = deployment_create(alias=alias, model=standin_model(provider, "svc-down", remote_name="fail-503"))
    up = deployment_create(alias=alias, model=standin_model(provider, "svc-up", remote_name="standin-chat"),
                           priority=1)
    for deployment in (down, up):
        breakers.reset(deployment.pk)
    yield down, up
    for deployment in (down, up):
        breakers.reset(deployment.pk)


async def _noop(record) -> None:
    pass


def test_the_call_paths_attempts_count_in_each_deployments_health(fallback_alias):
    down, up = fallback_alias
    for _ in range(3):
        async_to_sync(acalls.achat)(model="health-chat", request=ChatRequest(messages=QUESTION),
                                    context=UsageContext(source="gateway"), recorder=_noop)

    health = deployment_health([down.pk, up.pk])

    assert (health[down.pk].calls, health[down.pk].failures, health[down.pk].error_rate) == (3, 3, 1.0)
    assert (health[up.pk].calls, health[up.pk].failures, health[up.pk].error_rate) == (3, 0, 0.0)
    assert health[up.pk].p50_ms is not None and health[up.pk].p95_ms >= health[up.pk].p50_ms
    assert health[up.pk].state == breakers.CLOSED


def test_attempts_with_no_verdict_are_not_counted_and_old_minutes_fall_out_of_the_window(fallback_alias):
    down, _up = fallback_alias
    target = Target(model=down.model, deployment_id=down.pk, deployment="health-chat/svc-down")
    for outcome in ("ok", "fail", "none"):
        breakers.release(breakers.acquire(target), outcome)

    now = deployment_health([down.pk])[down.pk]
    later = deployment_health([down.pk], minutes=2, now=time.time() + 300)[down.pk]

    assert (now.calls, now.failures, now.error_rate) == (2, 1, 0.5)
    assert (later.calls, later.error_rate, later.p50_ms) == (0, None, None)


def test_no_deployments_need_no_redis():
    assert deployment_health([]) == {}


def test_the_web_metrics_show_each_deployments_health(client, fallback_alias):
    down, up = fallback_alias
    async_to_sync(acalls.achat)(model="health-chat", request=ChatRequest(messages=QUESTION),
                                context=UsageContext(source="gateway"), recorder=_noop)

    body = client.get("/metrics").content.decode()

    assert 'portal_llm_deployment_error_ratio{deployment="health-chat/svc-down"} 1.0' in body
    assert 'portal_llm_deployment_window_calls{deployment="health-chat/svc-up"} 1.0' in body
    assert 'portal_llm_deployment_latency_ms{deployment="health-chat/svc-up",quantile="0.95"}' in body
    assert 'portal_llm_deployment_breaker_state{deployment="health-chat/svc-up",state="closed"} 1.0' in body
