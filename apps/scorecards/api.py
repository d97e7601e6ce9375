"""REST API of scorecards, mounted under /api/v1/use-cases (next to reviews' router):

    GET /api/v1/use-cases/{id}/scorecard    the latest scorecard: every KPI with value, target, status, CI, sample,
                                            what it is made of, its data page, computed_at and the trend
"""

from __future__ import annotations

from ninja import Router, Schema

from apps.core.api_errors import errors
from apps.reviews.selectors import use_case_get
from apps.scorecards import selectors
from apps.scorecards.exports import scorecard_dict

router = Router(tags=["scorecards"])


class TrendPoint(Schema):
    window_end: str
    value: float | None


class KpiOut(Schema):
    kpi: str
    label: str
    unit: str
    better: str
    mode: str
    value: float | None
    display: str
    target: float | None
    status: str
    ci_low: float | None
    ci_high: float | None
    sample: int | None
    detail: str
    source_url: str
    computed_at: str
    trend: list[TrendPoint]


class ScorecardOut(Schema):
    use_case: int
    title: str
    team: str
    tier: str
    status: str | None
    computed_at: str | None
    window_days: int | None
    kpis: list[KpiOut]


@router.get("/{int:use_case_id}/scorecard", response={200: ScorecardOut, **errors(404)},
            summary="A use case's KPI scorecard")
def scorecard_get(request, use_case_id: int):
    use_case = use_case_get(actor=request.auth, pk=use_case_id)
    return scorecard_dict(use_case, selectors.snapshot_of(use_case))
