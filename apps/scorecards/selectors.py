"""Reads of the scorecards, restricted to the use cases the actor may see (reviews' own restriction, in SQL).
Pages read stored snapshots only: nothing here computes a KPI from the raw data."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import NamedTuple

import orjson
from django.db.models import Count, Max, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.safestring import mark_safe

from apps.accounts.permissions import sees_everything
from apps.reviews.selectors import use_case_list
from apps.scorecards.kpis import KPIS, display, display_target
from apps.scorecards.models import (
    KpiValue,
    ScorecardProfile,
    ScorecardRollup,
    ScorecardSnapshot,
    Status,
    TargetChange,
)

STATUS_SAFE = {s: s for s in Status.values}  # statuses are ours: written as they are, anything else dropped
STATUS_CLASS = {Status.MET: "ok", Status.AT_RISK: "warn", Status.MISSED: "bad", Status.NO_DATA: "",
                Status.NO_TARGET: ""}


@dataclass
class PortfolioFilters:
    team: str = ""  # a team slug
    tier: str = ""
    status: str = ""  # a use case's worst status, or "missed:<kpi>" style is not supported: keep it simple


def snapshots(*, actor, filters: PortfolioFilters | None = None) -> QuerySet[ScorecardSnapshot]:
    filters = filters or PortfolioFilters()
    visible = use_case_list(actor=actor)
    if filters.team:
        visible = visible.filter(team__slug=filters.team)
    qs = (ScorecardSnapshot.objects.filter(use_case__in=visible.values("pk"))
          .select_related("use_case", "use_case__team").order_by("use_case__team__name", "use_case__title"))
    if filters.tier:
        qs = qs.filter(tier=filters.tier)
    if filters.status:
        qs = qs.filter(status=filters.status)
    return qs


def portfolio_rows(snapshot_list) -> list[dict]:
    """One row per use case: its cells in the KPI table's order, each (key, status, css class, display)."""
    order = list(KPIS)
    rows = []
    for s in snapshot_list:
        cells = s.cells or {}
        rows.append({"snapshot": s, "cells": [(k, *_cell(cells.get(k))) for k in order]})
    return rows


class PortfolioRow(NamedTuple):
    use_case_id: int
    title: str
    team: str
    tier: str
    status: str
    computed_at: object
    cells: dict


WORST_FIRST = ("-missed", "-at_risk", "-no_data", "use_case__title", "pk")  # most missed KPIs, then most at risk


def portfolio(*, actor, filters: PortfolioFilters | None = None, offset: int = 0,
              limit: int | None = None) -> list[PortfolioRow]:
    """The portfolio's rows as plain tuples (500 model instances with their use case and team cost more than the
    page's whole budget), worst first; one page of them (`offset`, `limit`) or all (exports)."""
    rows = snapshots(actor=actor, filters=filters).order_by(*WORST_FIRST).annotate(
        cells_text=Cast("cells", TextField())).values_list(
        "use_case_id", "use_case__title", "use_case__team__name", "tier", "status", "computed_at", "cells_text")
    if limit is not None:
        rows = rows[offset:offset + limit]
    return [PortfolioRow(*row[:6], orjson.loads(row[6])) for row in rows]  # orjson: 500 decodes, ~5x faster


@dataclass
class PortfolioCounts:
    total: int
    by_status: dict  # {status: use cases whose worst KPI has it}
    computed_at: object  # the newest snapshot's time, or None


def portfolio_counts(*, actor, filters: PortfolioFilters | None = None) -> PortfolioCounts:
    """How many of the filtered use cases are in each worst status, and when the newest was computed: one
    grouped query over the whole portfolio, whatever page is shown."""
    groups = list(snapshots(actor=actor, filters=filters).order_by().values_list("status")
                  .annotate(n=Count("pk"), at=Max("computed_at")))
    by_status = {status: n for status, n, _at in groups}
    return PortfolioCounts(total=sum(by_status.values()), by_status=by_status,
                           computed_at=max((at for _s, _n, at in groups), default=None))


def portfolio_table_html(rows: list[PortfolioRow]) -> str:
    """The portfolio table's body as one string: 500 use cases × 16 KPIs is 8,000 cells, which the template
    language renders ten times slower than one join here (every value escaped; links relative to the page)."""
    order = list(KPIS)
    out = []
    for r in rows:
        parts = [f'<tr><td><a href="use-cases/{r.use_case_id}/">{escape(r.title)}</a></td><td>{escape(r.team)}</td>'
                 f'<td>{escape(r.tier or "—")}</td>']
        cells = r.cells or {}
        for key in order:
            status, css, shown = _cell(cells.get(key))
            parts.append(f'<td><a class="badge {css}" data-status="{STATUS_SAFE.get(status, "")}" '
                         f'href="use-cases/{r.use_case_id}/?kpi={key}">{escape(shown)}</a></td>')
        parts.append("</tr>")
        out.append("".join(parts))
    return mark_safe("\n".join(out))  # noqa: S308 - every value escaped above


def _cell(cell) -> tuple[str, str, str]:
    status, shown = (cell or [Status.NO_DATA, "—"])[:2]
    return status, STATUS_CLASS.get(status, ""), shown


def rollups(*, actor, team_ids) -> tuple[ScorecardRollup | None, list[ScorecardRollup]]:
    """The portfolio roll-up (only for those who see every team) and the roll-ups of these teams."""
    portfolio = ScorecardRollup.objects.filter(scope="portfolio").first() if sees_everything(actor) else None
    teams = list(ScorecardRollup.objects.filter(scope="team", team_id__in=list(team_ids)).order_by("team_id"))
    return portfolio, teams


def snapshot_of(use_case) -> ScorecardSnapshot | None:
    return ScorecardSnapshot.objects.filter(use_case=use_case).first()


def kpi_values(snapshot: ScorecardSnapshot | None) -> list[dict]:
    """The use case's KPIs in the table's order, ready to show."""
    if snapshot is None:
        return []
    by_key = {v.kpi: v for v in KpiValue.objects.filter(snapshot=snapshot)}
    out = []
    for key, kpi in KPIS.items():
        v = by_key.get(key)
        if v is None:
            continue
        out.append({"kpi": kpi, "value": v, "display": display(kpi, v.value),
                    "target": display_target(kpi, v.target), "css": STATUS_CLASS.get(v.status, ""),
                    "ci": (display(kpi, v.ci_low), display(kpi, v.ci_high)) if v.ci_low is not None else None})
    return out


def target_history(use_case, limit: int = 50) -> QuerySet[TargetChange]:
    return TargetChange.objects.filter(use_case=use_case).select_related("actor")[:limit]


def target_users(use_case) -> int | None:
    return ScorecardProfile.objects.filter(use_case=use_case).values_list("target_users", flat=True).first()


def compact_cells(use_case_ids) -> dict[int, dict]:
    """{use case id: {"status", "met", "at_risk", "missed", "no_data"}} for the register and the home page."""
    return {uc: {"status": st, "met": m, "at_risk": r, "missed": x, "no_data": n}
            for uc, st, m, r, x, n in ScorecardSnapshot.objects.filter(use_case_id__in=list(use_case_ids))
            .values_list("use_case_id", "status", "met", "at_risk", "missed", "no_data")}


def missed_for(*, actor, limit: int = 8) -> list[dict]:
    """The viewer's use cases with a missed KPI (the PM's home): worst first."""
    qs = (snapshots(actor=actor).filter(status__in=[Status.MISSED, Status.AT_RISK])
          .order_by("-missed", "-at_risk", "use_case__title")[:limit])
    return [{"snapshot": s, "missed": [KPIS[k].label for k, c in (s.cells or {}).items()
                                       if c[0] == Status.MISSED and k in KPIS]} for s in qs]


def kpi_value_current(*, use_case_id: int, kpi: str) -> KpiValue | None:
    return KpiValue.objects.filter(snapshot__use_case_id=use_case_id, kpi=kpi).first()


def missed_kpi_findings(rule, now, *, finding) -> list:
    """The incidents' `kpi_missed` signal (registered in hooks.py): each use case whose latest scorecard has at least
    `rule.threshold` KPIs missing their targets, as `finding`s (the incidents app's class, passed in) that fold per
    use case. Reads the snapshots (one row per use case), never the KPI inputs."""
    snapshots = ScorecardSnapshot.objects.filter(missed__gte=max(1, int(rule.threshold or 1))) \
        .select_related("use_case").order_by("use_case_id")
    if rule.team_id:
        snapshots = snapshots.filter(team_id=rule.team_id)
    out = []
    for snapshot in snapshots[:500]:
        missed = [(KPIS[key].label, cell[1]) for key, cell in snapshot.cells.items()
                  if key in KPIS and cell and cell[0] == Status.MISSED]
        if not missed:
            continue
        names = ", ".join(f"{label} ({value})" for label, value in missed)
        out.append(finding(
            snapshot.team_id, f"use_case:{snapshot.use_case_id}",
            f"{snapshot.use_case.title}: {len(missed)} KPI{'s' if len(missed) > 1 else ''} missing "
            f"{'their targets' if len(missed) > 1 else 'its target'}",
            f"The scorecard computed at {snapshot.computed_at:%Y-%m-%d %H:%M} UTC misses: {names}. The rule fires at "
            f"{int(rule.threshold or 1)} missed KPI(s) on one use case.",
            {"kind": "other", "use_cases": [snapshot.use_case_id]}))
    return out
