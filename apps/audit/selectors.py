"""Reads of the audit log. Admins and council see everything; others see their teams' events and their own.

A token sees the events of its team, if its scope reads (an ingest token sees none). The visibility rule
is part of the SQL of every list (apps.accounts.permissions.restrict), never a loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import ApiToken, Team
from apps.accounts.permissions import Action, is_authenticated, restrict
from apps.audit.models import AuditEvent


@dataclass
class AuditFilters:
    actor: str = ""  # username or token key, case-insensitive substring of the actor label
    team: str = ""  # team slug
    action: str = ""  # prefix match: "prompt." matches every prompt action
    object_type: str = ""
    object_id: str = ""
    date_from: date | None = None
    date_to: date | None = None  # inclusive


def audit_event_list(*, actor, filters: AuditFilters | None = None) -> QuerySet[AuditEvent]:
    """Events `actor` may see, filtered, newest first. Lazy: one statement when evaluated."""
    if not is_authenticated(actor):
        return AuditEvent.objects.none()
    events = AuditEvent.objects.all()
    if isinstance(actor, ApiToken) or not actor.is_staff:
        # Team visibility (council seats included) in SQL, then "or I did it": one WHERE, one statement.
        visible = restrict(events, actor, Action.VIEW)
        if not isinstance(actor, ApiToken):
            visible = visible | events.filter(actor_user_id=actor.pk)
        events = visible
    f = filters or AuditFilters()
    if f.actor:
        events = events.filter(actor_label__icontains=f.actor.strip())
    if f.team:
        events = events.filter(team_id__in=Team.objects.filter(slug=f.team.strip()).values("pk"))
    if f.action:
        events = events.filter(action__startswith=f.action.strip())
    if f.object_type:
        events = events.filter(object_type=f.object_type.strip().lower())
    if f.object_id:
        events = events.filter(object_id=f.object_id.strip())
    tz = timezone.get_current_timezone()
    if f.date_from:
        events = events.filter(occurred_at__gte=datetime.combine(f.date_from, time.min, tzinfo=tz))
    if f.date_to:
        events = events.filter(occurred_at__lt=datetime.combine(f.date_to + timedelta(days=1), time.min, tzinfo=tz))
    return events.order_by("-id")

