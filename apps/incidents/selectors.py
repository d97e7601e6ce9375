"""Reads for the incident pages and API, restricted to what the actor may see (rules.may_view, in SQL here)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import Http404

from apps.accounts.permissions import Action, is_admin, is_authenticated, sees_everything, teams_for
from apps.costs.models import CallStatus, Operation, UsageEvent
from apps.incidents import mitigations as switches
from apps.incidents import rules
from apps.incidents.models import Incident, Mitigation, MitigationKind, SeverityDefinition
from apps.llm.models import Deployment
from apps.rag.switches import REFUSE


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


def _with_effects(rows: list[Mitigation]) -> list[Mitigation]:
    effects = effects_of(rows)
    for row in rows:
        row.effect = effects.get(row.pk)
        row.details = switches.details(row)
    return rows


def mitigations_of(incident: Incident) -> list[Mitigation]:
    return _with_effects(list(incident.mitigations.select_related("applied_by", "undone_by")
                              .order_by("-applied_at", "-id")))


def switched_now(*, actor) -> list[Mitigation]:
    """Every active mitigation the actor may see, oldest first (what is switched now), with what it did."""
    return _with_effects(list(_visible(Mitigation.objects.filter(undone_at__isnull=True), actor, "incident__")
                              .select_related("incident", "applied_by", "team").order_by("applied_at")))


def mitigations_on(*, actor, acting) -> list[Mitigation]:
    """The active mitigations (of incidents the actor may see) that act on one object now (`acting`: a filter,
    apps/incidents/objects.py `acting_on`), oldest first, with what each did."""
    rows = _visible(Mitigation.objects.filter(undone_at__isnull=True), actor, "incident__").filter(acting)
    return _with_effects(list(rows.select_related("incident", "applied_by").order_by("applied_at")))


def incidents_to_switch(*, actor, team) -> list[Incident]:
    """The open incidents (newest first, at most 50) to which `actor` may attach a switch on an object of `team`:
    those they may switch on (rules.may_switch) that have the team, or any for council members and admins (their
    switch adds the team)."""
    anywhere = is_admin(actor) or rules.is_council_member(actor)
    incidents = incident_list(actor=actor, filters=IncidentFilters(status="active"))[:50]
    return [i for i in incidents if (anywhere or team.pk in rules.team_ids_of(i)) and rules.may_switch(actor, i)]


def mitigation_get(*, incident: Incident, pk: int) -> Mitigation:
    mitigation = incident.mitigations.filter(pk=pk).first()
    if mitigation is None:
        raise Http404("No mitigation of this incident matches the given query.")
    return mitigation


@dataclass(frozen=True)
class Effect:
    """What a switch did since it was applied (until its undo): `count` calls `what`; None: not counted."""

    count: int | None
    what: str

    def __str__(self) -> str:
        return "—" if self.count is None else f"{self.count} {self.what}"


def _fallback_label(m: Mitigation) -> str:
    params = m.params
    if params.get("to"):
        return f"served by {params['to']}"
    if params.get("to_deployment_id"):
        return f"served by {params.get('to_label') or params['to_deployment_id']}"
    skipped = Deployment.objects.select_related("alias").filter(pk=m.target.get("deployment_id")).first()
    return f"served by {skipped.alias.name}'s other deployments" if skipped else \
        "served by its alias's other deployments"


def _effect_query(m: Mitigation) -> tuple[Q | None, str]:
    """(which ledger events the switch's effect is, in words): the events marked with it (ADR 0122), else what
    the ledger already holds."""
    marked = Q(switch_id=m.pk)
    if m.kind == MitigationKind.FEATURE_OFF:
        return marked & Q(status=CallStatus.REFUSED), "refused"
    if m.kind == MitigationKind.RATE_LIMIT:
        return marked & Q(status=CallStatus.REFUSED), "refused"
    if m.kind == MitigationKind.STRICTER_FILTERS:
        return marked, "filtered"
    if m.kind == MitigationKind.MODEL_FALLBACK:
        return marked & Q(status=CallStatus.OK), _fallback_label(m)
    if m.kind == MitigationKind.RETRIEVAL_DISABLED:
        if m.params.get("answer") == REFUSE:
            return None, "answers refused (not counted: they call no model)"
        return marked & Q(status=CallStatus.OK, operation=Operation.CHAT), "answered without retrieval"
    if m.kind == MitigationKind.PROMPT_ROLLBACK:
        return marked & Q(status=CallStatus.OK), f"served by v{m.params.get('to_version')}"
    return None, ""


def effects_of(mitigations) -> dict[int, Effect]:
    """{mitigation id: what it did between its application and its undo}, counted in the usage ledger (no write
    of its own): the calls the call path marked with the switch (`UsageEvent.switch_id`, ADR 0122) — refused
    (feature off), filtered (stricter filters: a field it raised acted), served by the fallback, RAG answers made
    without retrieval —; a rate limit's `key_limit` refusals of its key; the calls served by the rolled-back
    version. The gateway's events count once its recorder has written them (seconds)."""
    effects = {}
    for m in mitigations:
        query, what = _effect_query(m)
        if query is None:
            effects[m.pk] = Effect(None, what)
            continue
        events = UsageEvent.objects.filter(query, occurred_at__gte=m.applied_at)
        if m.undone_at is not None:
            events = events.filter(occurred_at__lt=m.undone_at)
        effects[m.pk] = Effect(events.count(), what)
    return effects


def severity_definitions() -> list[SeverityDefinition]:
    return list(SeverityDefinition.objects.order_by("level"))


def unacknowledged_for(user) -> QuerySet[Incident]:
    """Open incidents nobody acknowledged yet that this person commands or whose owning team they are in."""
    return Incident.objects.filter(acknowledged_at__isnull=True).exclude(status__in=("resolved", "review_done")) \
        .filter(Q(commander=user) | Q(team__memberships__user=user)).distinct()
