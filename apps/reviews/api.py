"""REST API of use-case reviews (/api/v1/use-cases). Same services and selectors as the pages.

    GET  /api/v1/use-cases/questionnaire     the current intake questionnaire as JSON Schema (stable field ids)
    POST /api/v1/use-cases                   create a draft from answers
    POST /api/v1/use-cases/{id}/submit       submit it (tier, route to review)
    GET  /api/v1/use-cases/{id}              state, tier, rule trace, required controls, conditions
    GET  /api/v1/use-cases                   the register (filters: state, tier, team, q; limit/offset)
    POST /api/v1/use-cases/{id}/votes        a council member's vote (browser session; tokens never vote)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from ninja import Field, Query, Router, Schema, Status

from apps.accounts.models import ApiToken
from apps.accounts.permissions import Action, teams_for
from apps.core.api_errors import errors
from apps.reviews import questionnaire, selectors, services
from apps.reviews.models import LifecycleStage, UseCase

router = Router(tags=["use cases"])


class UseCaseIn(Schema):
    team: str = Field(..., description="Slug of the owning team")
    title: str
    purpose: str
    intended_uses: str = ""
    accountable_executive: str = ""
    lifecycle_stage: str = Field(LifecycleStage.IDEA, description=", ".join(LifecycleStage.values))
    answers: dict[str, Any] = Field(default_factory=dict,
                                    description="{field id: value} as in GET /use-cases/questionnaire")


class ConditionOut(Schema):
    id: int
    title: str
    kind: str
    predicate: str
    params: dict
    owner: str | None
    due_date: str
    status: str


class UseCaseOut(Schema):
    id: int
    title: str
    team: str
    state: str
    tier: str
    computed_tier: str
    tier_note: str
    purpose: str
    lifecycle_stage: str
    questionnaire_version: int
    answers: dict
    rule_trace: list[dict]
    required_controls: list[dict]
    required_seats: list[str]
    conditions: list[ConditionOut]
    expires_at: datetime | None
    url: str


def _out(use_case: UseCase) -> dict:
    return {
        "id": use_case.pk, "title": use_case.title, "team": use_case.team.slug, "state": use_case.state,
        "tier": use_case.tier, "computed_tier": use_case.computed_tier, "tier_note": use_case.tier_note,
        "purpose": use_case.purpose, "lifecycle_stage": use_case.lifecycle_stage,
        "questionnaire_version": use_case.questionnaire_version, "answers": use_case.answers,
        "rule_trace": use_case.rule_trace or [],
        "required_controls": [{"key": c["key"], "name": c["name"], "status": c["status"]}
                              for c in selectors.controls_status(use_case)],
        "required_seats": selectors.required_seats(use_case) if use_case.tier else [],
        "conditions": [{"id": c.pk, "title": c.title, "kind": c.kind, "predicate": c.predicate, "params": c.params,
                        "owner": c.owner.get_username() if c.owner else None, "due_date": c.due_date.isoformat(),
                        "status": c.status} for c in use_case.conditions.select_related("owner")],
        "expires_at": use_case.expires_at, "url": use_case.get_absolute_url(),
    }


@router.get("/questionnaire", response=dict, summary="The current intake questionnaire (JSON Schema)")
def questionnaire_get(request):
    current = selectors.questionnaire_current()
    return {"version": current.version, "json_schema": questionnaire.json_schema(current)}


@router.post("", response={201: UseCaseOut, **errors(403, 422)}, summary="Create a draft use case")
def use_case_create(request, payload: UseCaseIn):
    actor = request.auth
    team = teams_for(actor, Action.CHANGE).filter(slug=payload.team).first()
    if team is None:
        raise ValidationError({"team": [f"You cannot create use cases for team {payload.team!r}."]})
    user = actor.user if isinstance(actor, ApiToken) else actor
    use_case = services.use_case_create(team=team, actor=actor, title=payload.title, purpose=payload.purpose,
                                        intended_uses=payload.intended_uses,
                                        accountable_executive=payload.accountable_executive,
                                        lifecycle_stage=payload.lifecycle_stage, answers=payload.answers,
                                        business_owner=user)
    return Status(201, _out(use_case))


class UseCaseRow(Schema):
    id: int
    title: str
    team: str
    state: str
    tier: str
    expires_at: datetime | None
    url: str


class VoteIn(Schema):
    decision: str = Field(..., description="approve | approve_with_conditions | reject")
    rationale: str
    seat: str | None = Field(None, description="Which of your seats votes (default: the best fit)")


class VoteOut(Schema):
    seat: str
    decision: str
    round: int
    use_case_state: str


@router.get("", response=list[UseCaseRow], summary="The register: use cases you may see")
def use_case_list(request, state: str = "", tier: str = "", team: str = "", q: str = "",
                  limit: int = 100, offset: int = Query(0, ge=0, le=1_000_000_000)):
    filters = selectors.UseCaseFilters(q=q[:100], state=state, tier=tier, team=team)
    limit = max(1, min(limit, 500))
    rows = selectors.use_case_list(actor=request.auth, filters=filters).order_by("-updated_at", "-id")
    return [{"id": u.pk, "title": u.title, "team": u.team.slug, "state": u.state, "tier": u.tier,
             "expires_at": u.expires_at, "url": u.get_absolute_url()} for u in rows[max(0, offset):offset + limit]]


@router.post("/{int:use_case_id}/votes", response={201: VoteOut, **errors(403, 404, 422)},
             summary="Cast a council vote (session only: tokens never vote)")
def vote_create(request, use_case_id: int, payload: VoteIn):
    use_case = selectors.use_case_get(actor=request.auth, pk=use_case_id)
    vote = services.vote_cast(use_case=use_case, user=request.auth, decision=payload.decision,
                              rationale=payload.rationale, seat=payload.seat)
    use_case.refresh_from_db()
    return Status(201, {"seat": vote.seat, "decision": vote.decision, "round": vote.round,
                        "use_case_state": use_case.state})


@router.get("/{int:use_case_id}", response={200: UseCaseOut, **errors(404)}, summary="A use case with its tier")
def use_case_get(request, use_case_id: int):
    return _out(selectors.use_case_get(actor=request.auth, pk=use_case_id))


@router.post("/{int:use_case_id}/submit", response={200: UseCaseOut, **errors(403, 404, 422)},
             summary="Submit the draft for review")
def use_case_submit(request, use_case_id: int):
    use_case = selectors.use_case_get(actor=request.auth, pk=use_case_id, action=Action.CHANGE)
    use_case = services.use_case_submit(use_case=use_case, actor=request.auth)
    use_case.refresh_from_db()
    return _out(use_case)
