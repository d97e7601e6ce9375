"""portal/charts.py is the one way to draw: every shape renders to a container holding the figure as JSON, which
static/portal/charts.js draws with plotly.js (no inline script: the Content-Security-Policy allows none)."""

import json
import re

from portal import charts


def figure_json(html: str) -> dict:
    container = re.fullmatch(r'<div class="chart-figure" data-chart><script type="application/json">(.*)</script></div>',
                             html, re.S)
    assert container, html
    return json.loads(container.group(1))


def test_category_lines_keep_one_trace_per_name_with_hover_text():
    figure = charts.category_lines(series={"triage on golden": [("v1", 80.0, "run #1"), ("v2", 90.0, "run #2")],
                                           "summary on golden": [("v1", 70.0, "run #3")]},
                                   y_title="pass rate %", x_title="version")
    drawn = figure_json(charts.to_html(figure))
    assert [t["name"] for t in drawn["data"]] == ["triage on golden", "summary on golden"]
    assert drawn["data"][0]["x"] == ["v1", "v2"] and drawn["data"][0]["text"] == ["run #1", "run #2"]
    assert drawn["layout"]["xaxis"]["type"] == "category"


def test_bars_may_colour_each_bar():
    figure = charts.bars(x=["covered", "no gate"], y=[3, 1], y_title="prompts", color=["#1d7a46", "#b42318"])
    drawn = figure_json(charts.to_html(figure))
    assert drawn["data"][0]["marker"]["color"] == ["#1d7a46", "#b42318"]
    assert drawn["layout"]["yaxis"]["title"]["text"] == "prompts"


def test_a_chart_has_no_id_and_no_inline_script_and_its_json_cannot_close_the_script_block():
    figure = charts.bars(x=["</script><script>alert(1)</script>"], y=[1], y_title="&")
    html = charts.to_html(figure)
    assert " id=" not in html and "<script>" not in html and html.count("</script>") == 1
    drawn = figure_json(html)
    assert drawn["data"][0]["x"] == ["</script><script>alert(1)</script>"]
    assert drawn["config"] == charts.CONFIG and drawn["config"]["responsive"] is True


def test_every_chart_shape_uses_a_trace_type_the_vendored_plotly_bundle_registers():
    from pathlib import Path

    bundle = (Path(charts.__file__).resolve().parent.parent / "static" / "vendor" / "plotly-basic.min.js").read_text()
    registered = set(re.findall(r'moduleType:"trace",name:"(\w+)"', bundle))
    figures = [
        charts.bars(x=["a"], y=[1], y_title="y"),
        charts.category_lines(series={"s": [("v1", 1, "t")]}, y_title="y"),
        charts.stacked_bars(x=["a"], series={"s": [1]}, y_title="y"),
        charts.grouped_bars(x=["a"], bars={"s": [1]}, y_title="y"),
        charts.horizontal_bars(labels=["a"], bars={"s": [1]}, x_title="x"),
        charts.forecast_bars(labels=["a"], to_date=[1.0], projected=[2.0], low=[1.5], high=[2.5], budget=[3.0]),
    ]
    used = {trace["type"] for figure in figures for trace in figure["data"]}
    assert used <= registered, f"not in the basic bundle: {used - registered} (ADR 0008)"
