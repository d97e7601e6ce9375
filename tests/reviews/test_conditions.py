"""Conditions: automatic predicates with locked thresholds, manual evidence, suspension on a failing re-check,
expiry by the beat sweep, and the prompt gate / resolve guard that follow the use case's state."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.costs.models import Budget
from apps.notifications.models import Notification
from apps.reviews import conditions as predicates
from apps.reviews import hooks, linking, services
from apps.reviews.models import ConditionCheck, ConditionStatus, State, UseCase
from tests.reviews.conftest import ELEVATED_INTERNAL


@pytest.fixture
def conditional(make_use_case, security, privacy):
    """An elevated use case approved with conditions (no condition set yet)."""
    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    services.vote_cast(use_case=use_case, user=security, decision="approve", rationale="ok")
    services.vote_cast(use_case=use_case, user=privacy, decision="approve_with_conditions", rationale="budget cap")
    use_case.refresh_from_db()
    assert use_case.state == State.APPROVED_WITH_CONDITIONS
    return use_case


def budget(team, amount):
    return Budget.objects.create(name="monthly", team=team, amount=Decimal(amount))


def add_budget_condition(use_case, actor, owner, cap=2000, *, done=True):
    condition = services.condition_add(use_case=use_case, actor=actor, title="Monthly budget ≤ $2,000", owner=owner,
                                       due_date=date.today() + timedelta(days=14), kind="automatic",
                                       predicate="budget_cap", params={"max_usd": cap}, control="incident_runbook")
    if done:
        services.use_case_transition(use_case=use_case, actor=actor, name="set_conditions")
    return condition


def test_an_automatic_condition_met_at_once_activates(conditional, team, privacy, engineer):
    budget(team, "1500")
    condition = add_budget_condition(conditional, privacy, engineer)
    conditional.refresh_from_db()
    condition.refresh_from_db()
    assert condition.status == ConditionStatus.MET and condition.params == {"max_usd": 2000.0}
    assert conditional.state == State.ACTIVE
    check = ConditionCheck.objects.filter(condition=condition).first()
    assert check.passed and check.value == 1500.0


def test_an_unmet_condition_waits_then_the_recheck_activates(conditional, team, privacy, engineer):
    condition = add_budget_condition(conditional, privacy, engineer)
    conditional.refresh_from_db()
    assert conditional.state == State.CONDITIONS_PENDING
    condition.refresh_from_db()
    assert condition.status == ConditionStatus.FAILING
    budget(team, "1800")
    assert services.conditions_recheck_all() == {"checked": 1, "failing": 0}
    conditional.refresh_from_db()
    assert conditional.state == State.ACTIVE


def test_a_failing_recheck_suspends_and_notifies_the_owner(conditional, team, privacy, engineer):
    b = budget(team, "1500")
    condition = add_budget_condition(conditional, privacy, engineer)
    Budget.objects.filter(pk=b.pk).update(amount=Decimal("5000"))
    services.condition_check(condition=condition)
    conditional.refresh_from_db()
    assert conditional.state == State.SUSPENDED
    assert Notification.objects.filter(user=engineer, kind="review.condition_failed").exists()
    assert "5,000.00" in conditional.transitions.last().note


def test_thresholds_are_locked_and_validated(conditional, privacy, engineer):
    with pytest.raises(ValidationError) as exc:
        services.condition_add(use_case=conditional, actor=privacy, title="x", owner=engineer, due_date=date.today(),
                               kind="automatic", predicate="budget_cap", params={"max_usd": "lots"})
    assert "max_usd" in exc.value.message_dict
    with pytest.raises(ValidationError):
        services.condition_add(use_case=conditional, actor=privacy, title="x", owner=engineer, due_date=date.today(),
                               kind="automatic", predicate="nonsense", params={})


def test_an_unknown_result_is_recorded_and_never_suspends(conditional, team, privacy, engineer):
    predicates.register_predicate("unknowable", "Unknowable", {},
                                  lambda u, p: predicates.Evaluation(None, None, "the data is not there"))
    try:
        budget(team, "100")
        add_budget_condition(conditional, privacy, engineer)
        conditional.refresh_from_db()
        assert conditional.state == State.ACTIVE
        condition = services.condition_add(use_case=conditional, actor=privacy, title="unknowable", owner=engineer,
                                           due_date=date.today(), kind="automatic", predicate="unknowable")
        condition.refresh_from_db()
        conditional.refresh_from_db()
        assert condition.status == ConditionStatus.PENDING and conditional.state == State.ACTIVE
        assert condition.checks.first().detail == "the data is not there"
    finally:
        predicates._predicates.pop("unknowable")


def test_manual_condition_needs_evidence_and_a_reviewers_acceptance(conditional, privacy, engineer, viewer):
    condition = services.condition_add(use_case=conditional, actor=privacy, title="Red team report",
                                       owner=engineer, due_date=date.today(), how_met="Upload the report")
    with pytest.raises(ValidationError):
        services.condition_evidence_submit(condition=condition, actor=engineer, url="")
    with pytest.raises(ValidationError):
        services.condition_evidence_submit(condition=condition, actor=engineer, url="javascript:alert(1)")
    with pytest.raises(PermissionDenied):
        services.condition_evidence_submit(condition=condition, actor=viewer, url="https://wiki/report")
    services.condition_evidence_submit(condition=condition, actor=engineer, url="https://wiki/report")
    services.use_case_transition(use_case=conditional, actor=privacy, name="set_conditions")
    with pytest.raises(PermissionDenied):
        services.condition_accept(condition=condition, user=engineer)
    services.condition_accept(condition=condition, user=privacy)
    conditional.refresh_from_db()
    assert conditional.state == State.ACTIVE


def test_conditions_set_waits_for_the_reviewers_and_needs_one(conditional, team, privacy, engineer):
    with pytest.raises(ValidationError, match="at least one"):
        services.use_case_transition(use_case=conditional, actor=privacy, name="set_conditions")
    budget(team, "100")
    add_budget_condition(conditional, privacy, engineer, done=False)
    services.condition_add(use_case=conditional, actor=privacy, title="Runbook", owner=engineer,
                           due_date=date.today())
    conditional.refresh_from_db()
    assert conditional.state == State.APPROVED_WITH_CONDITIONS  # no activation while conditions are being set
    services.use_case_transition(use_case=conditional, actor=privacy, name="set_conditions")
    conditional.refresh_from_db()
    assert conditional.state == State.CONDITIONS_PENDING  # the runbook still needs evidence


def test_a_condition_added_during_review_is_applied_on_decision(make_use_case, team, security, privacy, engineer):
    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    budget(team, "100")
    add_budget_condition(use_case, security, engineer, done=False)
    services.vote_cast(use_case=use_case, user=security, decision="approve_with_conditions", rationale="cap")
    services.vote_cast(use_case=use_case, user=privacy, decision="approve", rationale="ok")
    use_case.refresh_from_db()
    assert use_case.state == State.ACTIVE  # set automatically, checked, met


def test_only_reviewers_set_conditions(conditional, engineer):
    with pytest.raises(PermissionDenied):
        services.condition_add(use_case=conditional, actor=engineer, title="x", owner=engineer,
                               due_date=date.today())


def test_expiry_sweep_notices_then_expires(make_use_case, product, approve, engineer):
    use_case = approve(make_use_case(submit=True), product)
    assert use_case.state == State.ACTIVE
    UseCase.objects.filter(pk=use_case.pk).update(expires_at=timezone.now() + timedelta(days=20))
    assert services.expiry_sweep()["review_due"] == 1
    use_case.refresh_from_db()
    assert use_case.state == State.REVIEW_DUE
    assert Notification.objects.filter(user=engineer, kind="review.expiry_coming").exists()
    assert services.expiry_sweep() == {"review_due": 0, "expired": 0, "condition_due": 0}  # idempotent
    assert Notification.objects.filter(user=engineer, kind="review.expiry_coming").count() == 1
    with pytest.raises(TypeError):  # the moment is named, never positional
        services.expiry_sweep(timezone.now() + timedelta(days=21))
    assert services.expiry_sweep(now=timezone.now() + timedelta(days=21))["expired"] == 1  # a sweep as of then
    use_case.refresh_from_db()
    assert use_case.state == State.EXPIRED


def test_policy_months_are_configurable(make_use_case, product, approve):
    from apps.reviews.models import ReviewPolicy

    policy = ReviewPolicy.get()
    policy.low_months = 3
    policy.save()
    use_case = approve(make_use_case(submit=True), product)
    assert (use_case.expires_at - use_case.approved_at).days in range(89, 93)


def test_add_months_clamps_to_the_end_of_month():
    from datetime import datetime

    assert services.add_months(datetime(2026, 8, 31), 6) == datetime(2027, 2, 28)
    assert services.add_months(datetime(2026, 1, 15), 12) == datetime(2027, 1, 15)


def test_predicate_registry_accepts_new_checks():
    predicates.register_predicate("always", "Always", {}, lambda u, p: predicates.Evaluation(True, 1, "yes"))
    try:
        assert predicates.evaluate("always", None, {}).passed is True
    finally:
        predicates._predicates.pop("always")


def test_a_predicate_that_raises_reads_as_unknown():
    predicates.register_predicate("boom", "Boom", {}, lambda u, p: 1 / 0)
    try:
        result = predicates.evaluate("boom", None, {})
        assert result.passed is None and "ZeroDivisionError" in result.detail
    finally:
        predicates._predicates.pop("boom")


# --- the prompt catalog integration ------------------------------------------------------------------------


@pytest.fixture
def prompt(team, engineer):
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create

    return prompt_create(team=team, name="support/triage", kind="text", actor=engineer,
                         draft=Draft(kind="text", template="Summarise <t>{{ ticket }}</t>"), commit_message="first")


def _target(prompt):
    from apps.prompts.registry import ResolveTarget

    return ResolveTarget(prompt_id=prompt.pk, prompt_name=prompt.name, team_id=prompt.team_id, version_number=1,
                         label="production")


def _gate(prompt):
    from types import SimpleNamespace

    return hooks.gate_check(SimpleNamespace(prompt=prompt))


def test_gate_is_not_configured_without_a_linked_use_case(prompt):
    assert _gate(prompt).status == "not_configured"
    assert hooks.resolve_guard(_target(prompt)) is None


def test_gate_fails_until_approved_then_passes(make_use_case, prompt, engineer, product, approve):
    use_case = make_use_case(submit=True)
    linking.prompt_link(use_case=use_case, actor=engineer, prompt=prompt)
    assert _gate(prompt).status == "failed"
    approve(use_case, product)
    assert _gate(prompt).status == "passed"


def test_suspension_blocks_promotion_and_resolve_with_the_cache_dropped(
        make_use_case, prompt, engineer, product, security, approve, django_capture_on_commit_callbacks):
    use_case = make_use_case(submit=True)
    linking.prompt_link(use_case=use_case, actor=engineer, prompt=prompt)
    approve(use_case, product)
    assert hooks.resolve_guard(_target(prompt)) is None  # cached as "ok" now
    with django_capture_on_commit_callbacks(execute=True):
        services.use_case_transition(use_case=use_case, actor=security, name="suspend", note="incident")
    reason = hooks.resolve_guard(_target(prompt))
    assert reason and "suspended" in reason
    assert _gate(prompt).status == "failed"


def test_resolve_answers_423_when_the_use_case_expired(make_use_case, prompt, engineer, product, approve, client,
                                                       token_for, team, django_capture_on_commit_callbacks):
    from apps.prompts.services import label_set

    label_set(prompt=prompt, label="staging", version=prompt.versions.get(), actor=engineer)
    use_case = make_use_case(submit=True)
    linking.prompt_link(use_case=use_case, actor=engineer, prompt=prompt)
    approve(use_case, product)
    UseCase.objects.filter(pk=use_case.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        services.expiry_sweep()
    _, secret = token_for(engineer, team)
    response = client.get(f"/api/v1/prompts/{prompt.name}/resolve?label=staging",
                          HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 423


def test_material_change_flags_the_use_case(make_use_case, prompt, engineer, product, approve):
    from apps.prompts.content import Draft
    from apps.prompts.models import Label
    from apps.prompts.services import version_create

    v1 = prompt.versions.get()
    Label.objects.create(prompt=prompt, name="production", version=v1)
    use_case = make_use_case(submit=True)
    linking.prompt_link(use_case=use_case, actor=engineer, prompt=prompt)
    approve(use_case, product)
    assert linking.material_change_scan() == 0
    v2 = version_create(prompt=prompt, draft=Draft(kind="text", template="Summarise <t>{{ ticket }}</t>",
                                                   config={"model": "gpt-4o"}), actor=engineer).version
    Label.objects.filter(prompt=prompt, name="production").update(version=v2)
    assert linking.material_change_scan() == 1
    use_case.refresh_from_db()
    assert use_case.rereview_flag["diff"]["model"] == ["", "gpt-4o"]


def test_beat_schedule_names_the_review_tasks_and_they_run(db):
    import portal.scheduled  # noqa: F401  (fills the schedule)
    from apps.reviews import tasks
    from portal.celery import app

    names = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"apps.reviews.tasks.reviews_expiry_sweep_task", "apps.reviews.tasks.reviews_conditions_recheck_task",
            "apps.reviews.tasks.reviews_material_change_scan_task"} <= names
    for task in (tasks.reviews_expiry_sweep_task, tasks.reviews_conditions_recheck_task,
                 tasks.reviews_material_change_scan_task):
        assert task.name in app.tasks
        task.apply().get()
