"""The cost dashboards show what the gateway's response cache saved, per team, from the rollups."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.costs.rollups import day_start
from tests.costs.conftest import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def gateway_traffic(prices, team, other_team):
    """Per team: one paid gateway call, then cache hits that cost nothing and saved what that call cost."""
    at = day_start(timezone.now()) + timedelta(hours=1)
    rows = []
    for owner, hits in ((team, 3), (other_team, 1)):
        rows.append({"occurred_at": at, "team_id": owner.pk, "source": "gateway", "input_tokens": 1000,
                     "output_tokens": 100, "request_id": f"paid-{owner.slug}"})
        rows += [{"occurred_at": at, "team_id": owner.pk, "source": "gateway", "cache_hit": True,
                  "cache_saving": Decimal("0.25"), "request_id": f"hit-{owner.slug}-{n}"} for n in range(hits)]
    record(*rows)
    return rows


def test_the_dashboard_shows_what_the_gateway_cache_saved_per_team(client_for, admin_user, gateway_traffic):
    html = client_for(admin_user).get("/costs/").content.decode()

    assert 'data-testid="report-gatewaycache"' in html and "Saved by the gateway cache" in html
    assert "<strong>$1.00</strong> saved by the gateway cache" in html  # (3 + 1) hits × $0.25
    exported = client_for(admin_user).get("/costs/charts/gatewaycache.csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == ["Team", "Gateway requests", "Cache hits", "Hit rate", "Saved (USD)"]
    by_team = {r[0]: r[1:3] for r in rows[1:]}
    assert by_team == {"support-ai": ["4", "3"], "search": ["2", "1"]}


def test_a_viewer_sees_only_their_teams_saving_and_hits_cost_nothing(client_for, viewer, gateway_traffic):
    fragment = client_for(viewer).get("/costs/charts/gatewaycache/").content.decode()

    assert "support-ai" in fragment and "search" not in fragment
    assert "$0.75" in fragment  # 3 hits × $0.25
    spend = client_for(viewer).get("/costs/charts/spend.csv").content.decode()
    assert "support-ai" in spend  # the paid call only: the hits add requests, not cost
