"""Who may define SLOs (engineers and owners of the use case's team, admins) and who only reads them (viewers,
council members); bad input answered next to the field with nothing written; every change audited; the API."""

from datetime import timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.slos.evaluation import slos_evaluate
from apps.slos.models import Slo
from tests.slos.conftest import NOW, put

pytestmark = pytest.mark.django_db

GOOD = {"kind": "latency", "target_percent": "95", "threshold_ms": "6000", "window_days": "28",
        "incident_severity": "2", "is_active": "on"}


@pytest.mark.parametrize(("who", "status"), [("owner", 302), ("engineer", 302), ("admin_user", 302),
                                             ("viewer", 403), ("council_member", 403), ("outsider", 404),
                                             ("nobody", 404)])
def test_who_may_define_an_slo(request, client_for, use_case, who, status):
    user = request.getfixturevalue(who)
    response = client_for(user).post(f"/slos/use-cases/{use_case.pk}/new/", GOOD)
    assert response.status_code == status
    assert Slo.objects.filter(use_case=use_case).exists() == (status == 302)


@pytest.mark.parametrize(("who", "status"), [("viewer", 200), ("council_member", 200), ("outsider", 404),
                                             ("nobody", 404), (None, 302)])
def test_who_reads_a_use_cases_slos(request, client_for, availability, who, status):
    user = request.getfixturevalue(who) if who else None
    assert client_for(user).get(f"/slos/use-cases/{availability.use_case_id}/").status_code == status
    listing = client_for(user).get("/slos/")
    if status == 200:
        assert availability.objective in listing.content.decode()
    elif user is not None:
        assert availability.objective not in listing.content.decode()


def test_defining_an_slo_is_audited(client_for, owner, use_case):
    client_for(owner).post(f"/slos/use-cases/{use_case.pk}/new/", GOOD)
    slo = Slo.objects.get()
    event = AuditEvent.objects.get(action="slo.create")
    assert (event.object_id, event.actor_user) == (str(slo.pk), owner)
    assert event.changes["threshold_ms"] == 6000 and slo.objective == "95 % of answered calls under 6 s"


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"target_percent": "100"}, "target_percent", "leaves no error budget"),
    ({"target_percent": "ninety"}, "target_percent", "A percentage such as 99.5."),
    ({"target_percent": "99.1234"}, "target_percent", "At most three decimals"),
    ({"threshold_ms": ""}, "threshold_ms", "A latency SLO needs a threshold"),
    ({"window_days": "365"}, "window_days", "from 1 to 90"),
])
def test_bad_input_is_answered_next_to_the_field_and_nothing_is_written(client_for, owner, use_case, change, field,
                                                                         message):
    response = client_for(owner).post(f"/slos/use-cases/{use_case.pk}/new/", {**GOOD, **change})
    assert response.status_code == 400
    assert any(message in e for e in response.context["form"].errors[field])
    assert not Slo.objects.exists() and not AuditEvent.objects.filter(action__startswith="slo.").exists()


def test_the_same_objective_twice_is_refused(client_for, owner, latency):
    response = client_for(owner).post(f"/slos/use-cases/{latency.use_case_id}/new/", GOOD)
    assert response.status_code == 400
    assert "already has that objective" in response.content.decode()


def test_an_engineer_edits_and_a_viewer_may_not(client_for, engineer, viewer, availability):
    url = f"/slos/{availability.pk}/edit/"
    assert client_for(viewer).post(url, {**GOOD, "kind": "availability", "threshold_ms": ""}).status_code == 403
    response = client_for(engineer).post(url, {**GOOD, "kind": "availability", "threshold_ms": "",
                                               "target_percent": "99.9", "open_incident": "on"})
    assert response.status_code == 302
    availability.refresh_from_db()
    assert (str(availability.target_percent), availability.open_incident) == ("99.900", True)
    event = AuditEvent.objects.get(action="slo.update")
    assert event.changes["target_percent"] == ["99.500", "99.900"] and event.actor_user == engineer


def test_the_use_case_page_shows_the_burn_the_alert_and_its_chart(client_for, viewer, availability, use_case):
    put(use_case, timedelta(days=3), requests=5000)
    put(use_case, timedelta(minutes=2), requests=1000, bad=200)
    slos_evaluate(now=NOW)

    page = client_for(viewer).get(f"/slos/use-cases/{use_case.pk}/").content.decode()

    assert "Burning fast (page)" in page and "Fast burn" in page
    assert "data-chart" in page and "Define an SLO" not in page


def test_the_api_lists_slos_and_a_use_cases_alerts(client, token_for, viewer, outsider, availability, use_case):
    put(use_case, timedelta(minutes=2), requests=1000, bad=200)
    slos_evaluate(now=NOW)
    _token, secret = token_for(viewer, use_case.team)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

    rows = client.get("/api/v1/slos", **auth).json()
    one = client.get(f"/api/v1/use-cases/{use_case.pk}/slos", **auth).json()

    assert [(r["id"], r["health"]) for r in rows] == [(availability.pk, "page")]
    assert {a["pair"] for a in one["alerts"]} == {"fast", "slow"}
    _token, other = token_for(outsider, outsider.memberships.first().team)
    assert client.get(f"/api/v1/use-cases/{use_case.pk}/slos", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    assert client.get("/api/v1/slos", HTTP_AUTHORIZATION=f"Bearer {other}").json() == []
    assert client.get("/api/v1/slos").status_code == 401


def test_the_use_case_page_shows_its_slos_and_links_to_them(client_for, viewer, availability, use_case):
    page = client_for(viewer).get(use_case.get_absolute_url()).content.decode()
    assert availability.objective in page and f"/slos/use-cases/{use_case.pk}/" in page


def test_a_new_slo_is_evaluated_as_soon_as_it_is_saved(client_for, owner, use_case, django_capture_on_commit_callbacks):
    put(use_case, timedelta(hours=2), requests=1000, answered=1000, slow={6000: 10})
    with django_capture_on_commit_callbacks(execute=True):
        client_for(owner).post(f"/slos/use-cases/{use_case.pk}/new/", GOOD)
    slo = Slo.objects.get()
    assert slo.evaluated_at is not None and slo.valid_events == 1000 and slo.bad_events == 10
