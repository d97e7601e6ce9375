"""The `experiment` promotion gate check (apps/prompts/registry.py): a request to move a label to a version an
experiment tested passes when that arm won (better task success, significant by the mSPRT, and no significant
rise in safety violations); the experiment's result is stored with the check (its details). A version no
experiment tested: "not configured" (blocks only where the team's policy says so)."""

from __future__ import annotations

from django.urls import reverse

from apps.experiments import selectors
from apps.experiments.models import Experiment, Status
from apps.prompts.registry import CheckOutcome, GateContext


def _tested(ctx: GateContext) -> tuple[Experiment, dict, dict] | None:
    """The experiment this request promotes from (else the latest that tested the version), the arm's row and
    the result. An ended experiment's result records the version each arm served when it ended."""
    experiments = Experiment.objects.filter(prompt_id=ctx.prompt.pk).exclude(status=Status.DRAFT) \
        .select_related("prompt").order_by("-created_at", "-id")
    linked = [e for e in experiments if e.promotion_request_id == ctx.request.pk]
    for experiment in linked or experiments:
        result = selectors.ended_result(experiment)
        for row in result["arms"][1:]:
            if not row.get("model") and row.get("version") == ctx.to_version.number:
                return experiment, row, result
    return None


def experiment_check(ctx: GateContext) -> CheckOutcome:
    found = _tested(ctx)
    if found is None:
        return CheckOutcome.not_configured("No online experiment tested this version.")
    experiment, row, result = found
    details = {"experiment": experiment.pk, "name": experiment.name, "arm": row["key"],
               "url": reverse("experiments:detail", args=[experiment.pk]), "result": result}
    summary = f"Experiment #{experiment.pk} ({experiment.name}), arm {row['key']}: {row['verdict']}"
    if row.get("winner"):
        return CheckOutcome.passed(summary, **details)
    return CheckOutcome.failed(summary, **details)
