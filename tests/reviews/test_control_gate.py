"""Required controls gate activation: an approved use case waits until each required control is evidenced (a
condition covering it is met) or waived by the council with a reason; who may waive, and the audit trail."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.audit.models import AuditEvent
from apps.reviews import selectors, services
from apps.reviews.models import ControlWaiver, State
from tests.reviews.conftest import ELEVATED_INTERNAL


@pytest.fixture
def elevated(make_use_case):
    return make_use_case(ELEVATED_INTERNAL, submit=True, controls_cleared=False)


def test_an_approved_use_case_with_unevidenced_controls_is_not_activated(elevated, approve, security, privacy):
    use_case = approve(elevated, security, privacy)
    assert use_case.state == State.APPROVED and use_case.approved_at is None
    blockers = {row["key"] for row in selectors.activation_blockers(use_case)}
    assert blockers == set(use_case.required_controls) and blockers


def test_waiving_every_required_control_with_a_reason_activates_it_and_is_audited(elevated, approve, security,
                                                                                  privacy):
    use_case = approve(elevated, security, privacy)
    for key in use_case.required_controls:
        services.control_waive(use_case=use_case, user=privacy, control=key, reason="Internal pilot, 10 users.")
    use_case.refresh_from_db()
    assert use_case.state == State.ACTIVE and use_case.expires_at is not None
    events = AuditEvent.objects.filter(object_id=str(use_case.pk), action="use_case.control_waive")
    assert events.count() == len(use_case.required_controls)
    assert {e.changes["reason"] for e in events} == {"Internal pilot, 10 users."}
    assert all(row["status"] == "waived" for row in selectors.controls_status(use_case))


def test_a_control_evidenced_by_a_met_condition_no_longer_blocks(elevated, approve, security, privacy, engineer):
    use_case = approve(elevated, security, privacy)
    first, *rest = use_case.required_controls
    for key in rest:
        services.control_waive(use_case=use_case, user=security, control=key, reason="Covered by the platform.")
    use_case.refresh_from_db()
    assert use_case.state == State.APPROVED
    from datetime import date

    condition = services.condition_add(use_case=use_case, actor=security, title="Evidence", owner=engineer,
                                       due_date=date.today(), control=first)
    services.condition_evidence_submit(condition=condition, actor=engineer, url="https://wiki/evidence")
    services.condition_accept(condition=condition, user=security)
    use_case.refresh_from_db()
    assert use_case.state == State.ACTIVE


@pytest.mark.parametrize("who", ["engineer", "owner", "admin_user", "viewer"])
def test_only_the_council_waives(request, elevated, who):
    person = request.getfixturevalue(who)
    with pytest.raises(PermissionDenied):
        services.control_waive(use_case=elevated, user=person, control=elevated.required_controls[0], reason="x")
    assert not ControlWaiver.objects.exists()


def test_a_council_member_who_submitted_the_use_case_may_not_waive(make_use_case, seat_user, team):
    from apps.accounts.models import Membership, Role

    submitter = seat_user("sue-security", "security")
    Membership.objects.create(user=submitter, team=team, role=Role.ENGINEER)
    use_case = make_use_case(ELEVATED_INTERNAL, actor=submitter, submit=True, controls_cleared=False)
    with pytest.raises(PermissionDenied):
        services.control_waive(use_case=use_case, user=submitter, control=use_case.required_controls[0], reason="x")


def test_a_waiver_needs_a_reason_and_a_required_control(elevated, security):
    with pytest.raises(ValidationError) as exc:
        services.control_waive(use_case=elevated, user=security, control=elevated.required_controls[0], reason=" ")
    assert "reason" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.control_waive(use_case=elevated, user=security, control="not_a_control", reason="because")
    assert "control" in exc.value.message_dict
    assert not ControlWaiver.objects.exists()


def test_the_page_shows_what_blocks_activation_and_the_council_waives_from_it(client_for, elevated, approve,
                                                                              security, privacy, engineer):
    use_case = approve(elevated, security, privacy)
    team_page = client_for(engineer).get(f"/use-cases/{use_case.pk}/").content.decode()
    assert 'id="activation-blockers"' in team_page and "Waive control" not in team_page
    key = use_case.required_controls[0]
    c = client_for(privacy)
    assert "Waive control" in c.get(f"/use-cases/{use_case.pk}/").content.decode()
    refused = c.post(f"/use-cases/{use_case.pk}/controls/waive/", {"control": key, "reason": ""})
    assert refused.status_code == 422 and "Say why the council waives this control." in refused.content.decode()
    done = c.post(f"/use-cases/{use_case.pk}/controls/waive/", {"control": key, "reason": "Platform covers it"})
    assert done.status_code == 302
    assert ControlWaiver.objects.get(use_case=use_case, control=key).waived_by == privacy
    refused = client_for(engineer).post(f"/use-cases/{use_case.pk}/controls/waive/",
                                        {"control": use_case.required_controls[1], "reason": "mine"}, follow=True)
    assert "Only a council member" in refused.content.decode()
    assert ControlWaiver.objects.filter(use_case=use_case).count() == 1


def test_the_risk_report_carries_each_waiver_and_its_reason(client_for, elevated, security):
    key = elevated.required_controls[0]
    services.control_waive(use_case=elevated, user=security, control=key, reason="Covered by the SOC runbook.")
    report = client_for(security).get(f"/use-cases/{elevated.pk}/report.json").json()
    row = next(c for c in report["required_controls"] if c["key"] == key)
    assert row["status"] == "waived" and row["waiver"]["reason"] == "Covered by the SOC runbook."
    assert "Covered by the SOC runbook." in client_for(security).get(f"/use-cases/{elevated.pk}/report/").content.decode()
