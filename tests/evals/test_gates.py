"""The release gate: set and locked (audited, history), the `eval_gate` check on promotion requests, the
baseline, `manage.py eval_gate` and `POST /api/v1/evals/gate`."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from apps.accounts.models import Role
from apps.audit.models import AuditEvent
from apps.evals import runner
from apps.evals.gates import gate_evaluate, gate_runs_ensure, gate_set
from apps.evals.models import EvalGateChange, EvalRun, RunStatus
from apps.evals.services import evaluator_revise, run_create
from apps.prompts.content import Draft
from apps.prompts.models import Label
from apps.prompts.selectors import latest_check_results
from apps.prompts.services import (
    promotion_request_approve,
    promotion_request_open,
    promotion_request_recheck,
    version_create,
)
from tests.factories import MembershipFactory, UserFactory

WORSE = "Answer briefly.\nQuestion: {{ question }}"  # no context: the extractive model cannot cite


@pytest.fixture
def reviewer(team):
    user = UserFactory(username="rita-reviewer")
    MembershipFactory(team=team, user=user, role=Role.ENGINEER)
    return user


@pytest.fixture
def cites(make_evaluator):
    return make_evaluator("cites-a-passage", "citation")


@pytest.fixture
def gate(prompt, dataset, cites, engineer):
    return gate_set(prompt=prompt, actor=engineer, datasets=[{"dataset": dataset}], evaluators=[cites],
                    min_pass_rate=0.9, max_regression=0.05)


def eval_check(request):
    return next(r for r in latest_check_results(request) if r.key == "eval_gate")


def run_gate(prompt, number, *, expect_exit=0):
    out = io.StringIO()
    if expect_exit:
        with pytest.raises(SystemExit) as exc:
            call_command("eval_gate", prompt=prompt.name, version=number, threads=1, stdout=out)
        assert exc.value.code == expect_exit
    else:
        call_command("eval_gate", prompt=prompt.name, version=number, threads=1, stdout=out)
    return out.getvalue()


def promote(prompt, version, requester, approver):
    request = promotion_request_open(prompt=prompt, version=version, actor=requester, reason="ship")
    return promotion_request_approve(request=request, user=approver)


def test_setting_a_gate_is_audited_and_a_change_needs_a_reason_and_is_kept_in_history(gate, prompt, engineer, cites):
    assert gate.version == 1 and gate.datasets[0]["revision"] == 1
    with pytest.raises(ValidationError) as exc:
        gate_set(prompt=prompt, actor=engineer, datasets=gate.datasets, evaluators=[cites], min_pass_rate=0.8)
    assert "reason" in exc.value.message_dict
    changed = gate_set(prompt=prompt, actor=engineer, datasets=gate.datasets, evaluators=[cites], min_pass_rate=0.8,
                       reason="the new model is noisier")
    assert changed.version == 2
    history = list(EvalGateChange.objects.filter(gate=gate).order_by("version"))
    assert [h.version for h in history] == [1, 2]
    assert history[1].changes == {"min_pass_rate": [0.9, 0.8]} and history[1].reason == "the new model is noisier"
    assert AuditEvent.objects.filter(action="eval.gate.set").count() == 2


def test_without_a_gate_the_check_says_not_configured_and_does_not_block(prompt, version, engineer, reviewer):
    outcome = promote(prompt, version, engineer, reviewer)
    assert outcome.applied
    assert eval_check(outcome.request).status == "not_configured"


def test_the_gate_refuses_promotion_until_a_gating_run_of_the_exact_version_passes(
        gate, prompt, version, engineer, reviewer):
    outcome = promote(prompt, version, engineer, reviewer)
    assert not outcome.applied
    check = eval_check(outcome.request)
    assert check.status == "failed" and check.blocks
    assert "no finished gating run" in check.summary and "manage.py eval_gate" in check.summary
    assert not Label.objects.filter(prompt=prompt, name="production").exists()

    output = run_gate(prompt, 1)
    assert "PASSED" in output
    outcome = promotion_request_recheck(request=outcome.request, user=reviewer)
    assert outcome.applied
    check = eval_check(outcome.request)
    assert check.status == "passed"
    run = EvalRun.objects.get(prompt_version=version)
    assert {"label": f"Run #{run.pk} (support/faq-golden r1)", "url": f"/evals/runs/{run.pk}/"} in check.details["links"]


def test_a_version_failing_the_thresholds_is_refused(gate, prompt, engineer, reviewer, add_worse_version):
    v2 = add_worse_version()
    output = run_gate(prompt, 2, expect_exit=1)
    assert "FAILED" in output and "pass rate" in output
    outcome = promote(prompt, v2, engineer, reviewer)
    assert not outcome.applied and "pass rate 0.0% < 90.0%" in eval_check(outcome.request).summary


@pytest.fixture
def add_worse_version(prompt, engineer):
    def add(template=WORSE):
        return version_create(prompt=prompt, actor=engineer, commit_message="shorter",
                              draft=Draft(kind="text", template=template,
                                          config={"model": "local-extractive"})).version

    return add


def test_a_regression_against_the_production_baseline_is_refused(
        prompt, version, dataset, make_evaluator, engineer, reviewer, add_worse_version):
    close = make_evaluator("close-to-reference", "levenshtein", {}, 0.45)
    gate = gate_set(prompt=prompt, actor=engineer, datasets=[{"dataset": dataset}], evaluators=[close],
                    min_pass_rate=0.0, max_regression=0.05)
    run_gate(prompt, 1)
    assert promote(prompt, version, engineer, reviewer).applied  # v1 is production: the baseline
    v2 = add_worse_version()
    run_gate(prompt, 2, expect_exit=1)
    verdict = gate_evaluate(gate, v2)
    assert verdict.status == "failed"
    assert verdict.datasets[0].baseline.prompt_version_id == version.pk
    assert "regression" in verdict.summary()
    outcome = promote(prompt, v2, engineer, reviewer)
    assert not outcome.applied and "regression" in eval_check(outcome.request).summary
    compare_link = [link for link in eval_check(outcome.request).details["links"] if "Compare" in link["label"]]
    assert compare_link and "baseline=" in compare_link[0]["url"]


def test_runs_of_other_versions_evaluators_or_models_do_not_satisfy_the_gate(
        gate, prompt, version, dataset, cites, engineer, add_worse_version):
    # the same evaluator at a new version is another evaluator as far as the gate is concerned
    newer = evaluator_revise(definition=cites, params={"require_citation": False}, actor=engineer)
    run = run_create(actor=engineer, dataset=dataset, evaluators=[newer], target_ref={"version_id": version.pk},
                     enqueue=False)
    runner.run_execute_inline(run.pk, threads=1)
    other_config = run_create(actor=engineer, dataset=dataset, evaluators=[cites], enqueue=False,
                              target_ref={"version_id": version.pk}, model_config={"temperature": 0.7})
    runner.run_execute_inline(other_config.pk, threads=1)
    assert gate_evaluate(gate, version).status == "missing"
    run_gate(prompt, 1)
    assert gate_evaluate(gate, version).passed
    v2 = add_worse_version(template="Context:\n{{ context }}\nQ: {{ question }}")
    assert gate_evaluate(gate, v2).status == "missing"  # another content hash


def test_the_command_reuses_a_finished_gating_run(gate, prompt):
    run_gate(prompt, 1)
    output = run_gate(prompt, 1)
    assert "reusing finished run" in output
    assert EvalRun.objects.filter(gate=gate).count() == 1


def test_the_command_explains_a_missing_gate_or_version(prompt):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no eval gate"):
        call_command("eval_gate", prompt=prompt.name, version=1)
    with pytest.raises(CommandError, match="no prompt named"):
        call_command("eval_gate", prompt="nope/nope", version=1)


def test_the_gate_api_runs_the_gate_for_a_write_token(
        celery_worker, gate, prompt, engineer, token_for, client, team):
    _, secret = token_for(engineer, team, "write")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    body = json.dumps({"prompt": prompt.name, "version": 1})
    first = client.post("/api/v1/evals/gate", body, content_type="application/json", **headers)
    assert first.status_code == 202, first.content
    run_id = first.json()["runs"][0]["id"]
    deadline = time.monotonic() + 120
    while EvalRun.objects.get(pk=run_id).status != RunStatus.FINISHED:
        assert time.monotonic() < deadline, "the gating run did not finish"
        time.sleep(0.1)
    second = client.post("/api/v1/evals/gate", body, content_type="application/json", **headers)
    assert second.status_code == 200 and second.json()["passed"] is True
    assert second.json()["runs"][0]["id"] == run_id  # reused, not run again


def test_the_gate_api_refuses_read_tokens_and_other_teams(gate, prompt, engineer, outsider, other_team, token_for,
                                                          client, team):
    _, read = token_for(engineer, team, "read")
    _, other = token_for(outsider, other_team, "write")
    body = json.dumps({"prompt": prompt.name, "version": 1})
    assert client.post("/api/v1/evals/gate", body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {read}").status_code == 403
    assert client.post("/api/v1/evals/gate", body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404


def test_gating_runs_are_reused_while_active(gate, prompt, version, engineer):
    first = gate_runs_ensure(gate=gate, version=version, actor=engineer, enqueue=False)
    second = gate_runs_ensure(gate=gate, version=version, actor=engineer, enqueue=False)
    assert [r.pk for r in first] == [r.pk for r in second]
