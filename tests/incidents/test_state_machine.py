"""The incident's status moves, one test per transition and role: engineers of its teams move it along, only the
commander (or a council member) resolves it or closes the review, viewers and outsiders never move it. Each move
leaves one audit event and one timeline line."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.accounts.models import Role
from apps.audit.models import AuditEvent
from apps.incidents import rules, services
from apps.incidents.models import Status
from tests.factories import IncidentFactory, MembershipFactory, UserFactory

MOVES = [(current, to) for current, targets in rules.TRANSITIONS.items() for to in targets]


@pytest.fixture
def people(team, engineer, viewer, council_member, outsider):
    colleague = UserFactory(username="cara-colleague")
    MembershipFactory(team=team, user=colleague, role=Role.ENGINEER)
    return {"commander": engineer, "engineer": colleague, "council": council_member, "viewer": viewer,
            "outsider": outsider}


def _allowed(role: str, to: str) -> bool:
    if role in ("viewer", "outsider"):
        return False
    if to in rules.CLOSING:
        return role in ("commander", "council")
    return True


@pytest.mark.parametrize("role", ["commander", "engineer", "council", "viewer", "outsider"])
@pytest.mark.parametrize(("current", "to"), MOVES)
def test_each_move_for_each_role(people, team, role, current, to):
    incident = IncidentFactory(team=team, commander=people["commander"], status=current)
    actor = people[role]
    if not _allowed(role, to):
        with pytest.raises(PermissionDenied):
            services.incident_move(incident=incident, actor=actor, to=to)
        incident.refresh_from_db()
        assert incident.status == current
        assert not AuditEvent.objects.filter(object_id=str(incident.pk)).exists()
        return
    services.incident_move(incident=incident, actor=actor, to=to, note="checked the ledger")
    incident.refresh_from_db()
    assert incident.status == to
    action = "incident.reopen" if rules.is_reopen(current, to) else "incident.status"
    event = AuditEvent.objects.get(object_type="incidents.incident", object_id=str(incident.pk))
    assert event.action == action and event.changes["status"] == [current, to]
    line = incident.timeline.get()
    assert "checked the ledger" in line.text and line.actor_label == actor.get_username()


def test_times_follow_the_status(team, engineer):
    incident = IncidentFactory(team=team, commander=engineer)
    services.incident_move(incident=incident, actor=engineer, to=Status.MITIGATED)
    incident.refresh_from_db()
    assert incident.mitigated_at is not None and incident.resolved_at is None
    services.incident_move(incident=incident, actor=engineer, to=Status.RESOLVED)
    incident.refresh_from_db()
    assert incident.resolved_at >= incident.mitigated_at
    services.incident_move(incident=incident, actor=engineer, to=Status.INVESTIGATING)  # reopen
    incident.refresh_from_db()
    assert incident.resolved_at is None and incident.status == Status.INVESTIGATING


@pytest.mark.parametrize(("current", "to"), [(Status.OPEN, Status.REVIEW_DONE), (Status.REVIEW_DONE, Status.RESOLVED),
                                             (Status.INVESTIGATING, Status.OPEN), (Status.OPEN, "closed")])
def test_a_move_not_in_the_table_is_refused_with_the_moves_that_exist(team, engineer, current, to):
    incident = IncidentFactory(team=team, commander=engineer, status=current)
    with pytest.raises(ValidationError) as caught:
        services.incident_move(incident=incident, actor=engineer, to=to)
    assert "can move to" in caught.value.message_dict["status"][0]
    incident.refresh_from_db()
    assert incident.status == current and not incident.timeline.exists()
