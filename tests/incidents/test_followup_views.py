"""The review and Art. 73 pages: who sees them, who may write or sign off (403 otherwise; another team's incident
is a 404), and bad input comes back on the page with nothing changed."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.incidents import postmortems, services
from apps.incidents.models import ActionItem, PostIncidentReview, Status


@pytest.fixture
def resolved(incident, engineer):
    return services.incident_move(incident=incident, actor=engineer, to=Status.RESOLVED)


@pytest.mark.parametrize("who, status", [("engineer", 200), ("viewer", 200), ("council_member", 200),
                                         ("outsider", 404), ("nobody", 404)])
def test_who_sees_the_review_page(incident, who, status, request, client_for):
    response = client_for(request.getfixturevalue(who)).get(reverse("incidents:review", args=[incident.pk]))
    assert response.status_code == status


def test_anonymous_people_are_sent_to_sign_in(incident, client):
    assert client.get(reverse("incidents:review", args=[incident.pk])).status_code == 302


def test_the_review_form_shows_errors_where_the_user_looks(incident, engineer, client_for):
    client = client_for(engineer)
    response = client.post(reverse("incidents:review_save", args=[incident.pk]),
                           {"summary": "ok", "regression_escape": "on", "release_ref": ""})
    assert response.status_code == 400 and "names the release" in response.content.decode()
    assert not PostIncidentReview.objects.exists()
    response = client.post(reverse("incidents:action_add", args=[incident.pk]),
                           {"title": "Alert on stale index", "owner": str(engineer.pk),
                            "due_date": (timezone.localdate() - timedelta(days=2)).isoformat()})
    assert response.status_code == 400 and "in the past" in response.content.decode()
    assert not ActionItem.objects.exists()


@pytest.mark.parametrize("who, status", [("viewer", 403), ("owner", 403), ("outsider", 404)])
def test_who_may_not_sign_off_through_the_page(resolved, engineer, who, status, request, client_for):
    postmortems.review_save(incident=resolved, actor=engineer, summary="s", runbook_followed="yes")
    postmortems.root_cause_add(incident=resolved, actor=engineer, category="prompt", description="d")
    response = client_for(request.getfixturevalue(who)).post(reverse("incidents:review_sign_off", args=[resolved.pk]))
    assert response.status_code == status
    resolved.refresh_from_db()
    assert resolved.status == Status.RESOLVED


def test_the_commander_signs_off_through_the_page(resolved, engineer, client_for):
    client = client_for(engineer)
    early = client.post(reverse("incidents:review_sign_off", args=[resolved.pk]), follow=True)
    assert "Name at least one root cause." in early.content.decode()
    client.post(reverse("incidents:review_save", args=[resolved.pk]),
                {"summary": "Stale index", "runbook_followed": "no", "runbook_changes": "Add the index check"})
    client.post(reverse("incidents:root_cause_add", args=[resolved.pk]),
                {"category": "monitoring", "description": "No alert on index age"})
    done = client.post(reverse("incidents:review_sign_off", args=[resolved.pk]))
    assert done.status_code == 302
    resolved.refresh_from_db()
    assert resolved.status == Status.REVIEW_DONE
    page = client.get(reverse("incidents:review", args=[resolved.pk])).content.decode()
    assert "Signed off" in page and 'data-testid="review-form"' not in page


def test_the_art73_page_is_written_by_the_team_and_read_by_viewers(incident, engineer, viewer, client_for):
    url = reverse("incidents:art73", args=[incident.pk])
    assert client_for(viewer).get(url).status_code == 200
    assert client_for(viewer).post(url, {"category": "death"}).status_code == 403
    bad = client_for(engineer).post(url, {"category": "death", "aware_at": "not a date"})
    assert bad.status_code == 400
    ok = client_for(engineer).post(url, {"category": "death", "eu_users": "on", "member_states": "DE"})
    assert ok.status_code == 302 and incident.regulatory.category == "death"


def test_odd_query_values_are_a_message_or_a_404_never_a_500(engineer, council_member, client_for):
    huge = str(2**70)
    metrics = client_for(engineer).get(reverse("incidents:metrics"), {"use_case": huge, "since": "yesterday"})
    assert metrics.status_code == 200 and metrics.context["form"].errors.keys() == {"use_case", "since"}
    edit = client_for(council_member).get(reverse("incidents:runbook_edit"), {"use_case": huge, "kind": "other"})
    assert edit.status_code == 404
