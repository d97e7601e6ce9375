"""What reviews registers at start-up, in one place (docs/architecture.md, "The registries"): its own condition
predicates, and what it plugs into lower apps: the prompt catalog's `use_case` gate check, the kill-switch
resolve guard (423), the prompt-page panel and the catalog's "use case" filter; the cost dashboard's use-case
names; the header's "waiting on you" counts. `register()` is called once, from `ReviewsConfig.ready()`.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.urls import reverse

from apps.accounts.permissions import council_seats
from apps.costs.panels import register_use_case_names
from apps.gateway.registry import AdmissionTarget, register_admission_guard, register_guard_policy
from apps.notifications.waiting import Waiting, register_waiting
from apps.prompts import registry
from apps.prompts.registry import CheckOutcome
from apps.reviews import conditions, selectors, workflow
from apps.reviews.models import ControlWaiver, State, UseCase, UseCasePrompt
from apps.reviews.prompt_status import blocking_reason, prompt_status


def resolve_guard(target) -> str | None:
    return prompt_status(target.prompt_id)


def use_case_guard(target: AdmissionTarget) -> str | None:
    """The gateway's `use_case` admission guard: why a key's traffic may not pass now (its use case missing,
    not approved, suspended, expired), or None. The gateway asks at most once per GATEWAY_ADMISSION_TTL_SECONDS
    per key and process, so a suspension is seen within a second everywhere; one indexed query per ask."""
    if target.use_case_id is None:
        return None
    use_case = UseCase.objects.filter(pk=target.use_case_id).only("title", "state", "expires_at").first()
    if use_case is None:
        return f"This key is bound to use case #{target.use_case_id}, which does not exist."
    reason = blocking_reason(use_case)
    if reason:
        return reason
    if use_case.state not in workflow.LIVE:
        return f"Use case “{use_case.title}” is {use_case.state_label.lower()}, not active."
    return None


# What a required (and not waived) control asks of the use case's gateway traffic (apps/gateway/guard.py).
CONTROL_GUARDRAILS = {
    "pii_redaction": {"guard_input_pii": "redact", "guard_output": "redact"},
    "prompt_injection_red_team": {"guard_injection": "flag"},
    "log_retention": {"guard_event_content": "none"},
}


def use_case_guard_policy(target: AdmissionTarget) -> dict[str, str] | None:
    """The gateway's `use_case` guardrail policy: what the use case's required controls ask of its traffic (the
    gateway takes the stricter of this and the key's own). Asked like the admission guard, at most once per
    GATEWAY_ADMISSION_TTL_SECONDS per key and process."""
    if target.use_case_id is None:
        return None
    controls = UseCase.objects.filter(pk=target.use_case_id).values_list("required_controls", flat=True).first()
    if not controls:
        return None
    waived = set(ControlWaiver.objects.filter(use_case_id=target.use_case_id).values_list("control", flat=True))
    policy: dict[str, str] = {}
    for control in controls:
        if control not in waived:
            policy.update(CONTROL_GUARDRAILS.get(control, {}))
    return policy or None


def gate_check(context):
    use_cases = list(UseCase.objects.filter(prompt_links__prompt_id=context.prompt.pk).order_by("pk"))
    if not use_cases:
        return CheckOutcome.not_configured("No use case is linked to this prompt.")
    details = {"use_cases": [{"id": u.pk, "title": u.title, "state": u.state} for u in use_cases]}
    for use_case in use_cases:
        reason = blocking_reason(use_case)
        if reason:
            return CheckOutcome.failed(reason, **details)
    live = [u for u in use_cases if u.state in (State.ACTIVE, State.REVIEW_DUE)]
    if live:
        return CheckOutcome.passed(f"Use case “{live[0].title}” is approved until "
                                   f"{live[0].expires_at:%Y-%m-%d}.", **details)
    return CheckOutcome.failed(f"Use case “{use_cases[0].title}” is {use_cases[0].state_label.lower()}, "
                               "not approved.", **details)


def prompt_panel(*, prompt, user, **_):
    use_cases = list(selectors.use_case_list(actor=user).filter(prompt_links__prompt=prompt).order_by("title"))
    html = render_to_string("reviews/partials/_prompt_panel.html", {"use_cases": use_cases, "prompt": prompt})
    return {"title": "Use case", "html": html}


def filter_choices(*, user=None, **_):
    return [(str(pk), title) for pk, title in selectors.use_case_list(actor=user).values_list("pk", "title")[:200]]


def filter_apply(queryset, value):
    if value == "none":
        return queryset.exclude(Exists(UseCasePrompt.objects.filter(prompt=OuterRef("pk"))))
    if not str(value).isdigit():
        return queryset.none()
    return queryset.filter(Exists(UseCasePrompt.objects.filter(prompt=OuterRef("pk"), use_case_id=int(value))))


def waiting(user):
    """The header's "waiting on you": in-review use cases that need this council member's vote."""
    queue = selectors.vote_queue(user=user)
    return Waiting("review.votes", "Use cases waiting for your vote", len(queue), reverse("reviews:list")) \
        if queue else None


def waiting_tier_changes(user):
    """Tier changes awaiting legal sign-off (legal seat holders were asked in their inbox)."""
    if "legal" not in council_seats(user):
        return None
    count = selectors.pending_tier_changes().count()
    return Waiting("review.tier_changes", "Tier changes awaiting legal sign-off", count, reverse("reviews:list"))


def waiting_conditions(user):
    """Conditions this person owns whose due notice went out and that are not met or evidenced yet."""
    count = selectors.conditions_due(owner=user).count()
    return Waiting("review.conditions", "Use-case conditions due", count, reverse("reviews:list"))


def use_case_names(ids: list[int]) -> dict[int, tuple[str, int | None]]:
    """How the cost dashboard names the use cases on its ledger: {id: (title, team id)} in one query."""
    return {pk: (title, team_id) for pk, title, team_id in
            UseCase.objects.filter(pk__in=ids).values_list("pk", "title", "team_id")}


def register() -> None:
    conditions.register_builtins()
    register_waiting("review.votes", waiting)
    register_waiting("review.tier_changes", waiting_tier_changes)
    register_waiting("review.conditions", waiting_conditions)
    registry.register_gate_check("use_case", "Use case approved, not expired or suspended", gate_check, order=30)
    registry.register_resolve_guard("use_case", resolve_guard)
    registry.register_prompt_panel("use_case", prompt_panel)
    registry.register_prompt_filter("use_case", "Use case", filter_choices, filter_apply)
    register_admission_guard("use_case", use_case_guard)
    register_guard_policy("use_case", use_case_guard_policy)
    register_use_case_names(use_case_names)
