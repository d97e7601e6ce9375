"""The experiments API (/api/v1/experiments): create, start, kill, get and list through the same services and
permission checks as the pages; every write audited with the token as actor; bad input answered with the one
error body (ADR 0092) naming the field, nothing written."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.experiments.models import Experiment, Status
from tests.experiments.conftest import ARMS

URL = "/api/v1/experiments"
BODY = {"prompt": "support/triage-summary", "name": "Bullet summaries", "arms": ARMS, "min_outcomes": 20}


@pytest.fixture
def api(client):
    def call(method: str, url: str, secret: str, body: dict | None = None):
        send = getattr(client, method)
        if method == "get":
            return send(url, HTTP_AUTHORIZATION=f"Bearer {secret}")
        return send(url, body or {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")

    return call


def test_an_engineer_creates_starts_reads_and_kills_an_experiment_with_a_write_token_each_write_audited(
        api, prompt, engineer, viewer, team, token_for):
    token, write = token_for(engineer, team, scope="write")
    created = api("post", URL, write, BODY)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["status"], body["unit"], [a["key"] for a in body["arms"]]) == ("draft", "user",
                                                                                ["control", "candidate"])
    pk = body["id"]
    assert api("post", f"{URL}/{pk}/start", write).json()["status"] == "running"
    _token, read = token_for(viewer, team)
    got = api("get", f"{URL}/{pk}", read).json()
    assert got["comparison"]["unit"] == "user" and got["comparison"]["trustworthy"]
    assert [row["id"] for row in api("get", f"{URL}?status=running", read).json()] == [pk]
    assert api("post", f"{URL}/{pk}/kill", write, {"reason": "Leaks ticket ids."}).json()["status"] == "killed"
    events = AuditEvent.objects.filter(object_type="experiments.experiment", object_id=str(pk)).order_by("id")
    assert [(e.action, e.actor_token_id) for e in events] == [
        ("experiment.create", token.pk), ("experiment.start", token.pk), ("experiment.kill", token.pk)]


@pytest.mark.parametrize(("who", "scope", "status"), [
    ("engineer", "read", 403),  # the token's scope
    ("viewer", "read", 403),  # the role: viewers read, never write
    ("owner", "write", 201),
    ("outsider", "write", 422),  # another team's engineer does not see the prompt
])
def test_who_may_create_an_experiment_through_the_api(api, prompt, request, token_for, who, scope, status):
    user = request.getfixturevalue(who)
    _token, secret = token_for(user, user.memberships.get().team, scope=scope)
    answer = api("post", URL, secret, BODY)
    assert answer.status_code == status and Experiment.objects.count() == (1 if status == 201 else 0)
    if status != 201:
        assert answer.json()["detail"] and set(answer.json()) >= {"detail", "errors"}


def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(api, prompt, engineer, team, token_for):
    _token, write = token_for(engineer, team, scope="write")
    cases = [
        ({"arms": [{**ARMS[0], "weight": 60}, {**ARMS[1], "weight": 30}]}, "arms", "add up to 90 %"),
        ({"arms": [ARMS[0], {**ARMS[1], "label": "canary"}]}, "arms", "no label 'canary'"),
        ({"prompt": "support/nothing-here"}, "prompt", "No prompt named 'support/nothing-here'"),
        ({"unit": "session"}, "unit", "end user or by tenant"),
        ({"mde": 2}, "mde", "from 0.005 to 0.5"),
    ]
    for change, field, message in cases:
        answer = api("post", URL, write, {**BODY, **change})
        assert answer.status_code == 422, change
        assert any(e["field"] == field and message in e["message"] for e in answer.json()["errors"]), answer.json()
    assert api("post", URL, write, {"name": "no prompt, no arms"}).status_code == 422
    assert not Experiment.objects.exists()

    first, second = (api("post", URL, write, BODY).json()["id"] for _ in range(2))
    api("post", f"{URL}/{first}/start", write)
    refused = api("post", f"{URL}/{second}/start", write)
    assert refused.status_code == 422
    assert "Another experiment on support/triage-summary is running or paused" in refused.json()["errors"][0]["message"]
    assert Experiment.objects.get(pk=second).status == Status.DRAFT
    assert api("post", f"{URL}/{first}/kill", write).status_code == 422  # a kill needs a reason
    nothing = api("post", f"{URL}/{first}/acknowledge-srm", write, {"reason": "looked at it"})
    assert nothing.status_code == 422 and "no sample ratio mismatch" in nothing.json()["errors"][0]["message"]
    assert api("post", f"{URL}/{first}/explode", write).status_code == 422
