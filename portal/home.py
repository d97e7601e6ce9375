"""The home page summary: one small read per area, each restricted to what the viewer may see."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from apps.accounts.permissions import Action, restrict
from apps.accounts.selectors import team_list
from apps.audit.selectors import audit_event_list
from apps.costs.models import UsageEvent
from apps.llm.selectors import model_list


@dataclass
class HomeSummary:
    teams: list = field(default_factory=list)
    recent_events: list = field(default_factory=list)
    model_count: int = 0
    spend_30d: object = None
    calls_30d: int = 0
    unpriced_30d: int = 0


def home_summary(*, actor) -> HomeSummary:
    since = timezone.now() - timedelta(days=30)
    usage = restrict(UsageEvent.objects.filter(occurred_at__gte=since), actor, Action.VIEW).aggregate(
        spend=Sum("cost"), calls=Count("id"), unpriced=Count("id", filter=_unpriced()),
    )
    return HomeSummary(
        teams=list(team_list(actor=actor)[:12]),
        recent_events=list(audit_event_list(actor=actor)[:8]),
        model_count=model_list().count(),
        spend_30d=usage["spend"],
        calls_30d=usage["calls"],
        unpriced_30d=usage["unpriced"],
    )


def _unpriced():
    from django.db.models import Q

    return Q(cost__isnull=True, status="ok")
