"""The scorecards demo: on its use case the gateway, outcome and incident KPIs have data, some miss their
targets, and running it again changes nothing. (Its eval and RAG KPIs come from the evals and rag demos, which
this test does not load.)"""

import pytest

from apps.reviews.models import UseCase
from apps.scorecards.demo import USE_CASE, seed_demo_scorecards
from apps.scorecards.models import KpiValue

pytestmark = pytest.mark.django_db


def test_the_demo_feeds_the_gateway_outcome_and_incident_kpis_and_misses_some():
    from portal.demo import seed_demo_accounts

    seeded = seed_demo_accounts()
    people, teams = seeded["people"], seeded["teams"]
    use_case = UseCase.objects.create(team=teams["search"], title=USE_CASE, purpose="demo", state="active",
                                      tier="high", business_owner=people["erin"])
    assert seed_demo_scorecards(people, teams, days=30) >= 1  # the demo writes 84 days; 30 are enough here
    values = {v.kpi: v for v in KpiValue.objects.filter(snapshot__use_case=use_case)}
    fed = {"adoption", "task_success", "override_rate", "safety_violations", "latency_p50", "latency_p95",
           "availability", "cost_per_success", "tokens_per_request", "mttr"}
    assert {k for k, v in values.items() if v.value is not None} >= fed
    assert any(v.status == "missed" for v in values.values())
    assert seed_demo_scorecards(people, teams) == 0
