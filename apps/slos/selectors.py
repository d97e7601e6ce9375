"""Reads of SLOs, already restricted to what the actor may see (the use case's team: its members, council
members, admins), the budget chart's series, and `slo_status` for the apps above (scorecards)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, QuerySet
from django.utils import timezone

from apps.accounts.permissions import Action, get_object_for, restrict
from apps.gateway.sli import floor_hour, sli_hours, sli_window
from apps.slos.evaluation import floor_minute, valid_and_bad
from apps.slos.models import Health, Slo, SloAlert

ORDER = {Health.PAGE: 0, Health.EXHAUSTED: 1, Health.TICKET: 2, Health.OK: 3, Health.NO_DATA: 4}


def slo_list(*, actor, use_case_id: int | None = None, health: str = "", active_only: bool = False) -> QuerySet[Slo]:
    qs = restrict(Slo.objects.select_related("use_case", "team"), actor, Action.VIEW)
    if use_case_id is not None:
        qs = qs.filter(use_case_id=use_case_id)
    if health:
        qs = qs.filter(health=health)
    if active_only:
        qs = qs.filter(is_active=True)
    return qs.order_by("use_case__title", "use_case_id", "kind", "threshold_ms")


def slo_get(*, actor, pk: int, action: Action | str = Action.VIEW) -> Slo:
    """One SLO the actor may see (404 otherwise), checked for `action` (403)."""
    return get_object_for(actor, Slo.objects.select_related("use_case", "team"), action, pk=pk)


def alerts_of(slos, *, limit: int = 20) -> list[SloAlert]:
    """The open alerts of these SLOs, then the latest resolved ones."""
    qs = SloAlert.objects.filter(slo__in=list(slos)).select_related("slo", "slo__use_case", "incident")
    return list(qs.order_by(F("resolved_at").desc(nulls_first=True), "-opened_at")[:limit])


def open_alerts(*, actor) -> list[SloAlert]:
    return list(SloAlert.objects.filter(resolved_at__isnull=True, slo__in=slo_list(actor=actor))
                .select_related("slo", "slo__use_case", "incident").order_by("-opened_at"))


def budget_series(slo: Slo, *, now: datetime | None = None, points: int = 60) -> list[tuple[datetime, float]]:
    """The error budget left over the SLO's current window, as it was spent: at each point, 1 − the bad events
    from the window's start to that point over the budget of the whole window so far (the burn-down chart).
    Hourly counts, thinned to at most `points` points; the current hour counts only its minutes up to `now`
    (its point is at `now`), so the last point is the budget the evaluation reports, never minutes still to
    come. Empty without valid events."""
    end = floor_minute(now or timezone.now())
    start = end - timedelta(days=slo.window_days)
    current = floor_hour(end)
    hours = [(hour + timedelta(hours=1), counts) for hour, counts in sli_hours(slo.use_case_id, start=start,
                                                                                end=current)]
    partial = sli_window([slo.use_case_id], start=current, end=end).get(slo.use_case_id) if end > current else None
    if partial is not None:
        hours.append((end, partial))
    valid = sum(valid_and_bad(slo, counts)[0] for _at, counts in hours)
    allowed = slo.error_budget * valid
    if not allowed:
        return []
    step = max(1, -(-len(hours) // points))
    series, spent = [], 0
    for i, (at, counts) in enumerate(hours):
        spent += valid_and_bad(slo, counts)[1]
        if i % step == step - 1 or i == len(hours) - 1:
            series.append((at, 1 - spent / allowed))
    return series


@dataclass(frozen=True)
class SloStatus:
    """What a scorecard shows of one SLO (docs/slos.md, "For other apps")."""

    slo_id: int
    kind: str
    objective: str
    target_percent: float
    threshold_ms: int | None
    window_days: int
    health: str  # Health: no_data / ok / ticket / page / exhausted
    met: bool | None  # the SLI over the window at or above the target; None without data
    sli_percent: float | None
    budget_remaining: float | None
    burn_rates: dict
    open_alerts: tuple[str, ...]  # pair keys: fast / slow / ticket
    evaluated_at: datetime | None
    url: str
    valid_events: int = 0  # over the window, at the last evaluation: the SLI is 1 − bad / valid
    bad_events: int = 0


def slo_status(use_case_ids) -> dict[int, list[SloStatus]]:
    """The active SLOs of these use cases as last evaluated (every minute), by use case id; use cases without an
    SLO are absent. Two queries, whatever the number of use cases. No actor: the caller shows it only for use
    cases its reader may see."""
    ids = sorted({int(i) for i in use_case_ids})
    slos = list(Slo.objects.filter(use_case_id__in=ids, is_active=True).order_by("use_case_id", "kind", "threshold_ms"))
    alerts: dict[int, list[str]] = {}
    for slo_id, pair in (SloAlert.objects.filter(slo__in=slos, resolved_at__isnull=True)
                         .order_by("opened_at", "id").values_list("slo_id", "pair")):
        alerts.setdefault(slo_id, []).append(pair)
    out: dict[int, list[SloStatus]] = {}
    for slo in slos:
        out.setdefault(slo.use_case_id, []).append(SloStatus(
            slo_id=slo.pk, kind=slo.kind, objective=slo.objective, target_percent=float(slo.target_percent),
            threshold_ms=slo.threshold_ms, window_days=slo.window_days, health=slo.health,
            met=None if slo.sli_percent is None else slo.sli_percent >= float(slo.target_percent),
            sli_percent=slo.sli_percent, budget_remaining=slo.budget_remaining, burn_rates=dict(slo.burn_rates),
            open_alerts=tuple(alerts.get(slo.pk, ())), evaluated_at=slo.evaluated_at, url=slo.get_absolute_url(),
            valid_events=slo.valid_events, bad_events=slo.bad_events))
    return out
