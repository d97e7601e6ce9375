"""The built-in gate checks: lint and approvals. Others (use case, eval gate) come through the registry."""

from __future__ import annotations

from apps.accounts.models import Membership, Role
from apps.prompts.lint import ERROR, counts, lint_version
from apps.prompts.models import Decision, PromptPolicy
from apps.prompts.registry import CheckOutcome, GateContext
from apps.prompts.rendering import include_graph

APPROVER_ROLES = (Role.ENGINEER, Role.OWNER)


def policy_for(team_id: int) -> PromptPolicy:
    """The team's policy, or the defaults (unsaved) when the team never set one."""
    return PromptPolicy.objects.filter(team_id=team_id).first() or PromptPolicy(team_id=team_id)


def gate_context(request) -> GateContext:
    """What the checks see of a promotion request (with its team's policy)."""
    return GateContext(request=request, prompt=request.prompt, to_version=request.to_version,
                       from_version=request.from_version, label=request.label,
                       policy=policy_for(request.prompt.team_id))


def lint_check(ctx: GateContext) -> CheckOutcome:
    graph = include_graph(ctx.to_version)
    findings = lint_version(ctx.to_version, extra_used=graph.variables)
    details = {"findings": [f.as_dict() for f in findings],
               "includes": [p.as_dict() for p in graph.problems]}
    errors, warnings = counts(findings)
    errors += len(graph.problems)
    if errors or (warnings and ctx.policy.lint_warnings_block):
        blocking_count = errors + (warnings if ctx.policy.lint_warnings_block else 0)
        first = graph.problems[0].message if graph.problems else next(
            f.message for f in findings if f.severity == ERROR or ctx.policy.lint_warnings_block)
        return CheckOutcome.failed(f"{blocking_count} blocking finding(s). First: {first}", **details)
    if warnings:
        return CheckOutcome.passed(f"Passed with {warnings} warning(s).", **details)
    return CheckOutcome.passed("No findings.", **details)


def eligible_approvers(ctx: GateContext) -> set[int]:
    """Engineers and owners of the owning team, now, except the version's author and the requester."""
    members = set(Membership.objects.filter(team_id=ctx.prompt.team_id, role__in=APPROVER_ROLES)
                  .values_list("user_id", flat=True))
    return members - {ctx.to_version.author_id, ctx.request.requested_by_id} - {None}


def approvals_check(ctx: GateContext) -> CheckOutcome:
    needed = ctx.policy.approvals_required
    eligible = eligible_approvers(ctx)
    approvals = list(ctx.request.approvals.filter(decision=Decision.APPROVE).select_related("user"))
    counted = [a.user.get_username() for a in approvals if a.user_id in eligible]
    ignored = [a.user.get_username() for a in approvals if a.user_id not in eligible]
    details = {"required": needed, "counted": counted, "not_counted": ignored}
    if len(counted) >= needed:
        return CheckOutcome.passed(f"{len(counted)} of {needed} approval(s): {', '.join(counted)}.", **details)
    summary = (f"{len(counted)} of {needed} approval(s): needs an engineer or owner of the owning team who is "
               "neither the author of the version nor the requester.")
    if ignored:
        summary += f" Not counted: {', '.join(ignored)}."
    return CheckOutcome.failed(summary, **details)
