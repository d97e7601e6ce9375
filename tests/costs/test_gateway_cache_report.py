"""The cost dashboards show what the response cache saved (it is the call path's, ADR 0099, so the portal's own
calls hit it too), per team and split by source — the gateway's traffic and the portal's own calls — from the
rollups."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.costs.reports import cache_source
from apps.costs.rollups import day_start
from tests.costs.conftest import record

pytestmark = pytest.mark.django_db


def _traffic(owner, source: str, hits: int, saving: str, at) -> list[dict]:
    """One paid call, then `hits` cache hits that cost nothing and saved `saving` each."""
    paid = {"occurred_at": at, "team_id": owner.pk, "source": source, "input_tokens": 1000, "output_tokens": 100,
            "request_id": f"paid-{owner.slug}-{source}"}
    return [paid] + [{"occurred_at": at, "team_id": owner.pk, "source": source, "cache_hit": True,
                      "cache_saving": Decimal(saving), "request_id": f"hit-{owner.slug}-{source}-{n}"}
                     for n in range(hits)]


@pytest.fixture
def cached_traffic(prices, team, other_team):
    """support-ai: 3 gateway hits ($0.25 each), 2 playground hits ($0.10) and 1 RAG hit ($0.30);
    search: 1 gateway hit ($0.25)."""
    at = day_start(timezone.now()) + timedelta(hours=1)
    return record(*_traffic(team, "gateway", 3, "0.25", at), *_traffic(team, "playground", 2, "0.10", at),
                  *_traffic(team, "rag", 1, "0.30", at), *_traffic(other_team, "gateway", 1, "0.25", at))


def test_the_gateway_is_one_side_and_every_other_source_is_the_portals_own_calls():
    assert [cache_source(s) for s in ("gateway", "playground", "eval", "rag", "api")] == \
        ["gateway", "portal", "portal", "portal", "portal"]


def test_the_dashboard_shows_what_the_cache_saved_for_all_traffic_split_by_source(client_for, admin_user,
                                                                                   cached_traffic):
    html = client_for(admin_user).get("/costs/").content.decode()

    assert 'data-testid="report-gatewaycache"' in html and "Saved by the response cache" in html
    assert "<strong>$1.50</strong> saved by the response cache" in html  # 4 × 0.25 + 2 × 0.10 + 0.30
    assert "gateway $1.00 · portal $0.50" in html
    exported = client_for(admin_user).get("/costs/charts/gatewaycache.csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == ["Team", "Source", "Requests", "Cache hits", "Hit rate", "Saved (USD)"]
    by_team_and_source = {(r[0], r[1]): (r[2], r[3]) for r in rows[1:]}
    assert by_team_and_source == {("support-ai", "gateway"): ("4", "3"), ("support-ai", "portal"): ("5", "3"),
                                  ("search", "gateway"): ("2", "1")}


def test_a_viewer_sees_only_their_teams_saving_and_the_source_filter_narrows_it(client_for, viewer, cached_traffic):
    fragment = client_for(viewer).get("/costs/charts/gatewaycache/").content.decode()
    assert "support-ai" in fragment and "search" not in fragment
    assert "<strong>$1.25</strong>" in fragment  # 3 × 0.25 (gateway) + 2 × 0.10 + 0.30 (portal)

    rag_only = client_for(viewer).get("/costs/charts/gatewaycache/?source=rag").content.decode()
    assert "<strong>$0.30</strong>" in rag_only and "gateway $0.00 · portal $0.30" in rag_only
    spend = client_for(viewer).get("/costs/charts/spend.csv").content.decode()
    assert "support-ai" in spend  # the paid calls only: the hits add requests, not cost
