"""Gateway traffic on the portal's dashboards: the recorder adds each call once to the daily rollups (in the
ledger write's transaction); the cost dashboard shows spend by key, alias or deployment, the quality dashboard
latency p50/p95 (total, upstream, overhead, TTFT); each only to those who may see the team's usage."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone
from openai import OpenAI

from apps.core import redis as portal_redis
from apps.gateway import recording, selectors, traffic
from apps.gateway.models import LatencyDaily, TrafficDaily

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


def test_each_recorded_call_counts_once_in_the_daily_rollups(gateway_url, local_catalog, gateway_key, drain):
    key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.chat.completions.create(model="chat", messages=QUESTION)
    list(sdk.chat.completions.create(model="chat", messages=QUESTION, stream=True))
    entries = portal_redis.client().xrange(recording.stream_key())
    drain()
    for _entry_id, fields in entries:  # delivered again (a writer died before its XACK): counted once all the same
        portal_redis.client().xadd(recording.stream_key(), fields)
    drain()

    row = TrafficDaily.objects.get()
    assert (row.gateway_key_id, row.team_id, row.alias, row.requests, row.errors) == (key.pk, key.team_id, "chat",
                                                                                     2, 0)
    assert row.deployment == "chat/local-extractive" and row.output_tokens > 0
    measures = dict(LatencyDaily.objects.values_list("measure").annotate(n=Sum("requests")))
    assert measures == {"total": 2, "upstream": 2, "overhead": 2, "ttft": 1}  # TTFT: the stream only


def _row(key, **extra) -> dict:
    row = {"occurred_at": timezone.now(), "team_id": key.team_id, "gateway_key_id": key.pk, "alias": "chat",
           "deployment": "chat/gpt-4o", "model": "gpt-4o", "status": "ok", "input_tokens": 100, "output_tokens": 20,
           "cost": Decimal("0.01"), "fallbacks": 0, "latency_ms": 120, "upstream_ms": 100, "ttft_ms": None}
    return {**row, **extra}


@pytest.fixture
def traffic_rows(db, gateway_key):
    """Three calls of one key on two deployments (one failed), written as the recorder would."""
    key, _secret = gateway_key()
    traffic.traffic_add([_row(key), _row(key, latency_ms=400, upstream_ms=380),
                         _row(key, deployment="chat/gpt-4o-mini", model="gpt-4o-mini", status="error",
                              cost=None, fallbacks=1)])
    return key


def test_spend_is_grouped_by_key_alias_or_deployment_for_those_who_may_see_the_team(
        traffic_rows, viewer, outsider, admin_user):
    today = timezone.now().date()
    span = {"start": today, "end": today + timedelta(days=1)}

    (by_key,) = selectors.traffic_spend(actor=viewer, group_by="key", **span)
    by_deployment = selectors.traffic_spend(actor=admin_user, group_by="deployment", **span)

    assert traffic_rows.prefix in by_key.label and by_key.requests == 3 and by_key.cost == Decimal("0.02")
    assert (by_key.errors, by_key.unpriced, by_key.fallbacks) == (1, 1, 1)
    assert [(r.label, r.requests) for r in by_deployment] == [("chat/gpt-4o", 2), ("chat/gpt-4o-mini", 1)]
    assert selectors.traffic_spend(actor=outsider, group_by="alias", **span) == []


def test_latency_percentiles_come_from_the_summed_bins(traffic_rows, viewer):
    today = timezone.now().date()
    (row,) = selectors.traffic_latency(actor=viewer, start=today, end=today + timedelta(days=1))

    p50, p95 = row.percentiles["total"]
    assert row.label == "chat" and row.requests == 3
    assert 100 < p50 <= p95 and p95 > 300
    assert row.percentiles["overhead"][0] is not None and row.percentiles["ttft"] == (None, None)


def test_the_cost_dashboard_shows_the_gateway_panel_and_switches_its_grouping(client_for, viewer, traffic_rows):
    client = client_for(viewer)

    page = client.get("/costs/").content.decode()
    by_deployment = client.get("/costs/?gateway_by=deployment", HTTP_HX_REQUEST="true").content.decode()

    assert 'data-testid="gateway-spend"' in page and traffic_rows.prefix in page and "Gateway spend by key" in page
    assert "<html" not in by_deployment and "Gateway spend by deployment" in by_deployment
    assert "chat/gpt-4o-mini" in by_deployment and "1 unpriced" in by_deployment


def test_the_cost_dashboard_has_no_gateway_panel_without_gateway_traffic(client_for, viewer):
    assert 'data-testid="gateway-spend"' not in client_for(viewer).get("/costs/").content.decode()


def test_the_quality_dashboard_shows_gateway_latency_to_the_teams_people_only(client_for, viewer, outsider,
                                                                              traffic_rows):
    page = client_for(viewer).get("/evals/dashboards/").content.decode()
    other = client_for(outsider).get("/evals/dashboards/").content.decode()

    assert 'data-testid="gateway-latency"' in page and 'data-alias="chat"' in page
    assert 'data-measure="overhead-p95"' in page
    assert 'data-alias="chat"' not in other and "No gateway calls yet." in other
