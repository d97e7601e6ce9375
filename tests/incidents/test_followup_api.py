"""/api/v1/incidents/{id}/review, /runbooks and /{id}/art73: what the pages do, for scripts and paging tools —
the same services and rules (a read token reads, an engineer's write token writes the review, only the
commander signs off), one audit event per write, and the one error body naming the field at fault."""

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.incidents import postmortems, services
from apps.incidents.models import ActionItem, Runbook, Status
from apps.reviews.models import UseCase

JSON = "application/json"



def _actions(incident_or_runbook):
    return list(AuditEvent.objects.filter(object_id=str(incident_or_runbook.pk), action__startswith="incident.")
                .order_by("id").values_list("action", flat=True))


def test_a_script_writes_the_review_and_the_commander_signs_it_off(write, read, declare, owner, engineer):
    incident = declare()
    services.incident_move(incident=incident, actor=engineer, to=Status.RESOLVED)
    base = f"/api/v1/incidents/{incident.pk}/review"
    assert read.get(base).json()["exists"] is False

    saved = write.patch(base, {"summary": "Stale refund policy in the index", "runbook_followed": "partly",
                               "contributing_factors": ["no freshness alert"]}, content_type=JSON)
    assert saved.status_code == 200, saved.content
    cause = write.post(f"{base}/root-causes", {"category": "monitoring", "description": "No alert on staleness"},
                       content_type=JSON)
    assert cause.status_code == 201 and cause.json()["socio_technical"] is True
    due = (timezone.localdate() + timedelta(days=7)).isoformat()
    item = write.post(f"{base}/action-items", {"title": "Add a freshness alert", "owner": owner.pk, "due_date": due},
                      content_type=JSON)
    assert item.status_code == 201 and item.json()["owner"] == owner.username
    moved = write.post(f"{base}/action-items/{item.json()['id']}/status", {"status": "in_progress"},
                       content_type=JSON)
    assert moved.status_code == 200 and moved.json()["status"] == "in_progress"
    signed = write.post(f"{base}/sign-off")  # the engineer declared it: the commander

    assert signed.status_code == 200, signed.content
    got = read.get(base).json()
    assert got["locked"] is True and got["signed_off_by"] == engineer.username and got["sign_off_problems"] == []
    assert got["contributing_factors"] == ["no freshness alert"] and len(got["root_causes"]) == 1
    assert [a for a in _actions(incident) if a.startswith("incident.review") or a.startswith("incident.action")] \
        == ["incident.review_save", "incident.review_root_cause_add", "incident.action_add",
            "incident.action_status", "incident.review_sign_off"]
    locked = write.patch(base, {"summary": "changed"}, content_type=JSON)
    assert locked.status_code == 422 and "reopen" in locked.json()["detail"].lower() + str(locked.json()["errors"])


def test_who_may_not_write_the_review(bearer, read, declare, engineer, owner, viewer, outsider, other_team, token_for,
                                      team):
    incident = declare()
    base = f"/api/v1/incidents/{incident.pk}/review"
    refused = read.patch(base, {"summary": "x"}, content_type=JSON)
    assert refused.status_code == 403 and refused.json()["detail"]
    stranger = bearer(token_for(outsider, other_team, "write")[1])
    assert stranger.get(base).status_code == 404
    assert stranger.patch(base, {"summary": "x"}, content_type=JSON).status_code == 404
    services.incident_move(incident=incident, actor=engineer, to=Status.RESOLVED)
    not_commander = bearer(token_for(owner, team, "write")[1])  # may write the review, not sign it off
    assert not_commander.patch(base, {"summary": "ok"}, content_type=JSON).status_code == 200
    assert not_commander.post(f"{base}/sign-off").status_code == 403
    assert not [a for a in _actions(incident) if a == "incident.review_sign_off"]
    item = postmortems.action_item_add(incident=incident, actor=engineer, title="Add an alert", owner=viewer.pk,
                                       due_date=timezone.localdate())
    status = f"{base}/action-items/{item.pk}/status"
    assert read.post(status, {"status": "done"}, content_type=JSON).status_code == 403  # its owner, a read token
    session = Client()
    session.force_login(viewer)  # the owner in the browser's session may (as on the review page)
    assert session.post(status, {"status": "done"}, content_type=JSON).json()["status"] == "done"


def test_bad_review_input_is_a_422_naming_each_field_and_changes_nothing(write, declare, nobody):
    incident = declare()
    base = f"/api/v1/incidents/{incident.pk}/review"
    bad = write.patch(base, {"runbook_followed": "maybe", "regression_escape": True}, content_type=JSON)
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"runbook_followed", "release_ref"}
    cause = write.post(f"{base}/root-causes", {"category": "weather", "description": " "}, content_type=JSON)
    assert cause.status_code == 422 and {e["field"] for e in cause.json()["errors"]} == {"category", "description"}
    past = (timezone.localdate() - timedelta(days=1)).isoformat()
    item = write.post(f"{base}/action-items", {"title": "x", "owner": nobody.pk, "due_date": past}, content_type=JSON)
    assert item.status_code == 422 and {e["field"] for e in item.json()["errors"]} == {"owner", "due_date"}
    assert write.post(f"{base}/action-items/{2**40}/status", {"status": "done"}, content_type=JSON).status_code == 404
    assert write.delete(f"{base}/root-causes/{2**40}").status_code == 404
    early = write.post(f"{base}/sign-off")
    assert early.status_code == 422 and "not resolved" in str(early.json())
    assert write.get(base).json()["exists"] is False and not ActionItem.objects.exists()


def test_runbooks_council_writes_the_portals_a_team_its_use_cases(write, read, team, owner, council_member,
                                                                 token_for):
    refused = write.put("/api/v1/incidents/runbooks", {"kind": "provider_outage", "title": "Outage",
                                                        "body": "1. Fall back."}, content_type=JSON)
    assert refused.status_code == 403 and not Runbook.objects.exists()
    council = Client()
    council.force_login(council_member)
    portal_wide = council.put("/api/v1/incidents/runbooks", {"kind": "provider_outage", "title": "Outage",
                                                              "body": "1. **Fall back**."}, content_type=JSON)
    assert portal_wide.status_code == 200, portal_wide.content
    use_case = UseCase.objects.create(team=team, title="Refund helper", purpose="Refunds", business_owner=owner)
    own = write.put("/api/v1/incidents/runbooks", {"kind": "provider_outage", "use_case": use_case.pk,
                                                    "title": "Refund helper outage", "body": "Switch it off."},
                    content_type=JSON)
    assert own.status_code == 200 and own.json()["use_case"] == use_case.pk
    replaced = write.put("/api/v1/incidents/runbooks", {"kind": "provider_outage", "use_case": use_case.pk,
                                                         "title": "Refund helper outage", "body": "Fall back."},
                         content_type=JSON)
    assert replaced.json()["id"] == own.json()["id"] and Runbook.objects.count() == 2
    listed = read.get("/api/v1/incidents/runbooks?kind=provider_outage").json()
    assert sorted(r["title"] for r in listed) == ["Outage", "Refund helper outage"]
    one = read.get(f"/api/v1/incidents/runbooks/{portal_wide.json()['id']}").json()
    assert "<strong>Fall back</strong>" in one["html"]
    assert AuditEvent.objects.filter(action="incident.runbook_save").count() == 3
    assert read.put("/api/v1/incidents/runbooks", {"kind": "other", "use_case": use_case.pk, "title": "x",
                                                   "body": "y"}, content_type=JSON).status_code == 403
    bad = write.put("/api/v1/incidents/runbooks", {"kind": "meteor", "use_case": use_case.pk, "title": "",
                                                    "body": "y"}, content_type=JSON)
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"kind", "title"}


def test_the_art73_report_reads_like_the_pages_json_export(bearer, read, declare, outsider, other_team, token_for):
    incident = declare()
    got = read.get(f"/api/v1/incidents/{incident.pk}/art73")
    assert got.status_code == 200
    body = got.json()
    assert body["applies"] is False and body["deadline"] is None
    assert body["report"]["incident"]["reference"] == incident.reference
    assert body["report"]["report"]["kind"] == "initial"
    stranger = bearer(token_for(outsider, other_team, "read")[1])
    assert stranger.get(f"/api/v1/incidents/{incident.pk}/art73").status_code == 404


def test_the_art73_assessment_is_written_through_the_api_as_on_the_page(write, read, bearer, declare, viewer,
                                                                         outsider, other_team, token_for):
    incident = declare()
    base = f"/api/v1/incidents/{incident.pk}/art73"
    aware = (timezone.now() - timedelta(hours=2)).isoformat()
    saved = write.patch(base, {"eu_users": True, "category": "fundamental_rights", "aware_at": aware,
                               "member_states": ["de", "FR"], "causal_link": "Stale policy in the index.",
                               "reporter": "ACME GmbH, dpo@acme.example"}, content_type=JSON)
    assert saved.status_code == 200
    report = saved.json()["report"]
    assert (report["incident"]["member_states"], report["incident"]["eu_users_affected"]) == (["DE", "FR"], True)
    assert report["incident"]["serious_category"].startswith("Infringement of Union law")
    assert report["causal_link"] == "Stale policy in the index." and report["reporter"]["organisation_and_contact"]
    assert _actions(incident)[-1] == "incident.art73_assessment"
    only = write.patch(base, {"report_reference": "MSA-2026-0042"}, content_type=JSON).json()["report"]
    assert only["report"]["reference"] == "MSA-2026-0042" and only["incident"]["member_states"] == ["DE", "FR"]

    events = len(_actions(incident))
    bad = write.patch(base, {"category": "mild", "aware_at": (timezone.now() + timedelta(days=2)).isoformat(),
                             "member_states": ["x" * 500]}, content_type=JSON)
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} >= {"category", "aware_at", "member_states"}
    assert write.patch(base, {"eu_users": "perhaps"}, content_type=JSON).status_code == 422
    assert len(_actions(incident)) == events and read.get(base).json()["report"]["incident"]["serious_category"]

    assert read.patch(base, {"eu_users": False}, content_type=JSON).status_code == 403  # a read token reads
    session = Client()
    session.force_login(viewer)  # a viewer of the team (a product manager) reads it, and may not assess it
    assert session.patch(base, {"eu_users": False}, content_type=JSON).status_code == 403
    assert bearer(token_for(outsider, other_team, "write")[1]).patch(base, {"eu_users": False},
                                                                     content_type=JSON).status_code == 404
    assert read.get(base).json()["report"]["incident"]["eu_users_affected"] is True  # nothing changed
