"""The state machine: each transition, who may trigger it, and what is refused (changing nothing)."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.audit.models import AuditEvent
from apps.reviews import services, workflow
from apps.reviews.models import State, Transition, UseCase
from tests.reviews.conftest import ELEVATED_INTERNAL, PROHIBITED


def states(use_case):
    return list(Transition.objects.filter(use_case=use_case).values_list("to_state", flat=True))


def set_state(use_case, state):
    UseCase.objects.filter(pk=use_case.pk).update(state=state)
    use_case.refresh_from_db()
    return use_case


def test_submit_freezes_answers_tiers_and_routes_to_review(make_use_case, engineer):
    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    assert use_case.state == State.IN_REVIEW
    assert states(use_case) == [State.SUBMITTED, State.TRIAGE, State.IN_REVIEW]
    assert use_case.tier == "elevated" and use_case.review_round == 1
    assert use_case.submissions.get().answers["prompt_data_classes"] == ["internal", "pii"]
    actions = list(AuditEvent.objects.filter(object_id=str(use_case.pk)).order_by("id")
               .values_list("action", flat=True))
    assert actions == ["use_case.create", "use_case.submit", "use_case.triage", "use_case.start_review"]
    assert Transition.objects.filter(use_case=use_case, name="triage").get().actor_label == "system"


def test_prohibited_use_case_is_rejected_automatically_and_legal_confirms(make_use_case, legal, security):
    use_case = make_use_case(PROHIBITED, submit=True)
    assert use_case.state == State.REJECTED and use_case.tier == "prohibited"
    assert states(use_case)[-1] == State.REJECTED
    with pytest.raises(PermissionDenied):
        services.rejection_confirm(use_case=use_case, user=security)
    services.rejection_confirm(use_case=use_case, user=legal)
    use_case.refresh_from_db()
    assert use_case.rejection_confirmed_by == legal


def test_incomplete_answers_cannot_be_submitted(make_use_case, engineer):
    use_case = make_use_case({"exposure": ["internal"]})
    with pytest.raises(ValidationError) as exc:
        services.use_case_submit(use_case=use_case, actor=engineer)
    assert "planned_evals" in exc.value.message_dict
    use_case.refresh_from_db()
    assert use_case.state == State.DRAFT and not use_case.submissions.exists()


@pytest.mark.parametrize("who", ["viewer", "outsider", "nobody", "council_member"])
def test_only_the_team_submits(make_use_case, request, who):
    use_case = make_use_case()
    with pytest.raises(PermissionDenied):
        services.use_case_submit(use_case=use_case, actor=request.getfixturevalue(who))
    use_case.refresh_from_db()
    assert use_case.state == State.DRAFT


def test_owner_and_admin_may_submit(make_use_case, owner, admin_user):
    assert services.use_case_submit(use_case=make_use_case(), actor=owner).state == State.IN_REVIEW
    assert services.use_case_submit(use_case=make_use_case(title="b"), actor=admin_user).state == State.IN_REVIEW


def test_submit_is_refused_while_in_review(make_use_case, engineer):
    use_case = make_use_case(submit=True)
    with pytest.raises(ValidationError, match="in review"):
        services.use_case_submit(use_case=use_case, actor=engineer)


def test_request_info_then_resubmit_supersedes_and_shows_the_diff(make_use_case, engineer, security):
    from apps.reviews import selectors

    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    services.use_case_transition(use_case=use_case, actor=security, name="request_info", note="Which PII?")
    use_case.refresh_from_db()
    assert use_case.state == State.NEEDS_INFO
    services.use_case_update(use_case=use_case, actor=engineer,
                             answers={**use_case.answers, "prompt_data_classes": ["internal"]})
    use_case = services.use_case_submit(use_case=use_case, actor=engineer)
    assert use_case.state == State.IN_REVIEW and use_case.review_round == 2 and use_case.tier == "low"
    diff = selectors.submission_diff(use_case)
    assert diff == [{"id": "prompt_data_classes", "before": ["internal", "pii"], "after": ["internal"],
                     "label": "Data classes in prompts"}]


def test_request_info_needs_a_note_and_a_council_member(make_use_case, engineer, security):
    use_case = make_use_case(submit=True)
    with pytest.raises(ValidationError):
        services.use_case_transition(use_case=use_case, actor=security, name="request_info", note="")
    with pytest.raises(PermissionDenied):
        services.use_case_transition(use_case=use_case, actor=engineer, name="request_info", note="x")


def test_the_submitter_never_reviews_even_with_a_seat(make_use_case, team, seat_user):
    from apps.accounts.models import Role
    from tests.factories import MembershipFactory

    dual = seat_user("dana-dual", "security")
    MembershipFactory(team=team, user=dual, role=Role.ENGINEER)
    use_case = make_use_case(actor=dual, submit=True)
    with pytest.raises(PermissionDenied):
        services.vote_cast(use_case=use_case, user=dual, decision="approve", rationale="mine")
    with pytest.raises(PermissionDenied):
        services.use_case_transition(use_case=use_case, actor=dual, name="request_info", note="x")


@pytest.mark.parametrize("name", ["triage", "approve", "reject", "approve_with_conditions", "activate",
                                  "mark_review_due", "expire", "auto_reject"])
def test_system_transitions_are_refused_to_people_even_admins(make_use_case, admin_user, security, name):
    use_case = make_use_case(submit=True)
    source = workflow.TRANSITIONS[name].sources[0]
    set_state(use_case, source)
    for person in (admin_user, security):
        with pytest.raises(PermissionDenied):
            services.use_case_transition(use_case=use_case, actor=person, name=name, note="n")
    use_case.refresh_from_db()
    assert use_case.state == source


@pytest.mark.parametrize("state", [State.DRAFT, State.SUBMITTED, State.TRIAGE, State.IN_REVIEW, State.NEEDS_INFO,
                                   State.APPROVED, State.APPROVED_WITH_CONDITIONS, State.CONDITIONS_PENDING])
def test_withdraw_from_every_pre_active_state(make_use_case, engineer, state):
    use_case = set_state(make_use_case(), state)
    services.use_case_transition(use_case=use_case, actor=engineer, name="withdraw")
    use_case.refresh_from_db()
    assert use_case.state == State.WITHDRAWN


@pytest.mark.parametrize("state", [State.ACTIVE, State.REVIEW_DUE, State.EXPIRED, State.REJECTED, State.RETIRED])
def test_withdraw_is_refused_once_active_or_closed(make_use_case, engineer, state):
    use_case = set_state(make_use_case(), state)
    with pytest.raises(ValidationError):
        services.use_case_transition(use_case=use_case, actor=engineer, name="withdraw")


@pytest.mark.parametrize("who", ["viewer", "outsider", "council_member"])
def test_withdraw_is_refused_to_people_outside_the_team(make_use_case, request, who):
    use_case = make_use_case()
    with pytest.raises(PermissionDenied):
        services.use_case_transition(use_case=use_case, actor=request.getfixturevalue(who), name="withdraw")


def test_suspend_and_reinstate_by_council_with_notes(make_use_case, security, engineer):
    use_case = set_state(make_use_case(), State.ACTIVE)
    with pytest.raises(PermissionDenied):
        services.use_case_transition(use_case=use_case, actor=engineer, name="suspend", note="x")
    services.use_case_transition(use_case=use_case, actor=security, name="suspend", note="Incident 42")
    use_case.refresh_from_db()
    assert use_case.state == State.SUSPENDED
    with pytest.raises(PermissionDenied):
        services.use_case_transition(use_case=use_case, actor=engineer, name="reinstate", note="fixed")
    services.use_case_transition(use_case=use_case, actor=security, name="reinstate", note="Fixed")
    use_case.refresh_from_db()
    assert use_case.state == State.ACTIVE


def test_retire_by_owner_or_admin_only(make_use_case, engineer, owner, admin_user):
    use_case = set_state(make_use_case(), State.ACTIVE)
    with pytest.raises(PermissionDenied):
        services.use_case_transition(use_case=use_case, actor=engineer, name="retire")
    services.use_case_transition(use_case=use_case, actor=owner, name="retire")
    use_case.refresh_from_db()
    assert use_case.state == State.RETIRED
    other = set_state(make_use_case(title="x"), State.EXPIRED)
    services.use_case_transition(use_case=other, actor=admin_user, name="retire")


def test_unknown_transition_is_a_clear_error(make_use_case, engineer):
    with pytest.raises(ValidationError, match="Unknown action"):
        services.use_case_transition(use_case=make_use_case(), actor=engineer, name="teleport")


def test_a_refused_transition_writes_no_history_and_no_audit(make_use_case, engineer):
    use_case = make_use_case()
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError):
        services.use_case_transition(use_case=use_case, actor=engineer, name="retire")
    assert AuditEvent.objects.count() == before and not Transition.objects.filter(use_case=use_case).exists()


def test_answers_are_frozen_while_in_review(make_use_case, engineer):
    use_case = make_use_case(submit=True)
    with pytest.raises(ValidationError, match="cannot change"):
        services.use_case_update(use_case=use_case, actor=engineer, answers={})


def test_bad_answers_name_the_field_and_change_nothing(make_use_case, engineer):
    use_case = make_use_case()
    with pytest.raises(ValidationError) as exc:
        services.use_case_update(use_case=use_case, actor=engineer,
                                 answers={"exposure": ["martians"], "bogus": 1, "monthly_budget_usd": "lots"})
    assert set(exc.value.message_dict) == {"exposure", "bogus", "monthly_budget_usd"}
    use_case.refresh_from_db()
    assert use_case.answers["exposure"] == ["internal"]


def test_hidden_follow_ups_are_dropped(make_use_case):
    use_case = make_use_case({"third_party_model": False, "vendor_may_train": True, "uses_rag": False,
                              "rag_data_classes": ["pii"]})
    assert "vendor_may_train" not in use_case.answers and "rag_data_classes" not in use_case.answers
