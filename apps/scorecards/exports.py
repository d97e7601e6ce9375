"""The scorecard as plain data: what the JSON/CSV exports and the API answer (one shape for all three)."""

from __future__ import annotations

from apps.scorecards import selectors
from apps.scorecards.kpis import KPIS


def scorecard_dict(use_case, snapshot) -> dict:
    values = selectors.kpi_values(snapshot)
    return {
        "use_case": use_case.pk, "title": use_case.title, "team": use_case.team.name, "tier": use_case.tier,
        "status": snapshot.status if snapshot else None,
        "computed_at": snapshot.computed_at.isoformat() if snapshot else None,
        "window_days": snapshot.window_days if snapshot else None,
        "kpis": [{
            "kpi": v["kpi"].key, "label": v["kpi"].label, "unit": v["kpi"].unit, "better": v["kpi"].better,
            "mode": v["kpi"].mode, "value": v["value"].value, "display": v["display"], "target": v["value"].target,
            "status": v["value"].status, "ci_low": v["value"].ci_low, "ci_high": v["value"].ci_high,
            "sample": v["value"].sample, "detail": v["value"].detail, "source_url": v["value"].source_url,
            "computed_at": v["value"].computed_at.isoformat(),
            "trend": [{"window_end": end, "value": value} for end, value in v["value"].trend],
        } for v in values],
    }


def snapshot_csv_rows(portfolio_rows) -> list[list]:
    keys = list(KPIS)
    rows = [["use_case", "title", "team", "tier", "status", "computed_at",
             *[f"{k}_status" for k in keys], *[f"{k}_value" for k in keys]]]
    for s in portfolio_rows:
        cells = s.cells or {}
        rows.append([s.use_case_id, s.title, s.team, s.tier, s.status, s.computed_at.isoformat(),
                     *[cells.get(k, ["", ""])[0] for k in keys], *[cells.get(k, ["", ""])[1] for k in keys]])
    return rows
