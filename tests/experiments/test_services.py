"""Experiment writes: who may, what is refused (and left unchanged), the audit trail of every state change, who is
told, the one live experiment per prompt, the outcomes attributed to each arm, promotion through the catalog's
request with the experiment's result as a gate check, and the scorecards' count."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs.models import UsageEvent
from apps.evals.models import Feedback
from apps.experiments import selectors, services, stats
from apps.experiments.models import Experiment, Status
from apps.notifications.models import Notification
from apps.prompts.models import GateCheckResult, PromotionRequest
from tests.experiments.conftest import ARMS, unit_calls
from tests.factories import UsageEventFactory


def _actions(experiment) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="experiments.experiment", object_id=str(experiment.pk))
                .order_by("id").values_list("action", flat=True))


def test_every_state_change_is_audited_and_the_owners_are_told_of_start_and_kill(experiment, engineer, owner):
    services.experiment_start(experiment=experiment, actor=engineer)
    services.experiment_pause(experiment=experiment, actor=engineer)
    services.experiment_start(experiment=experiment, actor=engineer)
    services.experiment_kill(experiment=experiment, actor=owner, reason="The candidate leaks ticket ids.")
    experiment.refresh_from_db()
    assert experiment.status == Status.KILLED and experiment.result is not None
    assert _actions(experiment) == ["experiment.create", "experiment.start", "experiment.pause", "experiment.start",
                                    "experiment.kill"]
    told = set(Notification.objects.values_list("user__username", "kind"))
    assert ("olivia-owner", "experiment.started") in told
    assert ("evan-engineer", "experiment.killed") in told  # the author; the owner acted, so is not told
    assert ("olivia-owner", "experiment.killed") not in told


@pytest.mark.parametrize("who", ["viewer", "outsider", "council_member", "nobody"])
def test_only_engineers_and_owners_of_the_team_and_admins_run_experiments(experiment, prompt, who, request,
                                                                           admin_user):
    actor = request.getfixturevalue(who)
    with pytest.raises(PermissionDenied):
        services.experiment_start(experiment=experiment, actor=actor)
    with pytest.raises(PermissionDenied):
        services.experiment_create(actor=actor, prompt=prompt, name="Mine", arms=ARMS)
    assert Experiment.objects.get(pk=experiment.pk).status == Status.DRAFT
    services.experiment_start(experiment=experiment, actor=admin_user)
    with pytest.raises(PermissionDenied):
        services.experiment_kill(experiment=experiment, actor=actor, reason="not mine to kill")
    assert Experiment.objects.get(pk=experiment.pk).status == Status.RUNNING


@pytest.mark.parametrize(("arms", "field", "message"), [
    ([{"key": "control", "weight": 60, "label": "production"}, {"key": "candidate", "weight": 30, "label": "staging"}],
     "arms", "add up to 90 %"),
    ([{"key": "control", "weight": 50, "label": "production"}, {"key": "candidate", "weight": 50, "label": "canary"}],
     "arms", "no label 'canary'"),
    ([{"key": "control", "weight": 50, "label": "production"}, {"key": "control", "weight": 50, "version": 2}],
     "arms", "distinct key"),
    ([{"key": "control", "weight": 50, "label": "production"}, {"key": "candidate", "weight": 50, "version": 9}],
     "arms", "no version 9"),
    ([{"key": "control", "weight": 50, "label": "staging"}, {"key": "candidate", "weight": 50, "version": 1}],
     "arms", "The first arm is the control"),
    ([{"key": "control", "weight": 50, "label": "production"}, {"key": "same", "weight": 50, "version": 1}],
     "arms", None),  # v1 by number is a different target from @production: allowed
])
def test_bad_arms_are_refused_naming_the_problem_and_nothing_is_written(prompt, engineer, arms, field, message):
    before = Experiment.objects.count()
    if message is None:
        services.experiment_create(actor=engineer, prompt=prompt, name="ok", arms=arms)
        return
    with pytest.raises(ValidationError) as caught:
        services.experiment_create(actor=engineer, prompt=prompt, name="Bad", arms=arms)
    assert message in " ".join(caught.value.message_dict[field])
    assert Experiment.objects.count() == before


def test_a_kill_needs_a_reason_and_one_experiment_per_prompt_is_live(experiment, prompt, engineer):
    services.experiment_start(experiment=experiment, actor=engineer)
    with pytest.raises(ValidationError, match="Say why"):
        services.experiment_kill(experiment=experiment, actor=engineer, reason=" ")
    second = services.experiment_create(actor=engineer, prompt=prompt, name="Another", arms=ARMS)
    with pytest.raises(ValidationError, match="Another experiment on support/triage-summary is running"):
        services.experiment_start(experiment=second, actor=engineer)
    assert Experiment.objects.get(pk=second.pk).status == Status.DRAFT


def _traffic(experiment, arm: str, *, n: int, successes: int, overridden: int = 0, unsafe: int = 0,
             cost: str = "0.002", latency=lambda i: 100 + i, feedback: int | None = None, **extra):
    """n answered calls of one arm; the first `feedback` (all) of them get evals feedback, `successes` of those
    successful, `overridden` overridden; `unsafe` carry a guardrail action."""
    events = UsageEventFactory.create_batch(n, experiment_id=experiment.pk, experiment_arm=arm, cost=Decimal(cost),
                                            **extra)
    UsageEvent.objects.filter(pk__in=[e.pk for e in events[:unsafe]]).update(
        guardrail_actions=[{"direction": "output", "check": "pii", "action": "redact"}])
    for i, event in enumerate(events):
        UsageEvent.objects.filter(pk=event.pk).update(latency_ms=latency(i))
    Feedback.objects.bulk_create([Feedback(request_id=e.request_id, success=i < successes, overridden=i < overridden)
                                  for i, e in enumerate(events[:n if feedback is None else feedback])])
    return events


def test_outcomes_cost_latency_and_safety_are_attributed_to_each_arm(experiment, engineer):
    services.experiment_start(experiment=experiment, actor=engineer)
    _traffic(experiment, "control", n=40, successes=20, overridden=8, unsafe=2)
    _traffic(experiment, "candidate", n=40, successes=30, overridden=4, cost="0.003", feedback=30)
    UsageEventFactory(experiment_id=None, cost=Decimal("9"))  # outside the experiment: not counted
    result = selectors.comparison(experiment)
    control, candidate = result["arms"]
    assert (control["calls"], control["outcomes"], control["success"]["value"]) == (40, 40, 0.5)
    assert (candidate["calls"], candidate["outcomes"], candidate["success"]["value"]) == (40, 30, 1.0)
    assert control["override"]["value"] == 8 / 40 and candidate["override"]["value"] == 4 / 30
    assert control["safety"]["value"] == 2 / 40 and candidate["safety"]["k"] == 0
    # cost per success over the calls with a known outcome: 40 × 0.002 / 20 and 30 × 0.003 / 30
    assert control["cost_per_success"]["value"] == pytest.approx(0.004)
    assert candidate["cost_per_success"]["value"] == pytest.approx(0.003)
    assert control["latency"]["p50"]["value"] == 119 and control["latency"]["p95"]["value"] == 137
    assert control["success"]["low"] < 0.5 < control["success"]["high"]
    assert candidate["test"]["difference"] == pytest.approx(0.5) and candidate["winner"]
    assert "a winner" in candidate["verdict"] and result["winner"] == "candidate" and result["enough"]


def test_an_experiment_without_outcomes_says_there_is_not_enough_data(experiment, engineer):
    services.experiment_start(experiment=experiment, actor=engineer)
    result = selectors.comparison(experiment)
    assert [r["calls"] for r in result["arms"]] == [0, 0] and not result["enough"]
    assert result["arms"][1]["verdict"].startswith("Not enough data yet: 0 of 20 outcomes")
    assert result["arms"][0]["success"]["value"] is None and result["arms"][0]["cost_per_success"] is None
    assert not result["arms"][1]["winner"]


def test_promoting_the_winner_opens_the_catalogs_request_with_the_result_as_a_gate_check(experiment, engineer,
                                                                                         owner):
    services.experiment_start(experiment=experiment, actor=engineer)
    _traffic(experiment, "control", n=60, successes=30)
    _traffic(experiment, "candidate", n=60, successes=57)
    request = services.experiment_promote(experiment=experiment, actor=engineer, arm_key="candidate")
    experiment.refresh_from_db()
    assert experiment.status == Status.STOPPED and experiment.promotion_request_id == request.pk
    assert (request.label, request.to_version.number) == ("production", 2)
    check = GateCheckResult.objects.get(request=request, key="experiment")
    assert check.status == "passed" and check.details["arm"] == "candidate"
    assert check.details["result"]["winner"] == "candidate"  # the experiment's result, stored with the check
    assert _actions(experiment)[-2:] == ["experiment.stop", "experiment.promote"]
    assert Notification.objects.filter(user=owner, kind="prompt.promotion.waiting").exists()  # the approvers


def test_promoting_an_arm_that_did_not_win_is_possible_but_its_gate_check_fails(experiment, engineer):
    services.experiment_start(experiment=experiment, actor=engineer)
    request = services.experiment_promote(experiment=experiment, actor=engineer, arm_key="candidate")
    check = GateCheckResult.objects.get(request=request, key="experiment")
    assert check.status == "failed" and check.blocks and "Not enough data" in check.summary
    with pytest.raises(ValidationError, match="candidate arm"):
        services.experiment_promote(experiment=experiment, actor=engineer, arm_key="control")
    assert PromotionRequest.objects.count() == 1


def test_experiment_counts_are_experiments_started_per_use_case_in_the_window(prompt, engineer):
    now = timezone.now()
    started = []
    for name, use_case, days_ago in (("a", 7, 3), ("b", 7, 10), ("c", 8, 3), ("d", None, 3)):
        e = services.experiment_create(actor=engineer, prompt=prompt, name=name, arms=ARMS, use_case_id=use_case)
        Experiment.objects.filter(pk=e.pk).update(started_at=now - timedelta(days=days_ago), status=Status.STOPPED)
        started.append(e)
    services.experiment_create(actor=engineer, prompt=prompt, name="never started", arms=ARMS, use_case_id=7)
    counts = selectors.experiment_counts(use_case_ids=[7, 8, 9], since=now - timedelta(days=7), until=now)
    assert counts == {7: 1, 8: 1}
    assert selectors.experiment_counts(use_case_ids=[7], since=now - timedelta(days=30), until=now) == {7: 2}


def test_the_owners_are_told_once_when_an_arm_wins_or_is_less_safe(prompt, engineer, owner):
    experiment = services.experiment_create(actor=engineer, prompt=prompt, name="Three arms", min_outcomes=20, arms=[
        {"key": "control", "weight": 34, "label": "production"}, {"key": "bullets", "weight": 33, "label": "staging"},
        {"key": "risky", "weight": 33, "version": 1}])
    services.experiment_start(experiment=experiment, actor=engineer)
    _traffic(experiment, "control", n=60, successes=30)
    _traffic(experiment, "bullets", n=60, successes=57)
    _traffic(experiment, "risky", n=60, successes=30, unsafe=30)  # units per arm as the weights say (no SRM)
    assert services.experiments_verdicts_notify() == 4  # two notices, each to the owner and the author
    assert services.experiments_verdicts_notify() == 0  # once per arm and verdict
    told = set(Notification.objects.filter(kind__in=["experiment.winner", "experiment.harm"])
               .values_list("kind", "user__username"))
    assert told == {("experiment.winner", "olivia-owner"), ("experiment.winner", "evan-engineer"),
                    ("experiment.harm", "olivia-owner"), ("experiment.harm", "evan-engineer")}


def test_the_comparison_is_per_unit_with_the_intervals_worked_by_hand(experiment, engineer):
    services.experiment_start(experiment=experiment, actor=engineer)
    unit_calls(experiment, "control", {"u1": (3, 2), "u2": (1, 0), "u3": (4, 4)})
    unit_calls(experiment, "candidate", {"u4": (2, 1), "u5": (2, 1)})
    control, candidate = selectors.comparison(experiment)["arms"]
    # control: R = 6 / 8; residuals s − R·o: −0.25, −0.75, 1 → Σ² = 1.625; Var = 1.625 / (3 · 2 · (8/3)²)
    variance = 1.625 / (3 * 2 * (8 / 3) ** 2)
    assert (control["units"], control["calls"], control["success"]["value"]) == (3, 8, 0.75)
    assert control["success"]["low"] == pytest.approx(0.75 - stats.Z95 * variance ** 0.5)
    assert control["success"]["high"] == 1.0  # clipped
    # candidate: 1 of 2 for both users, no spread between units: Var = 0; the difference's variance is control's
    assert candidate["success"]["value"] == 0.5 and candidate["success"]["low"] == 0.5
    expected = stats.msprt_normal(-0.25, variance, tau2=experiment.mde ** 2, alpha=experiment.alpha)
    assert candidate["test"]["p_value"] == pytest.approx(expected.p_value)
    assert candidate["test"]["low"] == pytest.approx(expected.low)
    # cost per success per unit: 8 × 0.001 / 6 successes; the same residual form on (cost, successes)
    assert control["cost_per_success"]["value"] == pytest.approx(0.008 / 6)


def test_a_sample_ratio_mismatch_alarms_once_and_makes_the_result_untrustworthy_until_acknowledged(
        experiment, engineer, owner, viewer):
    services.experiment_start(experiment=experiment, actor=engineer)
    unit_calls(experiment, "control", {f"c{n}": (1, n % 2) for n in range(60)})
    unit_calls(experiment, "candidate", {f"t{n}": (1, 1) for n in range(25)})  # 50/50 weights, 60 vs 25 users
    before = selectors.comparison(experiment)
    assert before["srm"]["mismatch"] and before["srm"]["p_value"] < selectors.SRM_ALPHA
    assert not before["trustworthy"] and before["winner"] is None
    assert "Sample ratio mismatch" in before["arms"][1]["verdict"]

    assert services.experiments_srm_check() == 1
    assert services.experiments_srm_check() == 0  # once
    experiment.refresh_from_db()
    assert experiment.srm_open and experiment.srm_p_value == pytest.approx(before["srm"]["p_value"])
    assert set(Notification.objects.filter(kind="experiment.srm").values_list("user__username", flat=True)) == \
        {"olivia-owner", "evan-engineer"}
    assert _actions(experiment)[-1] == "experiment.srm_alarm"

    with pytest.raises(PermissionDenied):
        services.experiment_srm_acknowledge(experiment=experiment, actor=viewer, note="fine by me")
    with pytest.raises(ValidationError, match="Say what caused"):
        services.experiment_srm_acknowledge(experiment=experiment, actor=engineer, note=" ")
    assert Experiment.objects.get(pk=experiment.pk).srm_open
    services.experiment_stop(experiment=experiment, actor=engineer)
    assert Experiment.objects.get(pk=experiment.pk).result["winner"] is None  # stored as it stood
    services.experiment_srm_acknowledge(experiment=experiment, actor=owner, note="A crawler without a user id.")
    experiment.refresh_from_db()
    after = selectors.ended_result(experiment)
    assert after["trustworthy"] and after["winner"] == "candidate" and not experiment.srm_open
    assert _actions(experiment)[-1] == "experiment.srm_acknowledge"


def test_no_alarm_while_the_units_follow_the_weights(experiment, engineer):
    services.experiment_start(experiment=experiment, actor=engineer)
    unit_calls(experiment, "control", {f"c{n}": (3, 1) for n in range(40)})  # heavy users: calls do not count
    unit_calls(experiment, "candidate", {f"t{n}": (1, 1) for n in range(44)})
    assert services.experiments_srm_check() == 0
    assert selectors.comparison(experiment)["trustworthy"]
    with pytest.raises(ValidationError, match="no sample ratio mismatch"):
        services.experiment_srm_acknowledge(experiment=experiment, actor=engineer, note="nothing to see")
