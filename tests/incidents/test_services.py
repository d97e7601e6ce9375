"""Declaring and updating an incident: who may, what is checked, one audit event and one timeline line per change,
and who is told (Sev1/Sev2: the commander and the owning team, inbox + e-mail; Sev3/Sev4: the commander's inbox)."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.audit.models import AuditEvent
from apps.incidents import services
from apps.incidents.models import Incident, SeverityDefinition
from apps.notifications.models import Notification
from apps.notifications.waiting import waiting_for


def _audit(incident, action):
    return AuditEvent.objects.filter(object_type="incidents.incident", object_id=str(incident.pk), action=action)


def test_an_engineer_declares_a_sev2_and_the_team_is_paged(declare, engineer, owner, viewer, team):
    incident = declare(summary="Refund windows are quoted as 60 days", features="refund-bot, faq",
                       near_miss=False)
    assert incident.commander == engineer and incident.team == team and incident.features == ["refund-bot", "faq"]
    assert _audit(incident, "incident.declare").count() == 1
    assert incident.timeline.get().kind == "declared"
    paged = Notification.objects.filter(kind="incident", link=incident.get_absolute_url())
    assert set(paged.values_list("user__username", flat=True)) == {engineer.username, owner.username,
                                                                     viewer.username}


def test_a_sev4_tells_only_the_commander_in_the_inbox(declare, engineer, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        incident = declare(severity=4)
    assert list(Notification.objects.filter(kind="incident").values_list("user", flat=True)) == [engineer.pk]
    assert callbacks == []  # no e-mail queued
    assert incident.get_severity_display() == "Sev4"


def test_raising_the_severity_to_sev1_pages_the_team(declare, engineer, owner):
    incident = declare(severity=3)
    services.incident_update(incident=incident, actor=engineer, severity=1)
    assert Notification.objects.filter(kind="incident", user=owner, title__startswith="Sev1").exists()
    assert _audit(incident, "incident.update").get().changes["severity"] == [3, 1]


@pytest.mark.parametrize("who", ["viewer", "outsider", "nobody"])
def test_viewers_and_outsiders_may_not_declare(team, who, request):
    with pytest.raises(PermissionDenied):
        services.incident_declare(actor=request.getfixturevalue(who), team=team, title="x", kind="other", severity=3)
    assert not Incident.objects.exists()


def test_a_council_member_may_declare_for_any_team(team, council_member):
    incident = services.incident_declare(actor=council_member, team=team, title="Leaked e-mails in answers",
                                         kind="data_exposure", severity=1)
    assert incident.commander == council_member


def test_bad_input_names_each_field_and_writes_nothing(team, engineer):
    with pytest.raises(ValidationError) as caught:
        services.incident_declare(actor=engineer, team=team, title="  ", kind="meteor", severity=7,
                                  use_cases=[999_999], features=["x" * 300])
    assert set(caught.value.message_dict) == {"title", "kind", "severity", "use_cases", "features"}
    assert not Incident.objects.exists() and not AuditEvent.objects.exists()


def test_acknowledging_is_recorded_once(incident, engineer, viewer):
    assert incident.unacknowledged
    with pytest.raises(PermissionDenied):
        services.incident_acknowledge(incident=incident, actor=viewer)
    services.incident_acknowledge(incident=incident, actor=engineer)
    services.incident_acknowledge(incident=incident, actor=engineer)
    incident.refresh_from_db()
    assert not incident.unacknowledged and incident.acknowledged_by == engineer
    assert _audit(incident, "incident.acknowledge").count() == 1


def test_notes_go_on_the_timeline_and_viewers_only_read(incident, engineer, viewer):
    with pytest.raises(PermissionDenied):
        services.note_add(incident=incident, actor=viewer, text="I think it is the model")
    with pytest.raises(ValidationError):
        services.note_add(incident=incident, actor=engineer, text="   ")
    services.note_add(incident=incident, actor=engineer, text="Rolled back prompt v7 in staging")
    assert incident.timeline.filter(kind="note").get().text == "Rolled back prompt v7 in staging"
    assert _audit(incident, "incident.note").count() == 1


def test_an_engineer_of_an_affected_team_may_update_one_of_another_team(declare, other_team, outsider):
    incident = declare(teams=[other_team])
    services.incident_update(incident=incident, actor=outsider, customer_impact="Search answers wrong too")
    incident.refresh_from_db()
    assert incident.customer_impact == "Search answers wrong too"


def test_the_severity_levels_are_defined_and_editable(db):
    levels = SeverityDefinition.objects.order_by("level")
    assert [d.level for d in levels] == [1, 2, 3, 4] and all(d.summary for d in levels)


def test_unacknowledged_incidents_wait_on_the_owning_team_until_acknowledged(incident, owner, engineer, outsider):
    def waiting(user):
        return [w.count for w in waiting_for(user) if w.key == "incidents.unacknowledged"]

    assert waiting(owner) == [1] and waiting(engineer) == [1] and waiting(outsider) == []
    services.incident_acknowledge(incident=incident, actor=engineer)
    assert waiting(owner) == []


def test_a_new_commander_is_told(incident, engineer, owner):
    services.incident_update(incident=incident, actor=engineer, commander=owner.pk)
    incident.refresh_from_db()
    assert incident.commander == owner
    assert Notification.objects.filter(user=owner, title__startswith="You command").count() == 1
