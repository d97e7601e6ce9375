"""The every-minute evaluation on hand-made SLI counts: budgets, burn rates, each window pair's edges, alerts that
open once and resolve, notices, audit and the incident of a fast burn."""

from datetime import timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.incidents.models import Incident
from apps.notifications.models import Notification
from apps.slos.evaluation import slos_evaluate
from apps.slos.models import Health, SloAlert
from apps.slos.selectors import budget_series
from tests.slos.conftest import NOW, put

pytestmark = pytest.mark.django_db

MIN = timedelta(minutes=1)


def _refresh(*slos):
    for slo in slos:
        slo.refresh_from_db()


def test_budget_and_sli_over_the_window(availability, latency, use_case):
    put(use_case, timedelta(days=10), requests=6000, bad=12, slow={6000: 18})
    put(use_case, timedelta(days=27, hours=23), requests=4000, bad=8, slow={6000: 12})
    put(use_case, timedelta(days=29), requests=5000, bad=5000)  # outside the 28 days: not counted

    summary = slos_evaluate(now=NOW)

    _refresh(availability, latency)
    assert summary.evaluated == 2
    assert (availability.valid_events, availability.bad_events) == (10_000, 20)
    assert availability.sli_percent == pytest.approx(99.8)
    assert availability.budget_remaining == pytest.approx(0.6)  # 20 of the 50 allowed bad calls spent
    assert availability.health == Health.OK
    assert (latency.valid_events, latency.bad_events) == (9980, 30)  # answered calls, slower than 6 s
    assert latency.budget_remaining == pytest.approx(1 - 30 / (0.05 * 9980))
    assert availability.burn_rates == {"5m": 0, "30m": 0, "1h": 0, "6h": 0, "3d": 0}


def test_an_spent_budget_is_exhausted_and_no_traffic_is_no_data(availability, latency, use_case):
    put(use_case, timedelta(days=5), requests=1000, bad=6, answered=0)  # 6 bad of 5 allowed

    slos_evaluate(now=NOW)

    _refresh(availability, latency)
    assert availability.budget_remaining == pytest.approx(-0.2)
    assert availability.health == Health.EXHAUSTED
    assert latency.health == Health.NO_DATA and latency.budget_remaining is None


def test_the_fast_pair_fires_at_14_4x_over_1h_and_5m(availability, use_case):
    put(use_case, 2 * MIN, requests=1000, bad=72)  # 72 / 1000 / 0.005 = 14.4×, in both windows

    slos_evaluate(now=NOW)

    availability.refresh_from_db()
    assert availability.burn_rates["1h"] == pytest.approx(14.4)
    assert availability.health == Health.PAGE
    alert = SloAlert.objects.get(slo=availability, pair="fast")
    assert alert.severity == "page" and alert.is_open


def test_the_fast_pair_stays_quiet_just_below(availability, use_case):
    put(use_case, 2 * MIN, requests=1000, bad=71)  # 14.2×

    slos_evaluate(now=NOW)

    assert not SloAlert.objects.filter(slo=availability, pair="fast").exists()
    assert SloAlert.objects.filter(slo=availability, pair="slow").exists()  # 14.2× ≥ 6× over 6 h and 30 min


def test_the_fast_pair_needs_the_short_window_too(availability, use_case):
    put(use_case, 50 * MIN, requests=1000, bad=300)  # burned hard 50 minutes ago
    put(use_case, 2 * MIN, requests=1000, bad=10)  # 2× in the last 5 minutes

    slos_evaluate(now=NOW)

    availability.refresh_from_db()
    assert availability.burn_rates["1h"] == pytest.approx(31.0)
    assert availability.burn_rates["5m"] == pytest.approx(2.0)
    assert not SloAlert.objects.filter(slo=availability, pair="fast").exists()


def test_the_fast_pair_needs_the_long_window_too(availability, use_case):
    put(use_case, 40 * MIN, requests=10_000)
    put(use_case, 2 * MIN, requests=100, bad=10)  # 20× for five minutes, a blip in the hour

    slos_evaluate(now=NOW)

    assert not SloAlert.objects.filter(slo=availability).exists()


def test_the_slow_pair_fires_at_6x_over_6h_and_30m(availability, use_case):
    put(use_case, 5 * timedelta(hours=1), requests=1000, bad=30)  # 6× over 6 h…
    put(use_case, 10 * MIN, requests=1000, bad=30)  # …and 6× over 30 min

    slos_evaluate(now=NOW)

    assert set(SloAlert.objects.filter(slo=availability).values_list("pair", flat=True)) == {"slow"}  # ticket waits


def test_the_ticket_pair_fires_at_1x_over_3d_and_6h(availability, use_case):
    put(use_case, timedelta(days=20), requests=10_000)  # a good month so far
    put(use_case, timedelta(days=2), requests=10_000, bad=50)  # 1× over 3 days
    put(use_case, 3 * timedelta(hours=1), requests=1000, bad=5)  # 1× over 6 h

    slos_evaluate(now=NOW)

    alert = SloAlert.objects.get(slo=availability)
    assert (alert.pair, alert.severity) == ("ticket", "ticket")
    availability.refresh_from_db()
    assert availability.health == Health.TICKET


def test_an_alert_opens_once_notifies_and_resolves(availability, use_case, owner, engineer, viewer):
    put(use_case, 2 * MIN, requests=1000, bad=100)

    slos_evaluate(now=NOW)
    slos_evaluate(now=NOW + MIN)  # still burning: the same alert

    alert = SloAlert.objects.get(slo=availability, pair="fast")
    assert SloAlert.objects.filter(slo=availability, pair="fast").count() == 1
    told = Notification.objects.filter(dedupe_key=f"slo-alert:{alert.pk}:open")
    assert sorted(told.values_list("user__username", flat=True)) == sorted([owner.username, engineer.username])
    assert AuditEvent.objects.filter(action="slo.alert.open", object_id=str(alert.pk)).count() == 1

    slos_evaluate(now=NOW + 10 * MIN)  # the 5-minute window is quiet again

    alert.refresh_from_db()
    assert alert.resolved_at == NOW + 10 * MIN
    assert Notification.objects.filter(dedupe_key=f"slo-alert:{alert.pk}:resolved", user=owner).count() == 1
    assert AuditEvent.objects.filter(action="slo.alert.resolve", object_id=str(alert.pk)).exists()


def test_a_fast_burn_opens_an_incident_when_the_slo_asks(availability, use_case, owner):
    availability.open_incident, availability.incident_severity = True, 1
    availability.save()
    put(use_case, 2 * MIN, requests=1000, bad=500)

    slos_evaluate(now=NOW)

    alert = SloAlert.objects.get(slo=availability, pair="fast")
    incident = Incident.objects.get(pk=alert.incident_id)
    assert incident.severity == 1 and incident.team_id == use_case.team_id
    assert list(incident.use_cases.values_list("pk", flat=True)) == [use_case.pk]
    assert incident.commander == owner
    assert AuditEvent.objects.filter(action="incident.declare", object_id=str(incident.pk)).exists()
    assert not SloAlert.objects.filter(slo=availability, pair="slow", incident__isnull=False).exists()  # fast only


def test_no_incident_without_the_option_or_a_declarant_who_may(availability, use_case, outsider):
    put(use_case, 2 * MIN, requests=1000, bad=500)
    slos_evaluate(now=NOW)
    assert not Incident.objects.exists()

    SloAlert.objects.all().delete()
    availability.open_incident, availability.updated_by = True, outsider  # left for another team
    availability.save()
    slos_evaluate(now=NOW)

    alert = SloAlert.objects.get(slo=availability, pair="fast")
    assert alert.incident is None and "No incident was opened" in alert.note
    assert not Incident.objects.exists()


def test_turning_an_slo_off_resolves_its_alerts(availability, use_case):
    put(use_case, 2 * MIN, requests=1000, bad=500)
    slos_evaluate(now=NOW)
    availability.is_active = False
    availability.save()

    summary = slos_evaluate(now=NOW + MIN)

    assert summary.evaluated == 0 and summary.resolved == 2  # fast and slow
    assert not SloAlert.objects.filter(resolved_at__isnull=True).exists()


def test_slo_status_gives_the_scorecards_each_use_cases_slos_as_last_evaluated(availability, latency, use_case):
    from apps.slos.selectors import slo_status

    put(use_case, timedelta(days=1), requests=1000, bad=2, slow={6000: 80})
    put(use_case, 2 * MIN, requests=1000, bad=100)
    slos_evaluate(now=NOW)

    status = slo_status([use_case.pk, use_case.pk + 1])

    assert list(status) == [use_case.pk]
    by_kind = {s.kind: s for s in status[use_case.pk]}
    assert by_kind["availability"].health == Health.PAGE and by_kind["availability"].open_alerts == ("fast", "slow")
    assert by_kind["availability"].met is False  # 102 bad of 2,000: 94.9 % < 99.5 %
    assert by_kind["latency"].met is True and by_kind["latency"].sli_percent == pytest.approx(100 * (1 - 80 / 1898))


def test_the_budget_chart_ends_at_the_evaluated_budget_and_never_counts_minutes_to_come(availability, use_case):
    """The burn-down's last point is the current hour up to now: the figure in the table beside it."""
    now = NOW + timedelta(minutes=30)
    put(use_case, timedelta(days=3), requests=8000, bad=10)
    put(use_case, timedelta(minutes=-10), requests=1000, bad=10)  # 12:10, in the current hour, before now
    put(use_case, timedelta(minutes=-40), requests=1000, bad=500)  # 12:40: still to come at 12:30

    slos_evaluate(now=now)
    series = budget_series(availability, now=now)

    availability.refresh_from_db()
    assert availability.budget_remaining == pytest.approx(1 - 20 / (0.005 * 9000))
    assert series[-1] == (now, pytest.approx(availability.budget_remaining))
    assert series[0][1] == pytest.approx(1 - 10 / (0.005 * 9000))  # the hour three days ago, as a whole hour
    assert [at for at, _left in series] == sorted(at for at, _left in series)
