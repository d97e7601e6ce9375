"""/api/v1/incidents: declare, list, get, update, move, note, acknowledge, apply and undo a mitigation, with the
same rules as the pages (a read token reads, a write token of an engineer writes) and the one error body."""

from apps.gateway.services import gateway_key_create
from apps.incidents.models import Incident, Mitigation
from portal.api import api


def test_every_operation_is_in_the_openapi_schema():
    paths = api.get_openapi_schema()["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/incidents"])
    assert {"get", "patch"} <= set(paths["/api/v1/incidents/{incident_id}"])
    for tail in ("status", "notes", "acknowledge", "mitigations", "mitigations/{mitigation_id}/undo"):
        assert "post" in paths[f"/api/v1/incidents/{{incident_id}}/{tail}"]
    # after the incident (apps/incidents/followup_api.py): the review, runbooks, Art. 73
    base = "/api/v1/incidents/{incident_id}"
    assert {"get", "patch"} <= set(paths[f"{base}/review"])
    for tail in ("review/root-causes", "review/action-items", "review/action-items/{item_id}/status",
                 "review/sign-off"):
        assert "post" in paths[f"{base}/{tail}"]
    assert "delete" in paths[f"{base}/review/root-causes/{{cause_id}}"]
    assert "get" in paths[f"{base}/art73"]
    assert {"get", "put"} <= set(paths["/api/v1/incidents/runbooks"])
    assert "get" in paths["/api/v1/incidents/runbooks/{runbook_id}"]


def test_a_script_runs_an_incident_from_declare_to_resolve(write, read, team, owner, engineer):
    key = gateway_key_create(team=team, actor=owner, name="refund-bot", feature="refund-bot").key
    declared = write.post("/api/v1/incidents", {"team": team.slug, "title": "Refund bot quotes 60 days",
                                                "kind": "incorrect_outputs", "severity": 2,
                                                "features": ["refund-bot"]}, content_type="application/json")
    assert declared.status_code == 201, declared.content
    incident = declared.json()
    assert incident["commander"] == engineer.username and incident["acknowledged"] is False
    base = f"/api/v1/incidents/{incident['id']}"

    assert write.post(f"{base}/acknowledge").json()["acknowledged"] is True
    applied = write.post(f"{base}/mitigations", {"kind": "feature_off",
                                                 "target": {"scope": "key", "key_id": key.pk},
                                                 "params": {"message": "Paused."}}, content_type="application/json")
    assert applied.status_code == 201, applied.content
    assert applied.json()["active"] is True
    assert write.post(f"{base}/notes", {"text": "Switched the key off"},
                      content_type="application/json").status_code == 201
    undone = write.post(f"{base}/mitigations/{applied.json()['id']}/undo")
    assert undone.status_code == 200 and undone.json()["active"] is False
    assert write.patch(base, {"customer_impact": "Some refunds were refused"},
                       content_type="application/json").json()["customer_impact"] == "Some refunds were refused"
    resolved = write.post(f"{base}/status", {"to": "resolved", "note": "prompt fixed"},
                          content_type="application/json")
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"  # the engineer commands it

    got = read.get(base).json()
    assert [e["kind"] for e in got["timeline"]] == ["declared", "ack", "mitigation", "note", "mitigation_undone",
                                                    "update", "status"]
    assert [row["id"] for row in read.get("/api/v1/incidents?status=resolved").json()] == [incident["id"]]


def test_a_read_token_reads_and_may_not_write(read, team, declare):
    incident = declare()
    assert read.get(f"/api/v1/incidents/{incident.pk}").status_code == 200
    refused = read.post(f"/api/v1/incidents/{incident.pk}/notes", {"text": "hi"}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["detail"]
    assert read.post("/api/v1/incidents", {"team": team.slug, "title": "x", "kind": "other", "severity": 3},
                     content_type="application/json").status_code == 403
    assert not incident.timeline.filter(kind="note").exists()


def test_bad_input_is_a_422_naming_each_field(write, team):
    answer = write.post("/api/v1/incidents", {"team": team.slug, "title": "", "kind": "meteor", "severity": 9,
                                              "responders": [2**70]}, content_type="application/json")
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json()["errors"]} == {"title", "kind", "severity", "responders"}
    assert not Incident.objects.exists()


def test_a_bad_mitigation_is_a_422_and_switches_nothing(write, declare):
    incident = declare()
    answer = write.post(f"/api/v1/incidents/{incident.pk}/mitigations",
                        {"kind": "feature_off", "target": {"scope": "key", "key_id": 2**80}},
                        content_type="application/json")
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "target"
    assert not Mitigation.objects.exists()


def test_an_incident_of_another_team_is_a_404(bearer, outsider, other_team, token_for, declare):
    incident = declare()
    stranger = bearer(token_for(outsider, other_team, "write")[1])
    assert stranger.get(f"/api/v1/incidents/{incident.pk}").status_code == 404
    assert stranger.get("/api/v1/incidents").json() == []
