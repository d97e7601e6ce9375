"""The `experiment` promotion gate check (apps/prompts/registry.py): a request to move a label to a version an
experiment tested passes when that arm won (better task success, significant by the mSPRT, and no significant
rise in safety violations); the experiment's result is stored with the check (its details). A version no
experiment tested: "not configured" (blocks only where the team's policy says so)."""

from __future__ import annotations

from django.urls import reverse

from apps.experiments import selectors
from apps.experiments.models import Experiment, Status
from apps.prompts.registry import CheckOutcome, GateContext


def _tested(ctx: GateContext) -> tuple[Experiment, str] | None:
    """The experiment this request promotes from (else the latest that tested the version) and the arm."""
    experiments = Experiment.objects.filter(prompt_id=ctx.prompt.pk).exclude(status=Status.DRAFT) \
        .select_related("prompt").order_by("-created_at", "-id")
    chosen = [e for e in experiments if e.promotion_request_id == ctx.request.pk] or list(experiments)
    for experiment in chosen:
        for arm in selectors.arms_of(experiment)[1:]:
            if not arm.model and selectors.arm_version(arm, experiment.prompt) == ctx.to_version.number:
                return experiment, arm.key
    return None


def experiment_check(ctx: GateContext) -> CheckOutcome:
    found = _tested(ctx)
    if found is None:
        return CheckOutcome.not_configured("No online experiment tested this version.")
    experiment, arm_key = found
    result = selectors.ended_result(experiment)
    row = next((r for r in result["arms"] if r["key"] == arm_key), None)
    details = {"experiment": experiment.pk, "name": experiment.name, "arm": arm_key,
               "url": reverse("experiments:detail", args=[experiment.pk]), "result": result}
    if row is None:
        return CheckOutcome.failed(f"Experiment #{experiment.pk}: no result for {arm_key}.", **details)
    summary = f"Experiment #{experiment.pk} ({experiment.name}), arm {arm_key}: {row['verdict']}"
    if row.get("winner"):
        return CheckOutcome.passed(summary, **details)
    return CheckOutcome.failed(summary, **details)
