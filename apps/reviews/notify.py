"""Notifications about use cases, delivered through the portal's one inbox (`apps.notifications`, ADR 0060).

`notify()` is the only function the rest of reviews calls: it names the use case as the link and a
`review.*` kind, and hands over to `apps.notifications.services.notify` (inbox row + e-mail after commit).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import models

from apps.accounts.models import CouncilSeat
from apps.notifications import services as notifications
from apps.reviews.models import UseCase


class NotificationKind(models.TextChoices):
    """Kinds of review messages in the shared inbox (dotted, like `budget.threshold` and `cost.anomaly`)."""

    VOTE_NEEDED = "review.vote_needed", "Vote needed"
    DECISION = "review.decision", "Decision"
    CONDITION_DUE = "review.condition_due", "Condition due"
    CONDITION_FAILED = "review.condition_failed", "Condition failing"
    EXPIRY_COMING = "review.expiry_coming", "Expiry coming"
    STATE_CHANGED = "review.state_changed", "State changed"
    COMMENT = "review.comment", "Comment"


def notify(*, recipients, kind: str, subject: str, body: str = "", use_case: UseCase | None = None,
           dedupe_key: str = "") -> int:
    """One inbox message per distinct active recipient, e-mailed after commit; a repeated `dedupe_key` is
    skipped per person. Returns how many messages were delivered."""
    link = use_case.get_absolute_url() if use_case is not None else ""
    created = notifications.notify(users=recipients, kind=str(kind), title=subject, body=body, link=link,
                                   dedupe_key=dedupe_key)
    return len(created)


def seat_holders(seats) -> list:
    """Active users holding any of the given council seats ("any" = every seat)."""
    names = [CouncilSeat(s).group_name for s in (CouncilSeat.values if "any" in seats else seats)]
    return list(get_user_model().objects.filter(groups__name__in=names, is_active=True).distinct())


def team_people(use_case: UseCase) -> list:
    people = [use_case.business_owner, use_case.created_by]
    people += [s.submitted_by for s in use_case.submissions.select_related("submitted_by")]
    return [p for p in people if p is not None]
