"""REST API of the red team (/api/v1/redteam). Same selectors as the pages.

    GET  /api/v1/redteam/campaigns            the campaigns you may see (filter: status, prompt)
    POST /api/v1/redteam/campaigns            launch one on a prompt version (optionally against a RAG collection)
    GET  /api/v1/redteam/campaigns/{id}       one campaign: progress, ASR per category/strategy with intervals
    POST /api/v1/redteam/campaigns/{id}/cancel  stop it (in-flight attacks land)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from ninja import Field, Query, Router, Schema, Status

from apps.accounts.permissions import Action
from apps.core.api_errors import errors
from apps.prompts import selectors as prompts_selectors
from apps.rag import selectors as rag_selectors
from apps.redteam import selectors, services

router = Router(tags=["redteam"])


class CampaignOut(Schema):
    id: int
    name: str
    team: str
    target: str
    model: str
    status: str
    progress_done: int
    progress_total: int
    successes: int
    errors: int
    spend: str
    created_at: datetime
    finished_at: datetime | None
    summary: dict
    rag_collection: dict | None = None  # the collection indirect attacks ran against, as the run found it


class CampaignIn(Schema):
    name: str
    prompt: str = Field(..., description="Prompt name")
    version: int = Field(..., ge=1, le=1_000_000)
    model: str = Field(..., description="A chat model or alias of the catalog")
    strategies: list[str]
    library_version: str = ""
    include_team_probes: bool = True
    variables: dict[str, Any] = Field(default_factory=dict)
    attack_variable: str = ""
    rag_collection: int | None = Field(None, ge=1, le=2**62, description=(
        "A RAG collection you may read: attacks that plant a document run against it (ADR 0120)"))
    concurrency: int | None = Field(None, ge=1, le=200)


def _out(campaign) -> dict:
    return {"id": campaign.pk, "name": campaign.name, "team": campaign.team.slug, "target": campaign.target_label,
            "model": campaign.model, "status": campaign.status, "progress_done": campaign.progress_done,
            "progress_total": campaign.progress_total, "successes": campaign.successes,
            "errors": campaign.errors_count, "spend": str(campaign.spend), "created_at": campaign.created_at,
            "finished_at": campaign.finished_at, "summary": campaign.summary or {},
            "rag_collection": campaign.rag_snapshot or None}


@router.get("/campaigns", response=list[CampaignOut], summary="The red-team campaigns you may see")
def campaign_list(request, status: str = "", prompt: int | None = None,
                  limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000_000)):
    rows = selectors.campaign_list(actor=request.auth, prompt_id=prompt, status=status[:12])
    return [_out(c) for c in rows[offset:offset + limit]]


@router.post("/campaigns", response={201: CampaignOut, **errors(403, 404, 422)},
             summary="Launch a campaign on a prompt version (queued on the llm queue)")
def campaign_create(request, body: CampaignIn):
    actor = request.auth
    prompt = prompts_selectors.prompt_get(actor=actor, name=body.prompt, action=Action.CHANGE)
    version = prompts_selectors.version_get(prompt=prompt, number=body.version)
    collection = None
    if body.rag_collection is not None:
        collection = rag_selectors.collection_visible(actor=actor, pk=body.rag_collection)
        if collection is None:
            raise ValidationError({"rag_collection": "Choose a RAG collection you may read."})
    campaign = services.campaign_create(
        actor=actor, name=body.name, model=body.model, strategies=body.strategies,
        library_version=body.library_version, include_team_probes=body.include_team_probes, prompt_version=version,
        variables=body.variables, attack_variable=body.attack_variable, concurrency=body.concurrency,
        rag_collection=collection)
    return Status(201, _out(selectors.campaign_get(actor=actor, pk=campaign.pk)))


@router.get("/campaigns/{int:campaign_id}", response={200: CampaignOut, **errors(404)}, summary="One campaign")
def campaign_get(request, campaign_id: int):
    return _out(selectors.campaign_get(actor=request.auth, pk=campaign_id))


@router.post("/campaigns/{int:campaign_id}/cancel", response={200: CampaignOut, **errors(403, 404, 422)},
             summary="Cancel a campaign (in-flight attacks land)")
def campaign_cancel(request, campaign_id: int):
    campaign = selectors.campaign_get(actor=request.auth, pk=campaign_id)
    return _out(services.campaign_cancel(campaign=campaign, actor=request.auth))
