"""portal/charts.py is the one way to draw: every shape renders to a div that plotly.js fills in."""

import json
import re

from portal import charts


def figure_json(html: str) -> dict:
    data = re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{", html, re.S)
    return {"data": json.loads(data.group(1)), "layout": json.loads(data.group(2))}


def test_category_lines_keep_one_trace_per_name_with_hover_text():
    figure = charts.category_lines(series={"triage on golden": [("v1", 80.0, "run #1"), ("v2", 90.0, "run #2")],
                                           "summary on golden": [("v1", 70.0, "run #3")]},
                                   y_title="pass rate %", x_title="version")
    html = charts.to_html(figure, div_id="chart-trends")
    assert 'id="chart-trends"' in html
    drawn = figure_json(html)
    assert [t["name"] for t in drawn["data"]] == ["triage on golden", "summary on golden"]
    assert drawn["data"][0]["x"] == ["v1", "v2"] and drawn["data"][0]["text"] == ["run #1", "run #2"]
    assert drawn["layout"]["xaxis"]["type"] == "category"


def test_bars_may_colour_each_bar():
    figure = charts.bars(x=["covered", "no gate"], y=[3, 1], y_title="prompts", color=["#1d7a46", "#b42318"])
    drawn = figure_json(charts.to_html(figure, div_id="chart-coverage"))
    assert drawn["data"][0]["marker"]["color"] == ["#1d7a46", "#b42318"]
    assert drawn["layout"]["yaxis"]["title"]["text"] == "prompts"
