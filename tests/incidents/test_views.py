"""The incident pages: list with filters, the declare form (bad input: messages, nothing written), the incident
page with its timeline, htmx status actions and mitigations, and "what is switched now"."""

import pytest
from django.urls import reverse

from apps.gateway.services import gateway_key_create
from apps.incidents.models import Incident, Mitigation

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def key(team, owner):
    return gateway_key_create(team=team, actor=owner, name="refund-bot", feature="refund-bot").key


def test_the_list_filters_and_shows_unacknowledged(client_for, engineer, declare):
    open_one = declare(title="Refund bot wrong")
    declare(title="Search slow", severity=4)
    page = client_for(engineer).get(reverse("incidents:list"), {"severity": "2"})
    assert page.status_code == 200
    rows = list(page.context["page"].object_list)
    assert rows == [open_one]
    assert b"unacknowledged" in page.content
    fragment = client_for(engineer).get(reverse("incidents:list"), {"q": "search"}, **HTMX)
    assert b"Search slow" in fragment.content and b"<html" not in fragment.content


def test_declaring_from_the_form_opens_the_incident(client_for, engineer, team):
    answer = client_for(engineer).post(reverse("incidents:declare"), {
        "team": team.slug, "title": "Answers leak e-mail addresses", "kind": "data_exposure", "severity": "1",
        "features": "refund-bot", "use_cases": ""})
    incident = Incident.objects.get()
    assert answer.status_code == 302 and answer["Location"] == incident.get_absolute_url()
    assert incident.features == ["refund-bot"] and incident.severity == 1


def test_bad_input_on_the_form_shows_messages_and_writes_nothing(client_for, engineer, team):
    answer = client_for(engineer).post(reverse("incidents:declare"), {
        "team": team.slug, "title": "", "kind": "data_exposure", "severity": "1", "use_cases": "12, abc"})
    assert answer.status_code == 400
    assert set(answer.context["form"].errors) == {"title", "use_cases"}
    assert not Incident.objects.exists()
    unknown = client_for(engineer).post(reverse("incidents:declare"), {
        "team": team.slug, "title": "x", "kind": "other", "severity": "3", "use_cases": "999999"})
    assert unknown.status_code == 400 and b"No use case #999999" in unknown.content


def test_a_viewer_reads_the_page_but_has_no_buttons_and_may_not_declare(client_for, viewer, incident):
    page = client_for(viewer).get(incident.get_absolute_url())
    assert page.status_code == 200 and page.context["may_update"] is False and page.context["moves"] == []
    assert client_for(viewer).get(reverse("incidents:declare")).status_code == 403
    assert client_for(viewer).post(reverse("incidents:note", args=[incident.pk]), {"text": "x"}).status_code == 403


def test_an_outsider_does_not_see_the_incident(client_for, outsider, incident):
    assert client_for(outsider).get(incident.get_absolute_url()).status_code == 404


def test_status_actions_swap_the_live_fragment(client_for, engineer, incident):
    client = client_for(engineer)
    ack = client.post(reverse("incidents:acknowledge", args=[incident.pk]), **HTMX)
    assert ack.status_code == 200 and b"<html" not in ack.content and b"Acknowledged" in ack.content
    moved = client.post(reverse("incidents:move", args=[incident.pk]), {"to": "investigating"}, **HTMX)
    assert moved.status_code == 200 and b"Investigating" in moved.content
    wrong = client.post(reverse("incidents:move", args=[incident.pk]), {"to": "review_done"}, **HTMX)
    assert b"can move to" in wrong.content
    incident.refresh_from_db()
    assert incident.status == "investigating"


def test_feature_off_from_the_page_then_undo(client_for, engineer, incident, key):
    client = client_for(engineer)
    applied = client.post(reverse("incidents:mitigation_apply", args=[incident.pk]), {
        "kind": "feature_off", "scope": "key", "key_id": key.pk, "message": "Paused.", "expires_in_minutes": 60},
        **HTMX)
    assert applied.status_code == 200
    mitigation = Mitigation.objects.get()
    switched = client.get(reverse("incidents:switched"))
    assert list(switched.context["mitigations"]) == [mitigation] and b"refund-bot" in switched.content
    client.post(reverse("incidents:mitigation_undo", args=[incident.pk, mitigation.pk]))
    assert client.get(reverse("incidents:switched")).context["mitigations"] == []


def test_a_bad_mitigation_shows_the_message_by_the_field(client_for, engineer, incident):
    answer = client_for(engineer).post(reverse("incidents:mitigation_apply", args=[incident.pk]), {
        "kind": "rate_limit", "scope": "feature", "feature": "refund-bot"}, **HTMX)
    assert answer.status_code == 400
    assert "scope" in answer.context["mitigation_form"].errors
    assert not Mitigation.objects.exists()
