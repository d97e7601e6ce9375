"""What reviews plugs into the prompt catalog at start-up: the `use_case` gate check, the kill-switch resolve
guard (423), the prompt-page panel and the catalog's "use case" filter.

The resolve guard is on the hot path: it reads a per-prompt status from the Django cache, filled on a miss
and dropped (after commit) on every state change of a linked use case.
"""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone

from apps.reviews.models import State, UseCase, UseCasePrompt

CACHE_TTL = 300
_OK = "ok"


def _cache_key(prompt_id: int) -> str:
    return f"reviews:prompt-status:{prompt_id}"


def _blocking_reason(use_case: UseCase) -> str | None:
    if use_case.state == State.SUSPENDED:
        return f"Use case “{use_case.title}” is suspended."
    if use_case.state == State.EXPIRED or (use_case.state in (State.ACTIVE, State.REVIEW_DUE)
                                           and use_case.expires_at and use_case.expires_at <= timezone.now()):
        return f"The approval of use case “{use_case.title}” has expired."
    return None


def prompt_status(prompt_id: int) -> str | None:
    """The reason this prompt must not be served (a linked use case suspended or expired), or None."""
    cached = cache.get(_cache_key(prompt_id))
    if cached is not None:
        return None if cached == _OK else cached
    reason = None
    for use_case in UseCase.objects.filter(prompt_links__prompt_id=prompt_id).only("title", "state", "expires_at"):
        reason = _blocking_reason(use_case)
        if reason:
            break
    cache.set(_cache_key(prompt_id), reason or _OK, CACHE_TTL)
    return reason


def forget_prompt_status(use_case_id: int, prompt_ids=None) -> None:
    ids = list(prompt_ids or UseCasePrompt.objects.filter(use_case_id=use_case_id).values_list("prompt_id", flat=True))
    if ids:
        cache.delete_many([_cache_key(pk) for pk in ids])


def resolve_guard(target) -> str | None:
    return prompt_status(target.prompt_id)


def gate_check(context):
    from apps.prompts.registry import CheckOutcome

    use_cases = list(UseCase.objects.filter(prompt_links__prompt_id=context.prompt.pk).order_by("pk"))
    if not use_cases:
        return CheckOutcome.not_configured("No use case is linked to this prompt.")
    details = {"use_cases": [{"id": u.pk, "title": u.title, "state": u.state} for u in use_cases]}
    for use_case in use_cases:
        reason = _blocking_reason(use_case)
        if reason:
            return CheckOutcome.failed(reason, **details)
    live = [u for u in use_cases if u.state in (State.ACTIVE, State.REVIEW_DUE)]
    if live:
        return CheckOutcome.passed(f"Use case “{live[0].title}” is approved until "
                                   f"{live[0].expires_at:%Y-%m-%d}.", **details)
    return CheckOutcome.failed(f"Use case “{use_cases[0].title}” is {use_cases[0].state_label.lower()}, "
                               "not approved.", **details)


def prompt_panel(*, prompt, user, **_):
    from apps.reviews.selectors import use_case_list

    use_cases = list(use_case_list(actor=user).filter(prompt_links__prompt=prompt).order_by("title"))
    html = render_to_string("reviews/partials/_prompt_panel.html", {"use_cases": use_cases, "prompt": prompt})
    return {"title": "Use case", "html": html}


def filter_choices(*, user=None, **_):
    from apps.reviews.selectors import use_case_list

    return [(str(pk), title) for pk, title in use_case_list(actor=user).values_list("pk", "title")[:200]]


def filter_apply(queryset, value):
    if value == "none":
        return queryset.exclude(Exists(UseCasePrompt.objects.filter(prompt=OuterRef("pk"))))
    if not str(value).isdigit():
        return queryset.none()
    return queryset.filter(Exists(UseCasePrompt.objects.filter(prompt=OuterRef("pk"), use_case_id=int(value))))


def waiting(user):
    """The header's "waiting on you": in-review use cases that need this council member's vote."""
    from django.urls import reverse

    from apps.notifications.waiting import Waiting
    from apps.reviews.selectors import vote_queue

    queue = vote_queue(user=user)
    return Waiting("review.votes", "Use cases waiting for your vote", len(queue), reverse("reviews:list")) \
        if queue else None


def waiting_tier_changes(user):
    """Tier changes awaiting legal sign-off (legal seat holders were asked in their inbox)."""
    from django.urls import reverse

    from apps.accounts.permissions import council_seats
    from apps.notifications.waiting import Waiting
    from apps.reviews.models import TierChange, TierChangeStatus

    if "legal" not in council_seats(user):
        return None
    count = TierChange.objects.filter(status=TierChangeStatus.PENDING).count()
    return Waiting("review.tier_changes", "Tier changes awaiting legal sign-off", count, reverse("reviews:list"))


def waiting_conditions(user):
    """Conditions this person owns whose due notice went out and that are not met or evidenced yet."""
    from django.urls import reverse

    from apps.notifications.waiting import Waiting
    from apps.reviews.models import Condition, ConditionStatus

    count = (Condition.objects.filter(owner=user, due_notice_sent_at__isnull=False)
             .filter(status__in=[ConditionStatus.PENDING, ConditionStatus.FAILING]).count())
    return Waiting("review.conditions", "Use-case conditions due", count, reverse("reviews:list"))


def register() -> None:
    from apps.notifications.waiting import register_waiting
    from apps.prompts import registry

    register_waiting("review.votes", waiting)
    register_waiting("review.tier_changes", waiting_tier_changes)
    register_waiting("review.conditions", waiting_conditions)
    registry.register_gate_check("use_case", "Use case approved, not expired or suspended", gate_check, order=30)
    registry.register_resolve_guard("use_case", resolve_guard)
    registry.register_prompt_panel("use_case", prompt_panel)
    registry.register_prompt_filter("use_case", "Use case", filter_choices, filter_apply)
