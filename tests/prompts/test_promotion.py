"""Labels, their history, and promotion requests with their gate checks."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.prompts.models import (
    CheckStatus,
    GateCheckResult,
    Label,
    LabelEvent,
    PromotionKind,
    PromotionStatus,
    PromptPolicy,
)
from apps.prompts.registry import CheckOutcome, register_gate_check
from apps.prompts.selectors import label_version_at, latest_check_results
from apps.prompts.services import (
    label_set,
    policy_set,
    promotion_request_approve,
    promotion_request_cancel,
    promotion_request_expedite,
    promotion_request_open,
    promotion_request_recheck,
    promotion_request_reject,
)


@pytest.fixture
def prompt(make_prompt):
    return make_prompt()


def _promote(prompt, version, requester, approver, reason="ship it"):
    request = promotion_request_open(prompt=prompt, version=version, actor=requester, reason=reason)
    return promotion_request_approve(request=request, user=approver, comment="looks good")


def test_staging_moves_directly_and_the_move_is_kept_with_who_and_why(prompt, engineer):
    v1 = prompt.versions.get()
    label_set(prompt=prompt, label="staging", version=v1, actor=engineer, reason="try it")
    event = LabelEvent.objects.get(prompt=prompt, label="staging")
    assert (event.from_version, event.to_version, event.actor, event.reason) == (None, v1, engineer, "try it")
    assert AuditEvent.objects.filter(action="prompt.label.move").get().changes["label"] == "staging"


def test_production_cannot_be_set_directly_by_anyone(prompt, admin_user):
    with pytest.raises(PermissionDenied, match="protected"):
        label_set(prompt=prompt, label="production", version=prompt.versions.get(), actor=admin_user)
    assert not Label.objects.filter(prompt=prompt, name="production").exists()


def test_latest_cannot_be_set_by_hand(prompt, engineer):
    with pytest.raises(ValidationError, match="moves by itself"):
        label_set(prompt=prompt, label="latest", version=prompt.versions.get(), actor=engineer)


def test_a_team_can_protect_more_labels(prompt, owner, engineer):
    policy_set(team=prompt.team, protected_labels=["staging"], actor=owner)
    with pytest.raises(PermissionDenied):
        label_set(prompt=prompt, label="staging", version=prompt.versions.get(), actor=engineer)
    assert AuditEvent.objects.filter(action="prompt.policy.set").exists()


def test_promotion_moves_production_after_an_approval_from_another_engineer(prompt, engineer, engineer2):
    v1 = prompt.versions.get()
    outcome = _promote(prompt, v1, engineer, engineer2)
    assert outcome.applied
    assert Label.objects.get(prompt=prompt, name="production").version == v1
    request = outcome.request
    request.refresh_from_db()
    assert request.status == PromotionStatus.APPLIED
    event = LabelEvent.objects.get(prompt=prompt, label="production")
    assert event.promotion == request and event.actor == engineer2
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-3:] == ["prompt.promotion.open", "prompt.promotion.approve", "prompt.label.move"]


def test_the_checks_are_stored_with_their_result_at_that_moment(prompt, engineer, engineer2):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    first = {r.key: r.status for r in latest_check_results(request)}
    assert first == {"lint": "passed", "approvals": "failed", "use_case": "not_configured",
                     "eval_gate": "not_configured"}
    promotion_request_approve(request=request, user=engineer2)
    assert GateCheckResult.objects.filter(request=request).values("run").distinct().count() == 2
    assert {r.key: r.status for r in latest_check_results(request)}["approvals"] == "passed"
    not_configured = GateCheckResult.objects.filter(request=request, key="use_case").first()
    assert not not_configured.blocking and "reviews" in not_configured.summary


def test_the_author_cannot_approve_their_own_version(prompt, engineer, engineer2):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer2)
    with pytest.raises(PermissionDenied, match="You wrote this version"):
        promotion_request_approve(request=request, user=engineer)


def test_the_requester_cannot_approve(prompt, engineer2, owner):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer2)
    with pytest.raises(PermissionDenied, match="You opened this request"):
        promotion_request_approve(request=request, user=engineer2)
    assert promotion_request_approve(request=request, user=owner).applied


@pytest.mark.parametrize("who", ["viewer", "outsider", "council_member", "admin_user"])
def test_people_outside_the_teams_engineers_cannot_approve(request, prompt, engineer, who):
    person = request.getfixturevalue(who)
    promotion = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    with pytest.raises(PermissionDenied):
        promotion_request_approve(request=promotion, user=person)


def test_a_token_can_open_a_request_but_never_approve(prompt, engineer, engineer2, token_for):
    token, _ = token_for(engineer2, prompt.team, scope="write")
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=token)
    assert request.requested_by_token == token and request.requester_label == token.label
    with pytest.raises(PermissionDenied, match="API tokens"):
        promotion_request_approve(request=request, user=token)
    with pytest.raises(PermissionDenied):
        promotion_request_recheck(request=request, user=token)


def test_two_approvals_when_the_team_policy_says_so(prompt, engineer, engineer2, owner):
    policy_set(team=prompt.team, approvals_required=2, actor=owner)
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    first = promotion_request_approve(request=request, user=engineer2)
    assert not first.applied and first.waiting_on == ["Approvals from the owning team"]
    assert promotion_request_approve(request=request, user=owner).applied


def test_a_rejection_closes_the_request_with_its_comment(prompt, engineer, engineer2):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    with pytest.raises(ValidationError, match="Say why"):
        promotion_request_reject(request=request, user=engineer2, comment=" ")
    promotion_request_reject(request=request, user=engineer2, comment="tone is off")
    request.refresh_from_db()
    assert request.status == PromotionStatus.REJECTED and request.close_comment == "tone is off"
    with pytest.raises(ValidationError, match="rejected"):
        promotion_request_approve(request=request, user=engineer2)


def test_the_requester_or_an_owner_may_cancel(prompt, engineer, engineer2, owner):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    with pytest.raises(PermissionDenied):
        promotion_request_cancel(request=request, actor=engineer2)
    promotion_request_cancel(request=request, actor=owner, comment="not now")
    request.refresh_from_db()
    assert request.status == PromotionStatus.CANCELLED


def test_only_one_open_request_per_label(prompt, engineer, add_version):
    v2 = add_version(prompt, "Second {{ ticket }}")
    promotion_request_open(prompt=prompt, version=prompt.versions.get(number=1), actor=engineer)
    with pytest.raises(ValidationError, match="still open"):
        promotion_request_open(prompt=prompt, version=v2, actor=engineer)


def test_a_request_to_the_current_version_is_refused(prompt, engineer, engineer2):
    v1 = prompt.versions.get()
    _promote(prompt, v1, engineer, engineer2)
    with pytest.raises(ValidationError, match="already points at version 1"):
        promotion_request_open(prompt=prompt, version=v1, actor=engineer)


def test_rollback_is_a_request_to_an_earlier_version_with_the_same_gates(prompt, engineer, engineer2, add_version):
    v1 = prompt.versions.get()
    _promote(prompt, v1, engineer, engineer2)
    v2 = add_version(prompt, "Better {{ ticket }}", actor=engineer2)
    _promote(prompt, v2, engineer2, engineer)
    rollback = promotion_request_open(prompt=prompt, version=v1, actor=engineer, reason="v2 hallucinates")
    assert rollback.kind == PromotionKind.ROLLBACK and rollback.from_version == v2
    assert {r.key for r in latest_check_results(rollback)} >= {"lint", "approvals"}
    assert promotion_request_approve(request=rollback, user=engineer2).applied
    assert Label.objects.get(prompt=prompt, name="production").version == v1


def test_an_admin_may_expedite_with_a_written_reason(prompt, engineer, admin_user):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    with pytest.raises(ValidationError, match="Write why"):
        promotion_request_expedite(request=request, user=admin_user, reason="urgent")
    with pytest.raises(PermissionDenied):
        promotion_request_expedite(request=request, user=engineer, reason="x" * 40)
    promotion_request_expedite(request=request, user=admin_user, reason="Incident 4711: v0 leaks internal notes")
    request.refresh_from_db()
    assert request.status == PromotionStatus.APPLIED and request.expedited
    event = AuditEvent.objects.get(action="prompt.promotion.expedite")
    assert event.changes["overridden"] == ["approvals"] and "Incident 4711" in event.changes["reason"]
    assert "expedited" in LabelEvent.objects.get(prompt=prompt, label="production").reason


def test_what_was_production_at_time_t(prompt, engineer, engineer2, add_version):
    v1 = prompt.versions.get()
    before_anything = timezone.now()
    _promote(prompt, v1, engineer, engineer2)
    after_v1 = timezone.now()
    v2 = add_version(prompt, "Second {{ ticket }}")
    _promote(prompt, v2, engineer, engineer2)
    assert label_version_at(prompt=prompt, label="production", at=before_anything - timedelta(seconds=1)) is None
    assert label_version_at(prompt=prompt, label="production", at=after_v1) == v1
    assert label_version_at(prompt=prompt, label="production", at=timezone.now()) == v2


def test_a_registered_check_blocks_until_it_passes(restore_registry, prompt, engineer, engineer2):
    state = {"ok": False}
    register_gate_check("eval_gate", "Eval gate", lambda ctx: CheckOutcome.passed("fine") if state["ok"]
                        else CheckOutcome.failed("accuracy 0.71 < 0.80"))
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    outcome = promotion_request_approve(request=request, user=engineer2)
    assert not outcome.applied and outcome.waiting_on == ["Eval gate"]
    state["ok"] = True
    assert promotion_request_recheck(request=request, user=engineer).applied


def test_not_configured_blocks_when_the_team_policy_says_so(prompt, engineer, engineer2, owner):
    policy_set(team=prompt.team, not_configured_blocks=True, actor=owner)
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    outcome = promotion_request_approve(request=request, user=engineer2)
    assert not outcome.applied
    assert {r.key for r in outcome.results if r.blocks} == {"use_case", "eval_gate"}


def test_a_check_can_be_made_advisory_per_team(restore_registry, prompt, engineer, engineer2, owner):
    register_gate_check("eval_gate", "Eval gate", lambda ctx: CheckOutcome.failed("no runs yet"))
    policy_set(team=prompt.team, check_overrides={"eval_gate": False}, actor=owner)
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    assert promotion_request_approve(request=request, user=engineer2).applied


def test_a_check_that_raises_blocks_and_says_why(restore_registry, prompt, engineer, engineer2):
    def broken(ctx):
        raise RuntimeError("evals database unreachable")

    register_gate_check("eval_gate", "Eval gate", broken)
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    outcome = promotion_request_approve(request=request, user=engineer2)
    assert not outcome.applied
    failed = next(r for r in outcome.results if r.key == "eval_gate")
    assert failed.status == CheckStatus.ERROR and "unreachable" in failed.summary


def test_lint_errors_block_promotion(prompt, engineer, engineer2, add_version):
    schema = {"type": "object", "properties": {"ticket": {"type": "string"}}}
    v2 = add_version(prompt, "Hi {{ customer }} <ticket>{{ ticket }}</ticket>", variables_schema=schema)
    request = promotion_request_open(prompt=prompt, version=v2, actor=engineer)
    outcome = promotion_request_approve(request=request, user=engineer2)
    assert not outcome.applied
    lint = next(r for r in outcome.results if r.key == "lint")
    assert lint.status == CheckStatus.FAILED and "customer" in lint.summary
    codes = {f["code"] for f in lint.details["findings"]}
    assert "undeclared-variable" in codes


def test_pii_in_the_template_fails_lint(prompt, engineer, engineer2, add_version):
    v2 = add_version(prompt, "Card on file: 4111 1111 1111 1111. <ticket>{{ ticket }}</ticket>")
    request = promotion_request_open(prompt=prompt, version=v2, actor=engineer)
    lint = next(r for r in latest_check_results(request) if r.key == "lint")
    assert lint.status == CheckStatus.FAILED
    assert any(f["code"] == "pii-in-template" for f in lint.details["findings"])


def test_undelimited_user_input_is_a_warning_that_blocks_only_by_policy(prompt, engineer, engineer2, owner,
                                                                         add_version):
    v2 = add_version(prompt, "Answer this: {{ question }}")
    request = promotion_request_open(prompt=prompt, version=v2, actor=engineer)
    lint = next(r for r in latest_check_results(request) if r.key == "lint")
    assert lint.status == CheckStatus.PASSED and "warning" in lint.summary
    policy_set(team=prompt.team, lint_warnings_block=True, actor=owner)
    assert not promotion_request_approve(request=request, user=engineer2).applied


def test_policy_values_are_checked(team, owner):
    with pytest.raises(ValidationError) as exc:
        policy_set(team=team, approvals_required=0, check_overrides={"approvals": False}, actor=owner)
    assert set(exc.value.message_dict) == {"approvals_required", "check_overrides"}
    assert not PromptPolicy.objects.exists()
