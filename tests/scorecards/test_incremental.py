"""The beat's refresh is incremental: it recomputes only the use cases with something new since their last
computation (a gateway call, feedback, an incident, a target...), those never computed or whose tier changed, and a
12th of the portfolio a pass among those computed over an hour ago; the others keep their scorecard."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.evals.models import Feedback
from apps.gateway import traffic
from apps.reviews.models import UseCase
from apps.scorecards import services
from apps.scorecards.models import ScorecardSnapshot
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def portfolio(team, use_case):
    """The refund assistant and two more use cases of the team, edited ten minutes ago and computed now."""
    others = UseCase.objects.bulk_create([UseCase(team=team, title=f"Use case {i}", purpose="p", state="active",
                                                  tier="low") for i in range(2)])
    UseCase.objects.update(updated_at=timezone.now() - timedelta(minutes=10))
    services.scorecards_refresh()
    return [use_case, *others]


def _call(use_case) -> dict:
    return {"occurred_at": timezone.now(), "team_id": use_case.team_id, "gateway_key_id": 9, "alias": "chat",
            "deployment": "", "model": "m", "status": "ok", "input_tokens": 90, "output_tokens": 10,
            "cost": Decimal("0.001"), "fallbacks": 0, "latency_ms": 300, "use_case_id": use_case.pk}


def test_nothing_new_nothing_recomputed(portfolio):
    assert services.scorecards_due(now=timezone.now()) == []
    assert services.scorecards_refresh_due() == 0


def test_a_gateway_call_or_feedback_makes_only_its_use_case_due(portfolio):
    refunds, first, second = portfolio
    traffic.traffic_add([_call(first)])
    Feedback.objects.create(use_case_id=second.pk, request_id="r1", success=True)
    assert services.scorecards_due(now=timezone.now()) == sorted([first.pk, second.pk])
    before = ScorecardSnapshot.objects.get(use_case=refunds).computed_at
    assert services.scorecards_refresh_due() == 2
    assert ScorecardSnapshot.objects.get(use_case=refunds).computed_at == before  # untouched
    later = timezone.now() + timedelta(minutes=4)
    assert services.scorecards_refresh_due(now=later) == 2  # once more: it may have landed during the computation
    assert services.scorecards_due(now=later + timedelta(minutes=4)) == []  # then not again


def test_an_incident_a_target_or_a_tier_change_makes_the_use_case_due(portfolio, pm):
    refunds, first, second = portfolio
    IncidentFactory(team=refunds.team).use_cases.add(refunds)
    services.target_users_set(actor=pm, use_case=refunds, target_users=50)
    UseCase.objects.filter(pk=second.pk).update(tier="high")
    assert services.scorecards_due(now=timezone.now()) == sorted([refunds.pk, second.pk])


def test_scorecards_older_than_an_hour_are_recomputed_a_twelfth_of_the_portfolio_at_a_time(portfolio):
    later = timezone.now() + services.RECOMPUTE_AFTER + timedelta(minutes=2)
    due = services.scorecards_due(now=later)
    assert len(due) == 1  # ceil(3 / 12): the oldest first, the rest on the next passes
    services.scorecards_refresh(use_case_ids=due, now=later)
    assert len(services.scorecards_due(now=later)) == 1 and services.scorecards_due(now=later) != due


def test_a_use_case_never_computed_is_due(portfolio, team):
    new = UseCase.objects.create(team=team, title="Brand new", purpose="p", state="active")
    assert services.scorecards_due(now=timezone.now()) == [new.pk]
