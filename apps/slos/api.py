"""REST API of SLOs (read only). Same selectors as the pages; mounted at the API's root in portal/api.py.

    GET /api/v1/slos                       the SLOs you may see, as last evaluated (filters: health, use_case)
    GET /api/v1/use-cases/{id}/slos        one use case's SLOs with their open and recent alerts
"""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Query, Router, Schema

from apps.core.api_errors import errors
from apps.reviews import selectors as reviews_selectors
from apps.slos import selectors
from apps.slos.models import Health, Slo, SloAlert

router = Router(tags=["slos"])


class AlertOut(Schema):
    id: int
    pair: str = Field(..., description="fast (1 h / 5 min, 14.4×) | slow (6 h / 30 min, 6×) | ticket (3 d / 6 h, 1×)")
    severity: str = Field(..., description="page | ticket")
    opened_at: datetime
    resolved_at: datetime | None
    long_burn: float
    short_burn: float
    peak_burn: float
    incident: str | None = Field(None, description="The incident declared on this alert (its URL)")


class SloOut(Schema):
    id: int
    use_case: int
    team: str
    kind: str = Field(..., description="availability | latency")
    objective: str
    target_percent: float
    threshold_ms: int | None
    window_days: int
    is_active: bool
    health: str = Field(..., description=" | ".join(Health.values))
    sli_percent: float | None
    budget_remaining: float | None = Field(None, description="1 untouched, 0 spent, below 0 overspent")
    valid_events: int
    bad_events: int
    burn_rates: dict[str, float] = Field(..., description="By window: 5m, 30m, 1h, 6h, 3d")
    evaluated_at: datetime | None
    url: str


class UseCaseSlosOut(Schema):
    use_case: int
    slos: list[SloOut]
    alerts: list[AlertOut]


def _slo(slo: Slo) -> dict:
    return {"id": slo.pk, "use_case": slo.use_case_id, "team": slo.team.slug, "kind": slo.kind,
            "objective": slo.objective, "target_percent": float(slo.target_percent), "threshold_ms": slo.threshold_ms,
            "window_days": slo.window_days, "is_active": slo.is_active, "health": slo.health,
            "sli_percent": slo.sli_percent, "budget_remaining": slo.budget_remaining,
            "valid_events": slo.valid_events, "bad_events": slo.bad_events, "burn_rates": slo.burn_rates or {},
            "evaluated_at": slo.evaluated_at, "url": slo.get_absolute_url()}


def _alert(alert: SloAlert) -> dict:
    return {"id": alert.pk, "pair": alert.pair, "severity": alert.severity, "opened_at": alert.opened_at,
            "resolved_at": alert.resolved_at, "long_burn": alert.long_burn, "short_burn": alert.short_burn,
            "peak_burn": alert.peak_burn, "incident": alert.incident.get_absolute_url() if alert.incident else None}


@router.get("/slos", response=list[SloOut], summary="The SLOs you may see, as last evaluated")
def slo_list(request, health: str = Query("", max_length=16), use_case: int | None = Query(None, ge=1, le=2**63 - 1),
             limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=1_000_000_000)):
    rows = selectors.slo_list(actor=request.auth, use_case_id=use_case,
                              health=health if health in Health.values else "")
    return [_slo(slo) for slo in rows[offset:offset + limit]]


@router.get("/use-cases/{int:use_case_id}/slos", response={200: UseCaseSlosOut, **errors(404)},
            summary="One use case's SLOs and alerts")
def use_case_slos(request, use_case_id: int):
    use_case = reviews_selectors.use_case_get(actor=request.auth, pk=use_case_id)
    slos = list(selectors.slo_list(actor=request.auth, use_case_id=use_case.pk))
    return {"use_case": use_case.pk, "slos": [_slo(s) for s in slos],
            "alerts": [_alert(a) for a in selectors.alerts_of(slos)]}
