"""REST API of the red team (/api/v1/redteam). Same selectors as the pages.

    GET  /api/v1/redteam/campaigns            the campaigns you may see (filter: status, prompt)
    GET  /api/v1/redteam/campaigns/{id}       one campaign: progress, ASR per category/strategy with intervals
    POST /api/v1/redteam/campaigns/{id}/cancel  stop it (in-flight attacks land)
"""

from __future__ import annotations

from datetime import datetime

from ninja import Query, Router, Schema

from apps.core.api_errors import errors
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


def _out(campaign) -> dict:
    return {"id": campaign.pk, "name": campaign.name, "team": campaign.team.slug, "target": campaign.target_label,
            "model": campaign.model, "status": campaign.status, "progress_done": campaign.progress_done,
            "progress_total": campaign.progress_total, "successes": campaign.successes,
            "errors": campaign.errors_count, "spend": str(campaign.spend), "created_at": campaign.created_at,
            "finished_at": campaign.finished_at, "summary": campaign.summary or {}}


@router.get("/campaigns", response=list[CampaignOut], summary="The red-team campaigns you may see")
def campaign_list(request, status: str = "", prompt: int | None = None,
                  limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000_000)):
    rows = selectors.campaign_list(actor=request.auth, prompt_id=prompt, status=status[:12])
    return [_out(c) for c in rows[offset:offset + limit]]


@router.get("/campaigns/{int:campaign_id}", response={200: CampaignOut, **errors(404)}, summary="One campaign")
def campaign_get(request, campaign_id: int):
    return _out(selectors.campaign_get(actor=request.auth, pk=campaign_id))


@router.post("/campaigns/{int:campaign_id}/cancel", response={200: CampaignOut, **errors(403, 404, 422)},
             summary="Cancel a campaign (in-flight attacks land)")
def campaign_cancel(request, campaign_id: int):
    campaign = selectors.campaign_get(actor=request.auth, pk=campaign_id)
    return _out(services.campaign_cancel(campaign=campaign, actor=request.auth))
