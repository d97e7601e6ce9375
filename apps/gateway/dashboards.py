"""The gateway's traffic on the portal's dashboards: spend by key, alias or deployment on the cost dashboard
(a panel costs' registry draws), latency percentiles on the quality dashboard (/evals/dashboards/ includes
`gateway/partials/_latency_panel.html` with `latency_panel_context`). Both read the daily rollups only."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from apps.core import charts
from apps.gateway import selectors

GROUP_LABELS = {"key": "key", "alias": "alias", "deployment": "deployment"}


def _days(start: datetime, end: datetime) -> tuple[date, date]:
    """[start, end) as whole UTC days: the days the range touches."""
    last = (end - timedelta(microseconds=1)).date()
    return start.date(), last + timedelta(days=1)


def cost_panel(*, actor, filters, params) -> str:
    """Gateway spend by key (or alias, deployment: `?gateway_by=`) for the dashboard's range and team."""
    group_by = params.get("gateway_by") if params.get("gateway_by") in selectors.TRAFFIC_GROUPS else "key"
    start, end = _days(filters.start, filters.end)
    rows = selectors.traffic_spend(actor=actor, start=start, end=end, team_ids=filters.team_ids, group_by=group_by)
    if not rows and "gateway_by" not in params:
        return ""  # no gateway traffic in the range: the dashboard stays as it was
    query = params.copy()
    links = []
    for name, label in GROUP_LABELS.items():
        query["gateway_by"] = name
        links.append({"name": name, "label": label, "current": name == group_by,
                      "url": f"{reverse('costs:dashboard')}?{query.urlencode()}"})
    figure = charts.horizontal_bars(labels=[r.label for r in rows][::-1],
                                    bars={"spend ($)": [float(r.cost or 0) for r in rows][::-1]},
                                    x_title="US dollars") if rows else None
    return render_to_string("gateway/partials/_cost_panel.html", {
        "rows": rows, "group_by": group_by, "links": links, "chart_html": charts.to_html(figure) if figure else "",
        "ignored": [name for name in ("feature", "tenant", "model", "source") if getattr(filters, name)],
        "log_url": reverse("gateway:requests")})


def latency_panel_context(*, actor, days: int = 30, group_by: str = "alias") -> dict:
    """Gateway latency p50/p95 (total, upstream, overhead, time to first token) over the last `days`."""
    end = timezone.now().date() + timedelta(days=1)
    rows = selectors.traffic_latency(actor=actor, start=end - timedelta(days=days), end=end, group_by=group_by)
    return {"rows": rows, "days": days, "measures": selectors.LATENCY_MEASURES}
