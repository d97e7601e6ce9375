"""The red-team release gate (registered with prompts' gate registry as `redteam`): a prompt that serves an
elevated or high-risk use case moves to production only with a finished campaign on the exact version
(content hash) whose ASR upper bound (Wilson 95 %) is below the team's threshold in every category, and whose
judge, if it used one, agrees with human labels at the team's stated kappa."""

from __future__ import annotations

from django.urls import reverse

from apps.prompts.models import PRODUCTION
from apps.prompts.registry import CheckOutcome, GateContext
from apps.redteam import selectors


def redteam_gate_check(context: GateContext) -> CheckOutcome:
    if context.label != PRODUCTION:
        return CheckOutcome.passed(f"Only production needs a red-team campaign, not {context.label}.")
    use_cases = selectors.gated_use_cases(context.prompt.pk)
    if not use_cases:
        return CheckOutcome.passed("No elevated or high-risk use case is linked: no red-team campaign needed.")
    names = ", ".join(f"“{u.title}” ({u.tier})" for u in use_cases)
    version = context.to_version
    campaign = selectors.latest_finished(prompt_id=context.prompt.pk, version_hash=version.content_hash)
    if campaign is None:
        return CheckOutcome.failed(
            f"{names} needs a finished red-team campaign on v{version.number} (this exact content); none yet.",
            use_cases=[u.pk for u in use_cases])
    details = {"campaign": campaign.pk, "link": reverse("redteam:report", args=[campaign.pk]),
               "use_cases": [u.pk for u in use_cases]}
    policy = selectors.policy_for(campaign.team_id)
    problem = selectors.judge_problem(campaign, policy)
    if problem:
        return CheckOutcome.failed(problem, **details)
    breaches = selectors.category_breaches(campaign, policy)
    if breaches:
        worst = ", ".join(f"{b['name']} ≤ {b['high']:.1%} (limit {b['limit']:.0%})" for b in breaches)
        return CheckOutcome.failed(f"Campaign {campaign.pk}: ASR upper bound not below the threshold in {worst}.",
                                   **details)
    overall = campaign.summary.get("overall") or {}
    return CheckOutcome.passed(
        f"Campaign {campaign.pk} on v{version.number}: {overall.get('successes', 0)}/{overall.get('total', 0)} "
        f"attacks succeeded; every category's upper bound is below the team's threshold.", **details)
