"""Alerts: each threshold once per period, forecasts and anomalies once, delivered to the inbox and by email."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs.alerts import anomalies_detect, budget_alert_notify, budgets_check, cost_anomaly_notify
from apps.costs.models import BudgetAlert, CostAnomaly
from apps.costs.services import budget_create
from apps.notifications.models import Notification
from tests.costs.conftest import record

pytestmark = pytest.mark.django_db


def spend(team, dollars, *, at=None, feature="answer", n=[0]):  # noqa: B006 - a counter for unique ids
    n[0] += 1
    record({"team_id": team.pk, "feature": feature, "model": "gpt-4o", "input_tokens": int(Decimal(dollars) * 400_000),
            "output_tokens": 0, "occurred_at": at or timezone.now(), "request_id": f"alert-{n[0]}"})


def test_each_threshold_alerts_once_per_period(prices, team, owner):
    budget = budget_create(actor=owner, name="Support", team=team, amount="100", thresholds="50, 80, 100")

    spend(team, "55")
    spend(team, "1")  # still past 50%: no second alert
    spend(team, "50")  # past 80% and 100% at once

    alerts = list(BudgetAlert.objects.filter(budget=budget).order_by("threshold").values_list("threshold", flat=True))
    assert alerts == [50, 80, 100]
    assert AuditEvent.objects.filter(action="budget.alert").count() == 3
    budgets_check()  # the beat job sees the same crossings: nothing new
    assert BudgetAlert.objects.filter(budget=budget).count() == 3


def test_a_budget_created_past_a_threshold_alerts_from_the_beat_job(prices, team, owner):
    spend(team, "60")
    budget = budget_create(actor=owner, name="Late", team=team, amount="100")

    budgets_check()
    budgets_check()

    assert list(BudgetAlert.objects.filter(budget=budget).values_list("threshold", flat=True)) == [50]


def test_notifications_go_to_owners_and_product_managers_once(prices, team, owner, engineer, viewer, outsider):
    budget = budget_create(actor=owner, name="Support", team=team, amount="100")
    spend(team, "60")
    alert = BudgetAlert.objects.get(budget=budget)

    assert budget_alert_notify(alert.pk) == 2  # olivia (owner, creator) and pat (viewer)
    assert budget_alert_notify(alert.pk) == 0  # the same alert again: deduplicated

    received = set(Notification.objects.values_list("user__username", flat=True))
    assert received == {"olivia-owner", "pat-pm"}
    note = Notification.objects.get(user=viewer)
    assert note.kind == "budget.threshold" and "passed 50%" in note.title and note.link == "/costs/budgets/"


def test_a_forecast_over_budget_alerts_once(prices, team, owner, monkeypatch):
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    for d in range(1, 29):  # $10 a day for four weeks
        spend(team, "10", at=now - timedelta(days=d))
    budget = budget_create(actor=owner, name="Support", team=team, amount="250", thresholds="100")

    sent = budgets_check()
    budgets_check()

    # 9 days of March so far ($90) + 22 remaining days at $10: about $310 > $250
    alert = BudgetAlert.objects.get(budget=budget, kind="forecast")
    assert sent["forecast"] == 1 and Decimal("300") < alert.projected < Decimal("320")
    assert "forecast to reach" in alert.message and "80% range" in alert.message


def test_todays_spike_is_an_anomaly_once_and_small_ones_are_ignored(prices, team, other_team, owner, viewer,
                                                                    monkeypatch):
    now = datetime(2025, 3, 10, 15, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    for d in range(1, 8):
        spend(team, "5", at=now - timedelta(days=d))
        spend(other_team, "1", at=now - timedelta(days=d), feature="rerank")
    spend(team, "40", at=now - timedelta(hours=2))  # 8x the norm
    spend(other_team, "5", at=now - timedelta(hours=2), feature="rerank")  # 5x, but under the $10 floor

    found = anomalies_detect()
    again = anomalies_detect()

    assert {(a.team_id, a.feature) for a in found} == {(team.pk, "answer"), (team.pk, "")}
    assert again == [] and CostAnomaly.objects.count() == 2
    anomaly = CostAnomaly.objects.get(feature="answer")
    assert anomaly.spend == Decimal("40") and anomaly.baseline == Decimal("5")
    assert cost_anomaly_notify(anomaly.pk) == 2
    assert "8.0×" in Notification.objects.get(user=viewer).body


@pytest.mark.django_db(transaction=True)
def test_a_crossing_reaches_the_inbox_and_email_through_the_worker(prices, team, owner, celery_worker):
    import time

    budget_create(actor=owner, name="Support", team=team, amount="10", thresholds="50")
    spend(team, "6")

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (Notification.objects.exists() and mail.outbox):
        time.sleep(0.1)
    note = Notification.objects.get(user=owner)
    assert "passed 50%" in note.title and note.emailed_at is not None
    assert mail.outbox[0].to == [owner.email] and "passed 50%" in mail.outbox[0].subject
