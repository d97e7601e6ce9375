"""Reads of the audit log. Admins and council see everything; others see their teams' events and their own."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.permissions import Action, is_authenticated, is_council, teams_for
from apps.audit.models import AuditEvent


@dataclass
class AuditFilters:
    actor: str = ""
    team: str = ""  # team slug
    action: str = ""  # prefix match: "prompt." matches every prompt action
    object_type: str = ""
    object_id: str = ""
    date_from: date | None = None
    date_to: date | None = None


def audit_event_list(*, actor, filters: AuditFilters | None = None) -> QuerySet[AuditEvent]:
    if not is_authenticated(actor):
        return AuditEvent.objects.none()
    events = AuditEvent.objects.all()
    user = actor.user if isinstance(actor, ApiToken) else actor
    if isinstance(actor, ApiToken):
        events = events.filter(team_id=actor.team_id)
    elif not (user.is_staff or is_council(user)):
        visible_teams = teams_for(actor, Action.VIEW).values("pk")
        events = events.filter(Q(team_id__in=visible_teams) | Q(actor_user_id=user.pk))
    f = filters or AuditFilters()
    if f.actor:
        events = events.filter(actor_label__icontains=f.actor)
    if f.team:
        events = events.filter(team_id__in=teams_for(actor, Action.VIEW).filter(slug=f.team).values("pk"))
    if f.action:
        events = events.filter(action__startswith=f.action)
    if f.object_type:
        events = events.filter(object_type=f.object_type)
    if f.object_id:
        events = events.filter(object_id=f.object_id)
    tz = timezone.get_current_timezone()
    if f.date_from:
        events = events.filter(occurred_at__gte=datetime.combine(f.date_from, time.min, tzinfo=tz))
    if f.date_to:
        events = events.filter(occurred_at__lt=datetime.combine(f.date_to + timedelta(days=1), time.min, tzinfo=tz))
    return events.order_by("-id")
