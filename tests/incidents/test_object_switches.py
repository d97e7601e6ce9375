"""Switches from the pages of the objects they act on (issue #15): the use case, prompt, gateway key and RAG
collection pages each load an "Incident switches" box (apps/incidents/object_views.py) that lists what acts on the
object now, applies a switch on an open incident or on one declared in the same form, and undoes it. Who may, who
may not; one audit event per change; bad input says what is wrong and changes nothing."""

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.gateway.services import gateway_key_create
from apps.incidents.models import Incident, Mitigation
from apps.llm.models import Model
from apps.llm.services import catalog_seed_local
from apps.prompts.content import Draft
from apps.prompts.services import prompt_create
from apps.rag.services import collection_create
from apps.reviews.models import State, UseCase, UseCasePrompt

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def use_case(team):
    return UseCase.objects.create(team=team, title="Refund helper", state=State.ACTIVE)


@pytest.fixture
def prompt(team, engineer):
    catalog_seed_local()
    return prompt_create(team=team, name="support/refund-policy-qa", kind="chat", actor=engineer,
                         commit_message="first", draft=Draft(kind="chat", config={"model": "local-extractive"},
                                                             messages=[{"role": "user", "content": "{{ q }}"}]))


def _url(name, scope, pk, *more):
    return reverse(f"incidents:{name}", args=[scope, pk, *more])


def _apply(client, scope, pk, **fields):
    data = {"kind": "feature_off", "message": "Refund answers are paused.", "expires_in_minutes": 60,
            "reason": "Wrong refund windows.", **fields}
    return client.post(_url("object_switch_apply", scope, pk), {k: v for k, v in data.items() if v is not None},
                       **HTMX)


def _actions():
    return list(AuditEvent.objects.filter(action__startswith="incident.").order_by("id")
                .values_list("action", flat=True))


def test_an_engineer_switches_a_use_case_off_from_its_page_and_undoes_it(client_for, engineer, incident, use_case):
    client = client_for(engineer)
    assert _url("object_switches", "use_case", use_case.pk) in client.get(use_case.get_absolute_url()).content.decode()
    box = client.get(_url("object_switches", "use_case", use_case.pk), **HTMX).content.decode()
    assert incident.reference in box and "Nothing is switched on this use case." in box
    before = _actions()

    applied = _apply(client, "use_case", use_case.pk, incident=incident.pk)
    assert applied.status_code == 200
    mitigation = incident.mitigations.get()
    assert (mitigation.kind, mitigation.target, mitigation.applied_by) == (
        "feature_off", {"scope": "use_case", "use_case_id": use_case.pk}, engineer)
    page = applied.content.decode()
    assert "Refund answers are paused." in page and "0 refused" in page  # what it did since it was applied
    assert _actions() == [*before, "incident.mitigation_apply"]

    undone = client.post(_url("object_switch_undo", "use_case", use_case.pk, mitigation.pk), **HTMX)
    mitigation.refresh_from_db()
    assert not mitigation.is_active and "Nothing is switched on this use case." in undone.content.decode()
    assert _actions() == [*before, "incident.mitigation_apply", "incident.mitigation_undo"]


def test_declaring_an_incident_in_the_same_form_declares_it_and_switches_together(client_for, engineer, use_case):
    response = _apply(client_for(engineer), "use_case", use_case.pk, incident="new", title="Refund bot quotes 60 days",
                      incident_kind="incorrect_outputs", severity=3)
    assert response.status_code == 200
    incident = Incident.objects.get()
    assert (incident.title, incident.severity, incident.commander) == ("Refund bot quotes 60 days", 3, engineer)
    assert list(incident.use_cases.all()) == [use_case] and incident.mitigations.get().kind == "feature_off"
    assert _actions() == ["incident.declare", "incident.mitigation_apply"]


@pytest.mark.parametrize(("fields", "says"), [
    ({"incident": "new", "title": ""}, "Give the new incident a title"),
    ({"incident": "new", "title": "Leak", "kind": "stricter_filters"}, "Raise at least one filter"),  # declared: no
    ({"kind": "rate_limit"}, "Select a valid choice"),  # not a switch of a use case
    ({"expires_in_minutes": 1}, "greater than or equal to 5"),
    ({"incident": "999999"}, "Select a valid choice"),  # no such open incident
])
def test_bad_input_says_what_is_wrong_and_changes_nothing(client_for, engineer, incident, use_case, fields, says):
    before = _actions()
    response = _apply(client_for(engineer), "use_case", use_case.pk, **{"incident": incident.pk, **fields})
    assert response.status_code == 400 and says in response.content.decode()
    assert Incident.objects.count() == 1 and not Mitigation.objects.exists() and _actions() == before


@pytest.mark.parametrize(("who", "may"), [
    ("engineer", True), ("council_member", True),
    ("viewer", False),  # a product manager of the team: sees the use case and its switches, flips nothing
    ("outsider", False),  # an engineer of another team
])
def test_who_may_switch_from_the_use_case_page(request, client_for, incident, use_case, who, may):
    response = _apply(client_for(request.getfixturevalue(who)), "use_case", use_case.pk, incident=incident.pk)
    assert incident.mitigations.exists() is may
    if not may:
        assert response.status_code in (403, 404) and _actions() == ["incident.declare"]


def test_a_viewer_named_responder_switches_but_may_not_declare(client_for, viewer, incident, use_case):
    client = client_for(viewer)
    box = client.get(_url("object_switches", "use_case", use_case.pk), **HTMX).content.decode()
    assert "Apply a switch" not in box
    incident.responders.add(viewer)
    box = client.get(_url("object_switches", "use_case", use_case.pk), **HTMX).content.decode()
    assert "Apply a switch" in box and "Declare a new incident" not in box
    assert _apply(client, "use_case", use_case.pk, incident=incident.pk).status_code == 200
    assert incident.mitigations.get().applied_by == viewer


def test_the_prompt_key_and_collection_pages_offer_the_switches_that_act_on_them(client_for, engineer, owner, team,
                                                                                  incident, prompt):
    key = gateway_key_create(team=team, actor=owner, name="refund-bot", feature="refund-bot",
                             requests_per_minute=600).key
    collection = collection_create(team=team, name="Handbook", embedding_model=Model.objects.get(name="local-minilm"),
                                   answer_model=Model.objects.get(name="local-extractive"), user=owner,
                                   retrieval={"mode": "bm25"})
    client = client_for(engineer)
    pages = [("prompt", prompt, reverse("prompts:detail", args=[prompt.name]), "Prompt rollback"),
             ("key", key, reverse("gateway:key_detail", args=[key.pk]), "Rate limit"),
             ("collection", collection, collection.get_absolute_url(), "Retrieval disabled")]
    for scope, obj, page, offered in pages:
        assert _url("object_switches", scope, obj.pk) in client.get(page).content.decode()
        assert offered in client.get(_url("object_switches", scope, obj.pk), **HTMX).content.decode()

    assert _apply(client, "key", key.pk, incident=incident.pk, kind="rate_limit", requests_per_minute=10)\
        .status_code == 200
    key.refresh_from_db()
    assert key.requests_per_minute == 10
    assert _apply(client, "collection", collection.pk, incident=incident.pk, kind="retrieval_disabled",
                  answer="refuse").status_code == 200
    assert _apply(client, "prompt", prompt.pk, incident=incident.pk, kind="stricter_filters",
                  guard_output="redact").status_code == 200
    assert sorted(incident.mitigations.values_list("target__scope", flat=True)) == ["collection", "key", "prompt"]
    # each shows on its own object's box, not on the others'
    box = client.get(_url("object_switches", "key", key.pk), **HTMX).content.decode()
    assert "limit 10 requests per minute" in box and "Retrieval disabled" not in box


def test_a_key_and_a_prompt_of_a_use_case_show_its_switch_and_undo_it_from_there(client_for, engineer, owner, team,
                                                                                   incident, use_case, prompt):
    UseCasePrompt.objects.create(use_case=use_case, prompt=prompt)
    key = gateway_key_create(team=team, actor=owner, name="refund-bot", feature="refund-bot",
                             use_case_id=use_case.pk).key
    client = client_for(engineer)
    _apply(client, "use_case", use_case.pk, incident=incident.pk)
    for scope, pk in (("key", key.pk), ("prompt", prompt.pk)):
        box = client.get(_url("object_switches", scope, pk), **HTMX).content.decode()
        assert "use case Refund helper" in box and "Refund answers are paused." in box
    mitigation = incident.mitigations.get()
    client.post(_url("object_switch_undo", "key", key.pk, mitigation.pk), **HTMX)
    mitigation.refresh_from_db()
    assert not mitigation.is_active


def test_an_object_the_reader_may_not_see_is_a_404(client_for, outsider, use_case):
    assert client_for(outsider).get(_url("object_switches", "use_case", use_case.pk)).status_code == 404
    assert client_for(outsider).get(_url("object_switches", "dataset", use_case.pk)).status_code == 404
