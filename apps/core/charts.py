"""The one way to draw a chart: plotly figures as plain dicts, rendered server-side into the page
(plotly.js comes from static files). Every area (costs, evals, ...) builds its figures with these helpers.

Dicts instead of plotly.graph_objects: the same figure, without per-trace validation that costs tens of
milliseconds on large charts. One helper per chart shape; `to_html` is the one way to put a figure on a page:
a container holding the figure as JSON, which static/portal/charts.js draws on load and after every htmx swap,
the same way both times (no inline script: the Content-Security-Policy forbids them; ADR 0008). A page with
charts includes templates/components/chart_scripts.html (plotly.js's basic bundle and charts.js).
"""

from __future__ import annotations

from django.utils.html import format_html, json_script
from plotly.utils import PlotlyJSONEncoder

PALETTE = ["#2453d6", "#1d7a46", "#9a6200", "#b42318", "#6b3fa0", "#0f7b8a", "#c2410c", "#4d5b73", "#8a8f98"]
LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "height": 340, "font": {"size": 12},
    "legend": {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},  # below the tick labels
    "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#fff",
    "hovermode": "x unified",
}
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def to_html(figure: dict) -> str:
    """The chart's container: no id (the page's section owns the id), its width is the panel's."""
    spec = {"data": figure["data"], "layout": figure["layout"], "config": CONFIG}
    return format_html('<div class="chart-figure" data-chart>{}</div>', json_script(spec, encoder=PlotlyJSONEncoder))


def _layout(**extra) -> dict:
    layout = {**LAYOUT, **extra}
    for axis in ("xaxis", "yaxis"):  # long or rotated tick labels take margin instead of being cut off
        layout[axis] = {"automargin": True, **layout.get(axis, {})}
    return layout


def bars(*, x: list, y: list, y_title: str, color: str | list[str] = PALETTE[0]) -> dict:
    """One series of bars; `color` may give each bar its own colour."""
    data = [{"type": "bar", "x": x, "y": y, "marker": {"color": color}, "showlegend": False}]
    return {"data": data, "layout": _layout(yaxis={"title": {"text": y_title}}, hovermode="closest")}


def category_lines(*, series: dict[str, list[tuple]], y_title: str, x_title: str = "") -> dict:
    """One line per name over categorical x values; each point is (x, y, hover text)."""
    data = [{"type": "scatter", "mode": "lines+markers", "name": name, "x": [p[0] for p in points],
             "y": [p[1] for p in points], "text": [p[2] for p in points],
             "hovertemplate": "%{x}: %{y}<br>%{text}<extra>%{fullData.name}</extra>",
             "marker": {"color": PALETTE[i % len(PALETTE)]}, "line": {"color": PALETTE[i % len(PALETTE)]}}
            for i, (name, points) in enumerate(series.items())]
    return {"data": data, "layout": _layout(yaxis={"title": {"text": y_title}}, hovermode="closest",
                                            xaxis={"type": "category", "title": {"text": x_title}})}


def stacked_bars(*, x: list, series: dict[str, list], y_title: str, categorical_x: bool = False) -> dict:
    """`categorical_x`: x values are labels even when they look like dates (e.g. months "2026-11")."""
    data = [{"type": "bar", "name": name, "x": x, "y": values, "marker": {"color": PALETTE[i % len(PALETTE)]}}
            for i, (name, values) in enumerate(series.items())]
    extra = {"xaxis": {"type": "category"}} if categorical_x else {}
    return {"data": data, "layout": _layout(barmode="stack", yaxis={"title": {"text": y_title}}, **extra)}


def grouped_bars(*, x: list, bars: dict[str, list], y_title: str, stacked: bool = False) -> dict:
    data = [{"type": "bar", "name": name, "x": x, "y": values, "marker": {"color": PALETTE[i % len(PALETTE)]}}
            for i, (name, values) in enumerate(bars.items())]
    return {"data": data, "layout": _layout(barmode="stack" if stacked else "group",
                                            yaxis={"title": {"text": y_title}}, hovermode="closest")}


def horizontal_bars(*, labels: list, bars: dict[str, list], x_title: str, title: str = "") -> dict:
    data = [{"type": "bar", "orientation": "h", "name": name, "y": labels, "x": values,
             "marker": {"color": PALETTE[i % len(PALETTE)]}} for i, (name, values) in enumerate(bars.items())]
    height = max(260, 28 * len(labels) + 90)
    layout = _layout(barmode="group", height=height, xaxis={"title": {"text": x_title}}, hovermode="closest",
                     yaxis={"automargin": True}, margin={"l": 20, "r": 20, "t": 30, "b": 50})
    if title:
        layout["title"] = {"text": title, "font": {"size": 13}}
    return {"data": data, "layout": layout}


def forecast_bars(*, labels, to_date, projected, low, high, budget) -> dict:
    data = [
        {"type": "bar", "name": "so far", "x": labels, "y": [round(v, 2) for v in to_date],
         "marker": {"color": PALETTE[0]}},
        {"type": "bar", "name": "forecast", "x": labels, "y": [round(p - t, 2) for p, t in zip(projected, to_date, strict=True)],
         "marker": {"color": "#9db4ef"},
         "error_y": {"type": "data", "symmetric": False, "array": [round(h - p, 2) for h, p in zip(high, projected, strict=True)],
                     "arrayminus": [round(p - lo, 2) for p, lo in zip(projected, low, strict=True)]}},
    ]
    if any(b is not None for b in budget):
        data.append({"type": "scatter", "mode": "markers", "name": "budget", "x": labels, "y": budget,
                     "marker": {"symbol": "line-ew-open", "size": 28, "color": PALETTE[3], "line": {"width": 3}}})
    return {"data": data, "layout": _layout(barmode="stack", yaxis={"title": {"text": "USD"}}, hovermode="closest")}
