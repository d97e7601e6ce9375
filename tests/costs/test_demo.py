"""The demo ledger tells a story: several teams, features, tenants and models, growth, a spike that is
flagged, outcomes, unpriced calls, and budgets at different burn levels with alerts in the inbox."""

from datetime import UTC, datetime

import pytest

from apps.core.request_context import acting_as
from apps.costs.demo import seed_demo_costs
from apps.costs.models import Budget, BudgetAlert, CostAnomaly, UsageEvent, UsageRollup
from apps.notifications.models import Notification

pytestmark = pytest.mark.django_db


# The spike is two days back: from a Monday or a Tuesday it falls on a weekend, when the demo's traffic dips.
@pytest.mark.parametrize("now", [None, datetime(2026, 12, 7, 0, 40, tzinfo=UTC), datetime(2026, 12, 10, 15, 0, tzinfo=UTC)],
                         ids=["today", "a-monday-just-after-midnight", "a-thursday-afternoon"])
def test_the_demo_has_a_story_and_seeding_twice_adds_nothing(settings, now):
    from apps.costs.services import prices_seed

    settings.COSTS_ANOMALY_MIN_AMOUNT = "0.50"  # a 5% scale demo: the spike is worth dollars, not tens
    from portal.demo import seed_demo_accounts

    with acting_as(None):
        accounts = seed_demo_accounts()
        prices_seed()
        first = seed_demo_costs(accounts["people"], accounts["teams"], scale=0.05, now=now)
        again = seed_demo_costs(accounts["people"], accounts["teams"], scale=0.05, now=now)

    assert first["events"] > 5000 and again == {"events": 0, "budgets": 0}
    events = UsageEvent.objects.all()
    assert events.values("team_id").distinct().count() == 4
    assert events.values("feature").distinct().count() == 10
    assert events.values("tenant").distinct().count() == 6
    assert events.values("model").distinct().count() >= 9
    assert events.filter(outcome="success").exists() and events.filter(cost__isnull=True).exists()
    assert UsageRollup.objects.filter(granularity="day").exists()
    assert Budget.objects.count() == 5 and Budget.objects.filter(hard_cap__isnull=False).count() == 1
    assert BudgetAlert.objects.filter(threshold=100).exists()  # the capped one is over
    assert CostAnomaly.objects.filter(feature="email-draft").exists()
    assert Notification.objects.filter(user__username="pat", kind="budget.threshold").exists()
