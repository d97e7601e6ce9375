"""Reads for the incident pages and API, restricted to what the actor may see (rules.may_view, in SQL here)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import Http404

from apps.accounts.permissions import Action, is_authenticated, sees_everything, teams_for
from apps.costs.models import CallStatus, Source, UsageEvent
from apps.incidents import mitigations as switches
from apps.incidents.models import Incident, Mitigation, MitigationKind, SeverityDefinition


@dataclass(frozen=True)
class IncidentFilters:
    status: str = ""  # a status, "active" (not resolved), or "" for all
    severity: str = ""
    kind: str = ""
    team: str = ""  # a team slug
    q: str = ""


def _visible(queryset: QuerySet, actor, path: str = "") -> QuerySet:
    if not is_authenticated(actor):
        return queryset.none()
    if sees_everything(actor):
        return queryset
    teams = teams_for(actor, Action.VIEW).values("pk")
    return queryset.filter(Q(**{f"{path}team__in": teams}) | Q(**{f"{path}teams__in": teams})).distinct()


def incident_list(*, actor, filters: IncidentFilters | None = None) -> QuerySet[Incident]:
    filters = filters or IncidentFilters()
    qs = _visible(Incident.objects.select_related("team", "commander"), actor)
    if filters.status == "active":
        qs = qs.exclude(status__in=("resolved", "review_done"))
    elif filters.status:
        qs = qs.filter(status=filters.status)
    if filters.severity:
        qs = qs.filter(severity=filters.severity)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.team:
        qs = qs.filter(Q(team__slug=filters.team) | Q(teams__slug=filters.team))
    if filters.q:
        qs = qs.filter(title__icontains=filters.q)
    return qs.order_by("-detected_at", "-id")


def incident_get(*, actor, pk: int) -> Incident:
    incident = _visible(Incident.objects.select_related("team", "commander", "acknowledged_by"), actor) \
        .filter(pk=pk).first()
    if incident is None:
        raise Http404("No incident matches the given query.")
    return incident


def timeline(incident: Incident):
    return incident.timeline.select_related("actor").order_by("at", "id")


def mitigations_of(incident: Incident) -> list[Mitigation]:
    rows = list(incident.mitigations.select_related("applied_by", "undone_by").order_by("-applied_at", "-id"))
    counts = refused_counts(rows)
    for row in rows:
        row.refused = counts.get(row.pk)
        row.details = switches.details(row)
    return rows


def switched_now(*, actor) -> list[Mitigation]:
    """Every active mitigation the actor may see, oldest first (what is switched now), with its refusal count."""
    rows = list(_visible(Mitigation.objects.filter(undone_at__isnull=True), actor, "incident__")
                .select_related("incident", "applied_by", "team").order_by("applied_at"))
    counts = refused_counts(rows)
    for row in rows:
        row.refused = counts.get(row.pk)
        row.details = switches.details(row)
    return rows


def mitigation_get(*, incident: Incident, pk: int) -> Mitigation:
    mitigation = incident.mitigations.filter(pk=pk).first()
    if mitigation is None:
        raise Http404("No mitigation of this incident matches the given query.")
    return mitigation


def refused_counts(mitigations) -> dict[int, int]:
    """{mitigation id: requests the gateway refused because of it since it was applied}, read from the usage
    ledger's refused events (the gateway records each refusal with its code: `incident` for a feature off,
    `key_limit` for a limit). Counted once the recorder has written them (seconds)."""
    counts = {}
    for m in mitigations:
        if m.kind not in (MitigationKind.FEATURE_OFF, MitigationKind.RATE_LIMIT):
            continue  # the other switches refuse nothing at the gateway's door
        code = switches.GUARD_KEY if m.kind == MitigationKind.FEATURE_OFF else switches.RATE_LIMIT_CODE
        events = UsageEvent.objects.filter(source=Source.GATEWAY, status=CallStatus.REFUSED, error_type=code,
                                           occurred_at__gte=m.applied_at)
        if m.undone_at is not None:
            events = events.filter(occurred_at__lt=m.undone_at)
        scope = m.target.get("scope")
        if scope == "key":
            events = events.filter(gateway_key_id=m.target.get("key_id"))
        elif scope == "feature":
            events = events.filter(team_id=m.target.get("team_id"), feature=m.target.get("feature"))
        elif scope == "use_case":
            events = events.filter(use_case_id=m.target.get("use_case_id"))
        else:
            continue
        counts[m.pk] = events.count()
    return counts


def severity_definitions() -> list[SeverityDefinition]:
    return list(SeverityDefinition.objects.order_by("level"))


def unacknowledged_for(user) -> QuerySet[Incident]:
    """Open incidents nobody acknowledged yet that this person commands or whose owning team they are in."""
    return Incident.objects.filter(acknowledged_at__isnull=True).exclude(status__in=("resolved", "review_done")) \
        .filter(Q(commander=user) | Q(team__memberships__user=user)).distinct()
