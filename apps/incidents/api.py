"""REST API of incidents (/api/v1/incidents). Same services, selectors and rules as the pages.

    GET  /api/v1/incidents                              the incidents you may see (filters: status, severity, type, team, q)
    POST /api/v1/incidents                              declare
    GET  /api/v1/incidents/{id}                         one incident with its timeline and mitigations
    PATCH /api/v1/incidents/{id}                        change fields
    POST /api/v1/incidents/{id}/status                  move the status (resolve, reopen, ...)
    POST /api/v1/incidents/{id}/acknowledge             acknowledge
    POST /api/v1/incidents/{id}/notes                   add a note to the timeline
    POST /api/v1/incidents/{id}/mitigations             apply a mitigation (any kind: docs/incidents.md)
    POST /api/v1/incidents/{id}/mitigations/{m}/undo    undo it
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from ninja import Field, Query, Router, Schema, Status

from apps.accounts.models import Team
from apps.core.api_errors import errors
from apps.incidents import mitigations, selectors, services
from apps.incidents.models import Incident, Mitigation

router = Router(tags=["incidents"])


class IncidentIn(Schema):
    team: str = Field(..., description="Slug of the owning team")
    title: str = Field(..., max_length=200)
    kind: str = Field(..., description="incorrect_outputs | unsafe_content | data_exposure | runaway_cost | "
                                       "provider_outage | other")
    severity: int = Field(..., description="1 (Sev1) to 4 (Sev4)")
    summary: str = ""
    commander: int | None = Field(None, description="User id; default: you")
    responders: list[int] = Field(default_factory=list, description="User ids")
    use_cases: list[int] = Field(default_factory=list, description="Use case ids")
    teams: list[str] = Field(default_factory=list, description="Slugs of the other affected teams")
    features: list[str] = Field(default_factory=list)
    prompt_versions: list[str] = Field(default_factory=list)
    deployments: list[str] = Field(default_factory=list)
    collections: list[str] = Field(default_factory=list)
    tenants: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    customer_impact: str = ""
    harm_categories: list[str] = Field(default_factory=list)
    affected_groups: list[str] = Field(default_factory=list)
    near_miss: bool = False


class IncidentPatch(Schema):
    title: str | None = None
    kind: str | None = None
    severity: int | None = None
    summary: str | None = None
    commander: int | None = None
    responders: list[int] | None = None
    use_cases: list[int] | None = None
    teams: list[str] | None = None
    features: list[str] | None = None
    prompt_versions: list[str] | None = None
    deployments: list[str] | None = None
    collections: list[str] | None = None
    tenants: list[str] | None = None
    started_at: datetime | None = None
    customer_impact: str | None = None
    harm_categories: list[str] | None = None
    affected_groups: list[str] | None = None
    near_miss: bool | None = None


class MoveIn(Schema):
    to: str = Field(..., description="investigating | mitigated | resolved | review_done (investigating from "
                                     "resolved or review_done reopens)")
    note: str = ""


class NoteIn(Schema):
    text: str


class MitigationIn(Schema):
    kind: str = Field(..., description="feature_off | rate_limit | model_fallback | retrieval_disabled | "
                                       "stricter_filters | prompt_rollback")
    target: dict[str, Any] = Field(..., description='{"scope": "key", "key_id": 5} | {"scope": "feature", '
                                                    '"team_id": 2, "feature": "support-bot"} | '
                                                    '{"scope": "use_case", "use_case_id": 7} | '
                                                    '{"scope": "alias", "name": "support"} | '
                                                    '{"scope": "deployment", "deployment_id": 4} | '
                                                    '{"scope": "collection", "collection_id": 3} | '
                                                    '{"scope": "prompt", "name": "support/refund-qa"}')
    params: dict[str, Any] = Field(default_factory=dict, description='feature_off: {"message"}; rate_limit: '
                                                                     '{"requests_per_minute", "requests_per_day"}; '
                                                                     'model_fallback: {"to"} or {"to_deployment_id"}; '
                                                                     'retrieval_disabled: {"answer": "refuse" | '
                                                                     '"without", "message"}; stricter_filters: '
                                                                     '{"guard_input_pii", "guard_injection", '
                                                                     '"guard_output"}; prompt_rollback: '
                                                                     '{"to_version"} (default: the previous)')
    reason: str = ""
    expires_in_minutes: int | None = Field(None, description="5 to 10080; default 240")


class MitigationOut(Schema):
    id: int
    kind: str
    target: dict
    target_label: str
    params: dict
    reason: str
    applied_at: datetime
    applied_by: str | None
    expires_at: datetime | None
    undone_at: datetime | None
    active: bool
    refused: int | None = Field(None, description="Requests the gateway refused because of it (from the ledger)")
    note: str = Field("", description="After an undo: what could not be put back, and why (a prompt rollback "
                                      "whose label was moved since)")


class EventOut(Schema):
    at: datetime
    kind: str
    text: str
    actor: str


class IncidentRow(Schema):
    id: int
    reference: str
    title: str
    kind: str
    severity: int
    status: str
    team: str
    commander: str | None
    detected_at: datetime
    acknowledged: bool
    url: str


class IncidentOut(IncidentRow):
    summary: str
    teams: list[str]
    responders: list[str]
    use_cases: list[int]
    features: list[str]
    prompt_versions: list[str]
    deployments: list[str]
    collections: list[str]
    tenants: list[str]
    started_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    customer_impact: str
    harm_categories: list[str]
    affected_groups: list[str]
    near_miss: bool
    timeline: list[EventOut]
    mitigations: list[MitigationOut]


def _row(i: Incident) -> dict:
    return {"id": i.pk, "reference": i.reference, "title": i.title, "kind": i.kind, "severity": i.severity,
            "status": i.status, "team": i.team.slug, "commander": i.commander.get_username() if i.commander else None,
            "detected_at": i.detected_at, "acknowledged": i.acknowledged_at is not None,
            "url": i.get_absolute_url()}


def _mitigation(m: Mitigation) -> dict:
    return {"id": m.pk, "kind": m.kind, "target": m.target, "target_label": m.target_label,
            "params": {k: v for k, v in m.params.items() if k != "before"}, "reason": m.reason,
            "applied_at": m.applied_at, "applied_by": m.applied_by.get_username() if m.applied_by else None,
            "expires_at": m.expires_at, "undone_at": m.undone_at, "active": m.is_active,
            "refused": getattr(m, "refused", None), "note": getattr(m, "undo_note", "")}


def _out(incident: Incident) -> dict:
    return {**_row(incident), "summary": incident.summary,
            "teams": sorted(incident.teams.values_list("slug", flat=True)),
            "responders": sorted(u.get_username() for u in incident.responders.all()),
            "use_cases": sorted(incident.use_cases.values_list("pk", flat=True)),
            **{f: getattr(incident, f) for f in (*services.LIST_FIELDS, "started_at", "mitigated_at",
                                                 "resolved_at", "customer_impact", "near_miss")},
            "timeline": [{"at": e.at, "kind": e.kind, "text": e.text, "actor": e.actor_label}
                         for e in selectors.timeline(incident)],
            "mitigations": [_mitigation(m) for m in selectors.mitigations_of(incident)]}


def _teams(slugs: list[str]) -> list[Team]:
    teams = list(Team.objects.filter(slug__in=slugs))
    missing = sorted(set(slugs) - {t.slug for t in teams})
    if missing:
        raise ValidationError({"teams": f"No team {', '.join(missing)}."})
    return teams


@router.get("", response=list[IncidentRow], summary="The incidents you may see")
def incident_list(request, status: str = "", severity: str = "", kind: str = "", team: str = "", q: str = "",
                  limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000_000)):
    filters = selectors.IncidentFilters(status=status[:20], severity=severity[:2] if severity.isdigit() else "",
                                        kind=kind[:40], team=team[:100], q=q[:100])
    rows = selectors.incident_list(actor=request.auth, filters=filters)[offset:offset + limit]
    return [_row(i) for i in rows]


@router.post("", response={201: IncidentOut, **errors(403, 422)}, summary="Declare an incident")
def incident_declare(request, payload: IncidentIn):
    team = Team.objects.filter(slug=payload.team).first()
    if team is None:
        raise ValidationError({"team": f"No team {payload.team!r}."})
    values = payload.dict(exclude={"team", "title", "kind", "severity"})
    values["teams"] = _teams(values["teams"])
    incident = services.incident_declare(actor=request.auth, team=team, title=payload.title, kind=payload.kind,
                                         severity=payload.severity, **values)
    return Status(201, _out(selectors.incident_get(actor=request.auth, pk=incident.pk)))


@router.get("/{int:incident_id}", response={200: IncidentOut, **errors(404)}, summary="One incident")
def incident_get(request, incident_id: int):
    return _out(selectors.incident_get(actor=request.auth, pk=incident_id))


@router.patch("/{int:incident_id}", response={200: IncidentOut, **errors(403, 404, 422)},
              summary="Change an incident's fields")
def incident_update(request, incident_id: int, payload: IncidentPatch):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    values = payload.dict(exclude_unset=True)
    if values.get("teams") is not None:
        values["teams"] = _teams(values["teams"])
    for name in ("title", "kind", "severity", "near_miss"):  # null means "unchanged" for the required ones
        if name in values and values[name] is None:
            values.pop(name)
    services.incident_update(incident=incident, actor=request.auth, **values)
    return _out(selectors.incident_get(actor=request.auth, pk=incident_id))


@router.post("/{int:incident_id}/status", response={200: IncidentOut, **errors(403, 404, 422)},
             summary="Move the status (resolve, reopen, ...)")
def incident_move(request, incident_id: int, payload: MoveIn):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    services.incident_move(incident=incident, actor=request.auth, to=payload.to, note=payload.note)
    return _out(selectors.incident_get(actor=request.auth, pk=incident_id))


@router.post("/{int:incident_id}/acknowledge", response={200: IncidentOut, **errors(403, 404)},
             summary="Acknowledge the incident")
def incident_acknowledge(request, incident_id: int):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    services.incident_acknowledge(incident=incident, actor=request.auth)
    return _out(selectors.incident_get(actor=request.auth, pk=incident_id))


@router.post("/{int:incident_id}/notes", response={201: EventOut, **errors(403, 404, 422)},
             summary="Add a note to the timeline")
def note_add(request, incident_id: int, payload: NoteIn):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    event = services.note_add(incident=incident, actor=request.auth, text=payload.text)
    return Status(201, {"at": event.at, "kind": event.kind, "text": event.text, "actor": event.actor_label})


@router.post("/{int:incident_id}/mitigations", response={201: MitigationOut, **errors(403, 404, 422)},
             summary="Apply a mitigation (feature_off, rate_limit, model_fallback, retrieval_disabled, "
                     "stricter_filters, prompt_rollback)")
def mitigation_apply(request, incident_id: int, payload: MitigationIn):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    mitigation = mitigations.mitigation_apply(incident=incident, actor=request.auth, **payload.dict())
    return Status(201, _mitigation(mitigation))


@router.post("/{int:incident_id}/mitigations/{int:mitigation_id}/undo",
             response={200: MitigationOut, **errors(403, 404, 422)}, summary="Undo a mitigation")
def mitigation_undo(request, incident_id: int, mitigation_id: int):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    mitigation = selectors.mitigation_get(incident=incident, pk=mitigation_id)
    return _mitigation(mitigations.mitigation_undo(mitigation=mitigation, actor=request.auth))
