"""REST API of what comes after (and around) an incident: its post-incident review, the runbooks and the EU AI Act
Art. 73 report (mounted under /api/v1/incidents next to `api.router`). The same services, selectors and rules as
the pages (apps/incidents/followup_views.py): a read token reads; a write token writes as its owner would on the
page; only the commander (or council, admins — never a token) signs off.

    GET    /api/v1/incidents/{id}/review                                  the review, root causes, action items
    PATCH  /api/v1/incidents/{id}/review                                  change its text, runbook answer, release
    POST   /api/v1/incidents/{id}/review/root-causes                      add a root cause
    DELETE /api/v1/incidents/{id}/review/root-causes/{cause_id}           remove one
    POST   /api/v1/incidents/{id}/review/action-items                     add an action item (owner, due date)
    POST   /api/v1/incidents/{id}/review/action-items/{item_id}/status    move an action item
    POST   /api/v1/incidents/{id}/review/sign-off                         sign it off (→ review done)
    GET    /api/v1/incidents/runbooks                                     the runbooks (filters: kind, use_case)
    GET    /api/v1/incidents/runbooks/{id}                                one runbook (Markdown and its HTML)
    PUT    /api/v1/incidents/runbooks                                     create or replace (kind, use case)
    GET    /api/v1/incidents/{id}/art73                                   the Art. 73 status and report (JSON)
    PATCH  /api/v1/incidents/{id}/art73                                   write the assessment (the fields sent)
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404
from ninja import Field, Query, Router, Schema, Status

from apps.core.api_errors import errors
from apps.incidents import postmortems, regulatory, runbooks, selectors
from apps.incidents.models import ActionItem, Incident, PostIncidentReview, RootCause, Runbook
from apps.incidents.services import MAX_ID
from apps.reviews import selectors as review_selectors

router = Router(tags=["incidents"])


class ReviewPatch(Schema):
    summary: str | None = None
    impact: str | None = None
    contributing_factors: list[str] | None = Field(None, description="One entry per factor")
    went_well: str | None = None
    went_badly: str | None = None
    runbook_followed: str | None = Field(None, description="yes | partly | no | none (there was no runbook)")
    runbook_changes: str | None = None
    regression_escape: bool | None = Field(None, description="A release caused it (name it: release_kind and "
                                                             "release_ref)")
    release_kind: str | None = Field(None, description="prompt_version | model | deploy | data")
    release_ref: str | None = Field(None, description="e.g. support/triage@v7 (must exist), a deploy id")
    released_at: datetime | None = None


class RootCauseIn(Schema):
    category: str = Field(..., description="model | prompt | data | retrieval | provider | guardrails | code | "
                                           "capacity | process | people | communication | monitoring")
    description: str


class RootCauseOut(Schema):
    id: int
    category: str
    socio_technical: bool
    description: str


class ActionItemIn(Schema):
    title: str
    owner: int = Field(..., ge=1, le=MAX_ID, description="User id: a member of the incident's teams, its commander "
                                                          "or a responder")
    due_date: date


class ActionStatusIn(Schema):
    status: str = Field(..., description="open | in_progress | done | wont_do")


class ActionItemOut(Schema):
    id: int
    title: str
    owner: str
    owner_id: int
    due_date: date
    status: str
    overdue: bool
    completed_at: datetime | None


class ReviewOut(Schema):
    incident: int
    reference: str
    exists: bool = Field(..., description="False until someone writes the review")
    summary: str
    impact: str
    contributing_factors: list[str]
    went_well: str
    went_badly: str
    runbook_followed: str
    runbook_changes: str
    regression_escape: bool
    release_kind: str
    release_ref: str
    released_at: datetime | None
    signed_off_at: datetime | None
    signed_off_by: str | None
    locked: bool = Field(..., description="Signed off: read-only until the incident is reopened")
    due_date: date | None = Field(..., description="When the review is due (None while the incident is open)")
    sign_off_problems: list[str] = Field(..., description="What still stops the sign-off (empty: it may be signed)")
    root_causes: list[RootCauseOut]
    action_items: list[ActionItemOut]


class RunbookIn(Schema):
    kind: str = Field(..., description="The incident type: incorrect_outputs | unsafe_content | data_exposure | "
                                       "runaway_cost | provider_outage | other")
    use_case: int | None = Field(None, description="A use case id: its team's own runbook (empty: the portal's)")
    title: str
    body: str = Field(..., description="Markdown")


class RunbookRow(Schema):
    id: int
    kind: str
    use_case: int | None
    use_case_title: str | None
    title: str
    updated_at: datetime
    updated_by: str | None
    url: str


class RunbookOut(RunbookRow):
    body: str
    html: str = Field(..., description="The body rendered through the portal's one Markdown sanitiser")


class Art73Patch(Schema):
    """The assessment the Art. 73 page's form writes; only the fields sent change (null: unchanged for the two
    flags, cleared for the others)."""

    eu_users: bool | None = Field(None, description="People in the EU are affected")
    category: str | None = Field(None, description="The Art. 3(49) category: \"\" (not serious) | death | health | "
                                                   "critical_infrastructure | fundamental_rights | "
                                                   "property_environment")
    widespread_infringement: bool | None = Field(None, description="A widespread infringement (Art. 3(61))")
    aware_at: datetime | None = Field(None, description="When the organisation became aware (empty: detected)")
    member_states: list[str] | None = Field(None, description="Where it occurred (country codes)")
    causal_link: str | None = None
    corrective_actions: str | None = None
    reporter: str | None = Field(None, description="The provider or deployer reporting, and a contact")
    system_registration: str | None = Field(None, description="The EU database registration (Art. 71)")
    reported_at: datetime | None = Field(None, description="When it was reported to the authority")
    report_reference: str | None = None


class Art73Out(Schema):
    applies: bool = Field(..., description="A serious incident affecting EU users of a high-risk use case")
    deadline: datetime | None
    overdue: bool
    report: dict[str, Any] = Field(..., description="The report's fields (the page's JSON export)")


# -- shaping ---------------------------------------------------------------------------------------------------
def _cause(c: RootCause) -> dict:
    return {"id": c.pk, "category": c.category, "socio_technical": c.socio_technical,
            "description": c.description}


def _item(i: ActionItem) -> dict:
    return {"id": i.pk, "title": i.title, "owner": i.owner.get_username(), "owner_id": i.owner_id,
            "due_date": i.due_date, "status": i.status, "overdue": i.is_overdue, "completed_at": i.completed_at}


def _review(incident: Incident) -> dict:
    review = postmortems.review_of(incident)
    shown = review or PostIncidentReview(incident=incident)
    return {"incident": incident.pk, "reference": incident.reference, "exists": review is not None,
            **{name: getattr(shown, name) for name in postmortems.REVIEW_FIELDS},
            "signed_off_at": shown.signed_off_at,
            "signed_off_by": shown.signed_off_by.get_username() if shown.signed_off_by else None,
            "locked": postmortems.is_locked(review, incident), "due_date": postmortems.review_due_date(incident),
            "sign_off_problems": [] if shown.signed_off_at else postmortems.sign_off_problems(incident, review),
            "root_causes": [_cause(c) for c in review.root_causes.all()] if review else [],
            "action_items": [_item(i) for i in postmortems.action_items_of(incident)]}


def _runbook(r: Runbook, *, full: bool = False) -> dict:
    row = {"id": r.pk, "kind": r.kind, "use_case": r.use_case_id,
           "use_case_title": r.use_case.title if r.use_case_id else None, "title": r.title,
           "updated_at": r.updated_at, "updated_by": r.updated_by.get_username() if r.updated_by else None,
           "url": r.get_absolute_url()}
    return {**row, "body": r.body, "html": runbooks.runbook_html(r)} if full else row


def _action_item(incident: Incident, item_id: int) -> ActionItem:
    try:
        return postmortems.action_item_get(incident=incident, pk=item_id)
    except ValidationError:
        raise Http404("No such action item on this incident.") from None


# -- the review ------------------------------------------------------------------------------------------------
@router.get("/{int:incident_id}/review", response={200: ReviewOut, **errors(404)},
            summary="The post-incident review, its root causes and action items")
def review_get(request, incident_id: int):
    return _review(selectors.incident_get(actor=request.auth, pk=incident_id))


@router.patch("/{int:incident_id}/review", response={200: ReviewOut, **errors(403, 404, 422)},
              summary="Write the review (only the fields sent change)")
def review_update(request, incident_id: int, payload: ReviewPatch):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    values = payload.dict(exclude_unset=True)
    if values.get("regression_escape", False) is None:  # null means "unchanged" for the flag
        values.pop("regression_escape")
    postmortems.review_save(incident=incident, actor=request.auth, **values)
    return _review(incident)


@router.post("/{int:incident_id}/review/root-causes", response={201: RootCauseOut, **errors(403, 404, 422)},
             summary="Add a root cause (technical or socio-technical)")
def root_cause_add(request, incident_id: int, payload: RootCauseIn):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    cause = postmortems.root_cause_add(incident=incident, actor=request.auth, category=payload.category,
                                       description=payload.description)
    return Status(201, _cause(cause))


@router.delete("/{int:incident_id}/review/root-causes/{int:cause_id}", response={204: None, **errors(403, 404, 422)},
               summary="Remove a root cause")
def root_cause_remove(request, incident_id: int, cause_id: int):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    if not RootCause.objects.filter(pk=cause_id, review__incident=incident).exists():
        raise Http404("No such root cause on this review.")
    postmortems.root_cause_remove(incident=incident, actor=request.auth, cause_id=cause_id)
    return Status(204, None)


@router.post("/{int:incident_id}/review/action-items", response={201: ActionItemOut, **errors(403, 404, 422)},
             summary="Add an action item (the owner is told)")
def action_item_add(request, incident_id: int, payload: ActionItemIn):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    item = postmortems.action_item_add(incident=incident, actor=request.auth, title=payload.title,
                                       owner=payload.owner, due_date=payload.due_date)
    return Status(201, _item(item))


@router.post("/{int:incident_id}/review/action-items/{int:item_id}/status",
             response={200: ActionItemOut, **errors(403, 404, 422)}, summary="Move an action item")
def action_item_status(request, incident_id: int, item_id: int, payload: ActionStatusIn):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    item = postmortems.action_item_set_status(item=_action_item(incident, item_id), actor=request.auth,
                                              status=payload.status)
    return _item(_action_item(incident, item.pk))


@router.post("/{int:incident_id}/review/sign-off", response={200: ReviewOut, **errors(403, 404, 422)},
             summary="Sign the review off (the commander, council, admins): the incident moves to review done")
def review_sign_off(request, incident_id: int):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    postmortems.review_sign_off(incident=incident, actor=request.auth)
    return _review(selectors.incident_get(actor=request.auth, pk=incident_id))


# -- runbooks --------------------------------------------------------------------------------------------------
@router.get("/runbooks", response=list[RunbookRow], summary="The runbooks (per incident type, and per use case)")
def runbook_list(request, kind: str = Query("", max_length=32),
                 use_case: int | None = Query(None, ge=1, le=MAX_ID)):
    rows = runbooks.runbook_list()
    if kind:
        rows = rows.filter(kind=kind)
    if use_case is not None:
        rows = rows.filter(use_case_id=use_case)
    return [_runbook(r) for r in rows]


@router.get("/runbooks/{int:runbook_id}", response={200: RunbookOut, **errors(404)}, summary="One runbook")
def runbook_get(request, runbook_id: int):
    return _runbook(runbooks.runbook_get(actor=request.auth, pk=runbook_id), full=True)


@router.put("/runbooks", response={200: RunbookOut, **errors(403, 404, 422)},
            summary="Create or replace the runbook of an incident type (and optionally a use case)")
def runbook_save(request, payload: RunbookIn):
    use_case = None
    if payload.use_case is not None:
        if not 1 <= payload.use_case <= MAX_ID:
            raise Http404("No use case matches the given query.")
        use_case = review_selectors.use_case_get(actor=request.auth, pk=payload.use_case)
    runbook = runbooks.runbook_save(actor=request.auth, kind=payload.kind, title=payload.title, body=payload.body,
                                    use_case=use_case)
    return _runbook(runbooks.runbook_get(actor=request.auth, pk=runbook.pk), full=True)


# -- EU AI Act Art. 73 -----------------------------------------------------------------------------------------
@router.get("/{int:incident_id}/art73", response={200: Art73Out, **errors(404)},
            summary="The EU AI Act Art. 73 status and report (the page's JSON export)")
def art73_get(request, incident_id: int):
    return _art73(selectors.incident_get(actor=request.auth, pk=incident_id))


@router.patch("/{int:incident_id}/art73", response={200: Art73Out, **errors(403, 404, 422)},
              summary="Write the Art. 73 assessment (only the fields sent change), as the page's form does")
def art73_update(request, incident_id: int, payload: Art73Patch):
    incident = selectors.incident_get(actor=request.auth, pk=incident_id)
    values = payload.dict(exclude_unset=True)
    for flag in ("eu_users", "widespread_infringement"):  # null means "unchanged" for a flag
        if values.get(flag, False) is None:
            values.pop(flag)
    regulatory.assessment_save(incident=incident, actor=request.auth, **values)
    return _art73(incident)


def _art73(incident: Incident) -> dict:
    status = regulatory.art73_status(incident)
    return {"applies": status.applies, "deadline": status.deadline.due_at if status.deadline else None,
            "overdue": status.overdue, "report": regulatory.art73_report(incident)}

