"""Votes, vetoes and the automatic decision; the decision is taken exactly once under concurrency."""

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from apps.audit.models import AuditEvent
from apps.notifications.models import Notification
from apps.reviews import selectors, services
from apps.reviews.models import State, Transition, UseCase
from tests.reviews.conftest import ELEVATED_EXTERNAL, ELEVATED_INTERNAL, HIGH, clear_controls


def test_low_tier_needs_one_council_member(make_use_case, product, approve):
    use_case = approve(make_use_case(submit=True), product)
    assert use_case.state == State.ACTIVE
    assert use_case.expires_at is not None and use_case.decision == State.APPROVED
    assert list(Transition.objects.filter(use_case=use_case).values_list("name", flat=True))[-2:] == [
        "approve", "activate"]


def test_elevated_internal_needs_security_and_privacy(make_use_case, security, privacy, approve):
    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    assert selectors.required_seats(use_case) == ["security", "privacy"]
    use_case = approve(use_case, security)
    assert use_case.state == State.IN_REVIEW
    use_case = approve(use_case, privacy)
    assert use_case.state == State.ACTIVE


def test_elevated_external_also_needs_legal(make_use_case, security, privacy, legal, approve):
    use_case = make_use_case(ELEVATED_EXTERNAL, submit=True)
    assert selectors.required_seats(use_case) == ["security", "privacy", "legal"]
    assert approve(use_case, security, privacy).state == State.IN_REVIEW
    assert approve(use_case, legal).state == State.ACTIVE


def test_high_needs_all_four_seats(make_use_case, security, privacy, legal, product, approve):
    use_case = make_use_case(HIGH, submit=True)
    assert approve(use_case, security, privacy, legal).state == State.IN_REVIEW
    assert approve(use_case, product).state == State.ACTIVE
    assert use_case.expires_at.date() > use_case.approved_at.date()


def test_six_months_for_high_twelve_for_low(make_use_case, security, privacy, legal, product, approve):
    high = approve(make_use_case(HIGH, submit=True), security, privacy, legal, product)
    low = approve(make_use_case(submit=True, title="low"), product)
    assert (high.expires_at - high.approved_at).days in range(181, 185)
    assert (low.expires_at - low.approved_at).days in (365, 366)


@pytest.mark.parametrize("veto", ["security", "privacy", "legal"])
def test_a_reject_from_a_veto_seat_decides_at_once(make_use_case, request, veto):
    use_case = make_use_case(HIGH, submit=True)
    voter = request.getfixturevalue(veto)
    services.vote_cast(use_case=use_case, user=voter, decision="reject", rationale="Unacceptable risk.")
    use_case.refresh_from_db()
    assert use_case.state == State.REJECTED


def test_a_product_reject_is_not_a_veto(make_use_case, security, privacy, legal, product, approve):
    use_case = make_use_case(HIGH, submit=True)
    services.vote_cast(use_case=use_case, user=product, decision="reject", rationale="Not worth it.")
    assert approve(use_case, security, privacy, legal).state == State.ACTIVE


def test_approve_with_conditions_waits_for_conditions(make_use_case, security, privacy, approve):
    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    approve(use_case, security)
    use_case = approve(use_case, privacy, decision="approve_with_conditions")
    assert use_case.state == State.APPROVED_WITH_CONDITIONS


def test_rationale_is_mandatory(make_use_case, security):
    use_case = make_use_case(submit=True)
    with pytest.raises(ValidationError) as exc:
        services.vote_cast(use_case=use_case, user=security, decision="approve", rationale="  ")
    assert "rationale" in exc.value.message_dict


def test_one_vote_per_person_and_seat(make_use_case, security, seat_user):
    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    services.vote_cast(use_case=use_case, user=security, decision="approve", rationale="ok")
    with pytest.raises(ValidationError):
        services.vote_cast(use_case=use_case, user=security, decision="reject", rationale="changed my mind")
    second_security = seat_user("sid-security", "security")
    with pytest.raises(ValidationError, match="already voted"):
        services.vote_cast(use_case=use_case, user=second_security, decision="approve", rationale="me too")


@pytest.mark.parametrize("who", ["engineer", "owner", "viewer", "outsider", "nobody", "admin_user"])
def test_only_council_members_vote(make_use_case, request, who):
    use_case = make_use_case(submit=True)
    with pytest.raises(PermissionDenied):
        services.vote_cast(use_case=use_case, user=request.getfixturevalue(who), decision="approve", rationale="x")


def test_votes_are_refused_outside_review(make_use_case, security):
    use_case = make_use_case()
    with pytest.raises(ValidationError, match="in review"):
        services.vote_cast(use_case=use_case, user=security, decision="approve", rationale="x")


def test_unknown_decision_is_refused(make_use_case, security):
    with pytest.raises(ValidationError):
        services.vote_cast(use_case=make_use_case(submit=True), user=security, decision="maybe", rationale="x")


def test_reviewers_are_notified_and_the_team_hears_the_decision(make_use_case, engineer, security, privacy,
                                                                 approve, mailoutbox, django_capture_on_commit_callbacks,
                                                                 emails_inline):
    with django_capture_on_commit_callbacks(execute=True):
        use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    assert Notification.objects.filter(user=security, kind="review.vote_needed").exists()
    assert Notification.objects.filter(user=privacy, kind="review.vote_needed").exists()
    assert not Notification.objects.filter(user=engineer, kind="review.vote_needed").exists()
    with django_capture_on_commit_callbacks(execute=True):
        approve(use_case, security, privacy)
    assert Notification.objects.filter(user=engineer, kind="review.decision").exists()
    assert any("Decision" in m.subject for m in mailoutbox)


def test_a_council_vote_request_lands_in_the_shared_inbox_and_is_emailed_once(
        make_use_case, engineer, security, privacy, mailoutbox, django_capture_on_commit_callbacks, emails_inline):
    with django_capture_on_commit_callbacks(execute=True):
        use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    note = Notification.objects.get(user=security, kind="review.vote_needed")
    assert note.title.startswith(f"Vote needed: {use_case.title}") and note.link == f"/use-cases/{use_case.pk}/"
    assert note.read_at is None and note.emailed_at is not None
    to_security = [m for m in mailoutbox if m.to == [security.email]]
    assert len(to_security) == 1 and to_security[0].subject.startswith("[GenAI Portal] Vote needed")
    audit_before = AuditEvent.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        services._ask_for_votes(use_case)  # asked again in the same round: no second message, no second e-mail
    assert Notification.objects.filter(user=security, kind="review.vote_needed").count() == 1
    assert len([m for m in mailoutbox if m.to == [security.email]]) == 1
    assert AuditEvent.objects.count() == audit_before  # a notification is not a change of the use case


def test_raising_the_tier_adds_required_seats(make_use_case, engineer, security, legal, privacy, product, approve):
    use_case = make_use_case(submit=True)
    services.tier_change(use_case=use_case, actor=engineer, to_tier="high", justification="Customer-facing soon")
    use_case.refresh_from_db()
    assert use_case.tier == "high" and "human_oversight_design" in use_case.required_controls
    assert approve(use_case, security).state == State.IN_REVIEW  # one vote no longer decides
    assert AuditEvent.objects.filter(action="use_case.tier_raise").count() == 1


def test_lowering_the_tier_needs_justification_and_legal_sign_off(make_use_case, engineer, security, legal,
                                                                   legal2, privacy):
    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    with pytest.raises(ValidationError) as exc:
        services.tier_change(use_case=use_case, actor=engineer, to_tier="low", justification="")
    assert "justification" in exc.value.message_dict
    change = services.tier_change(use_case=use_case, actor=engineer, to_tier="low",
                                  justification="The PII is pseudonymised upstream.")
    use_case.refresh_from_db()
    assert use_case.tier == "elevated" and change.status == "pending"
    with pytest.raises(PermissionDenied):
        services.tier_change_decide(change=change, user=security, approve=True)
    services.vote_cast(use_case=use_case, user=privacy, decision="approve", rationale="fine")
    services.tier_change_decide(change=change, user=legal, approve=True)
    use_case.refresh_from_db()
    # Low needs one vote: the privacy vote already in decides once the tier is lowered.
    assert use_case.tier == "low" and use_case.state == State.ACTIVE
    assert AuditEvent.objects.filter(action="use_case.tier_lower_approve").count() == 1


def test_legal_who_asked_cannot_sign_off_their_own_lowering(make_use_case, legal):
    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    change = services.tier_change(use_case=use_case, actor=legal, to_tier="low", justification="why not")
    with pytest.raises(PermissionDenied):
        services.tier_change_decide(change=change, user=legal, approve=True)


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_voting_at_once_decide_exactly_once(team, engineer, security, privacy):
    use_case = services.use_case_create(team=team, actor=engineer, title="Concurrent", purpose="p",
                                        answers=ELEVATED_INTERNAL)
    use_case = clear_controls(services.use_case_submit(use_case=use_case, actor=engineer))
    barrier = threading.Barrier(2)
    errors = []

    def vote(user):
        try:
            barrier.wait()
            services.vote_cast(use_case=UseCase.objects.get(pk=use_case.pk), user=user, decision="approve",
                               rationale="ok")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection, so the test database can be dropped

    threads = [threading.Thread(target=vote, args=(u,)) for u in (security, privacy)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    use_case.refresh_from_db()
    assert use_case.state == State.ACTIVE
    assert Transition.objects.filter(use_case=use_case, name="approve").count() == 1
    assert Transition.objects.filter(use_case=use_case, name="activate").count() == 1
    assert AuditEvent.objects.filter(object_id=str(use_case.pk), action="use_case.approve").count() == 1


def test_the_systems_decision_is_audited_as_system_not_as_the_last_voter(make_use_case, product):
    from apps.core.request_context import acting_as

    use_case = make_use_case(submit=True)
    with acting_as(product):
        services.vote_cast(use_case=use_case, user=product, decision="approve", rationale="ok")
    labels = dict(AuditEvent.objects.filter(object_id=str(use_case.pk)).values_list("action", "actor_label"))
    assert labels["use_case.vote"] == product.username
    assert labels["use_case.approve"] == "system" and labels["use_case.activate"] == "system"
