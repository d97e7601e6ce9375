"""Charts as a product manager sees them: each drawn inside its panel, under its title, as wide as the panel,
following the window; the CSV link beside the title clickable; charts swapped in by the costs filters laid out
exactly as after a full load; static files cached for good and compressed; a favicon; no console error."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, prompt_in_production
from tests.e2e.test_costs_dashboard import costs_usage  # noqa: F401  (fixture)

# Every chart panel on the page: its title, its CSV link, the drawn chart (plotly's svg.main-svg) and the box
# that chart must fill (the panel's content box).
GEOMETRY = """(panelSelector) => [...document.querySelectorAll(panelSelector)].flatMap((panel) => {
    const svg = panel.querySelector("svg.main-svg");
    if (!svg) return [];
    const box = (el) => { const r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left,
                                                                       right: r.right, width: r.width}; };
    const style = getComputedStyle(panel);
    const content = box(panel);
    content.left += parseFloat(style.paddingLeft) + parseFloat(style.borderLeftWidth);
    content.right -= parseFloat(style.paddingRight) + parseFloat(style.borderRightWidth);
    content.width = content.right - content.left;
    const link = [...panel.querySelectorAll("a")].find((a) => a.textContent.trim() === "CSV");
    let linkOnTop = null;
    if (link) {
        link.scrollIntoView({block: "center"});
        const r = link.getBoundingClientRect();
        linkOnTop = link.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));
    }
    return [{title: panel.querySelector("h2").textContent.trim(), heading: box(panel.querySelector("h2")),
             panel: box(panel), content, chart: box(svg), linkOnTop}];
})"""

# What a chart looks like apart from its data: where it sits, its legend, its modebar's styling.
LOOK = """(panelSelector) => [...document.querySelectorAll(panelSelector)].flatMap((panel) => {
    const svg = panel.querySelector("svg.main-svg");
    if (!svg) return [];
    const plot = svg.closest(".js-plotly-plot");
    const modebar = panel.querySelector(".modebar");
    const p = panel.getBoundingClientRect(), s = svg.getBoundingClientRect();
    return [{title: panel.querySelector("h2").textContent.trim(), plotted: Boolean(plot),
             legendItems: panel.querySelectorAll("g.legend g.traces").length,
             modebar: modebar && {position: getComputedStyle(modebar).position,
                                  opacity: getComputedStyle(modebar).opacity,
                                  background: getComputedStyle(modebar).backgroundColor},
             left: Math.round(s.left - p.left), top: Math.round(s.top - p.top), width: Math.round(s.width)}];
})"""

COSTS_PANELS = "section.chart-panel"
EVALS_PANELS = "section.panel.chart"


def wait_for_charts(page, panel_selector: str) -> None:
    """Until every panel that has data holds a drawn chart (the page's own 'no data' text otherwise)."""
    page.wait_for_load_state("load")
    page.wait_for_function("""(selector) => {
        const panels = [...document.querySelectorAll(selector)];
        return panels.length && panels.every((p) => p.querySelector("svg.main-svg") || p.querySelector(
            ":scope > p.muted, :scope > p.empty"));
    }""", arg=panel_selector)
    page.wait_for_timeout(300)  # a resize the charts follow lands on the next frames


def assert_charts_fit_their_panels(page, panel_selector: str) -> list[dict]:
    charts = page.evaluate(GEOMETRY, panel_selector)
    assert charts, "no chart was drawn"
    for c in charts:
        where = f"chart {c['title']!r}: {c}"
        assert c["chart"]["top"] >= c["heading"]["bottom"] - 1, f"drawn above its title; {where}"
        assert c["chart"]["bottom"] <= c["panel"]["bottom"] + 1, f"overflows its panel's bottom; {where}"
        assert c["chart"]["left"] >= c["content"]["left"] - 1, where
        assert c["chart"]["right"] <= c["content"]["right"] + 1, f"wider than its panel; {where}"
        assert c["chart"]["width"] >= c["content"]["width"] - 2, f"narrower than its panel; {where}"
        if c["linkOnTop"] is not None:
            assert c["linkOnTop"], f"something covers the CSV link; {where}"
    return charts


def spend_chart(charts: list[dict]) -> dict:
    (spend,) = [c for c in charts if c["title"].startswith("Spend over time")]
    return spend


def assert_no_console_errors(page) -> None:
    assert not page.console_errors, page.console_errors


@pytest.fixture
def eval_dashboard_data(demo_people):
    """A prompt in production with a finished eval run: the trends and coverage charts have something to draw."""
    from apps.evals import runner
    from apps.evals.datasets import dataset_create, dataset_items_add
    from apps.evals.services import evaluator_create, run_create

    team, _prompt, v1 = prompt_in_production(demo_people, "support/e2e-charts", "first")
    evan = demo_people["evan"]
    dataset = dataset_create(team=team, name="support/e2e-charts-golden", input_names=["question"], actor=evan)
    dataset_items_add(dataset=dataset, actor=evan, message="first items", items=[
        {"id": "refund", "inputs": {"question": "How long do refunds take?"}, "expected": "Refunds take 5 days.",
         "contexts": ["Refunds take 5 days."]},
        {"id": "hours", "inputs": {"question": "When is support open?"}, "expected": "Support is open 9 to 5.",
         "contexts": ["Support is open 9 to 5 on weekdays."]},
    ])
    dataset.refresh_from_db()
    evaluator = evaluator_create(team=team, name="exact", kind="exact_match", actor=evan)
    run = run_create(actor=evan, dataset=dataset, evaluators=[evaluator], target_ref={"version_id": v1.pk},
                     enqueue=False)
    runner.run_execute_inline(run.pk, threads=1)


def test_eval_dashboard_charts_sit_in_their_panels_under_their_titles_and_leave_csv_links_clickable(
        page, eval_dashboard_data):
    log_in(page, "pat")
    page.goto("/evals/dashboards/")
    wait_for_charts(page, EVALS_PANELS)
    charts = assert_charts_fit_their_panels(page, EVALS_PANELS)
    assert {"Evaluation coverage of production prompts"} <= {c["title"] for c in charts}
    assert all(c["linkOnTop"] is not None for c in charts)  # every chart panel has its CSV link
    assert_no_console_errors(page)


def test_cost_charts_fit_their_panels_and_follow_the_window(page, costs_usage):  # noqa: F811
    log_in(page, "pat")
    page.goto("/costs/")
    wait_for_charts(page, COSTS_PANELS)
    wide = assert_charts_fit_their_panels(page, COSTS_PANELS)

    page.set_viewport_size({"width": 900, "height": 900})  # one column: every panel gets wider
    page.wait_for_function("""(selector) => [...document.querySelectorAll(selector)].every((panel) => {
        const svg = panel.querySelector("svg.main-svg");
        return !svg || svg.getBoundingClientRect().right > panel.getBoundingClientRect().right - 40;
    })""", arg=COSTS_PANELS)
    narrow = assert_charts_fit_their_panels(page, COSTS_PANELS)
    assert spend_chart(narrow)["chart"]["width"] > spend_chart(wide)["chart"]["width"]
    assert_no_console_errors(page)


def test_cost_charts_swapped_in_by_apply_look_as_after_a_full_load(page, costs_usage):  # noqa: F811
    log_in(page, "pat")
    page.goto("/costs/")
    wait_for_charts(page, COSTS_PANELS)
    page.get_by_label("Stack by").select_option("feature")
    with page.expect_response(lambda r: "/costs/" in r.url and r.request.headers.get("hx-request") == "true"):
        page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"group_by=feature"))
    expect(page.get_by_test_id("table-spend")).to_contain_text("query-rewrite")
    wait_for_charts(page, COSTS_PANELS)
    swapped = page.evaluate(LOOK, COSTS_PANELS)
    assert_charts_fit_their_panels(page, COSTS_PANELS)
    spend = spend_chart(swapped)
    assert spend["legendItems"] == 2, spend  # one legend entry per feature
    assert all(c["modebar"]["position"] == "absolute" for c in swapped), swapped  # over the plot, not on the bars

    page.goto(page.url)  # the same filtered URL, loaded in full
    wait_for_charts(page, COSTS_PANELS)
    assert page.evaluate(LOOK, COSTS_PANELS) == swapped
    assert_no_console_errors(page)


def test_static_files_have_hashed_names_are_cached_for_good_and_come_compressed(page, costs_usage):  # noqa: F811
    import plotly

    log_in(page, "pat")
    statics = []
    page.on("response", lambda r: "/static/" in r.url and statics.append(r))
    page.goto("/costs/")
    wait_for_charts(page, COSTS_PANELS)
    scripts = [r for r in statics if r.request.resource_type in ("script", "stylesheet")]
    assert {Path(r.url).name.split(".")[0] for r in scripts} >= {"portal", "htmx-2", "plotly-basic", "charts"}
    for response in scripts:
        assert re.search(r"\.[0-9a-f]{12}\.(js|css)$", response.url), response.url
        cache_control = response.headers.get("cache-control", "")
        max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
        assert max_age >= 365 * 24 * 3600 and "immutable" in cache_control, (response.url, cache_control)
    plotly_js = next(r for r in scripts if "plotly" in r.url)
    for response in scripts:  # Chromium accepts gzip and br: each came compressed
        assert response.headers.get("content-encoding") in {"gzip", "br"}, (response.url, response.headers)
    answer = page.request.get(plotly_js.url, headers={"Accept-Encoding": "gzip"})
    assert answer.ok and answer.headers.get("content-encoding") == "gzip", answer.headers
    full_bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert len(plotly_js.body()) < full_bundle.stat().st_size / 2  # a partial bundle, not the full one
    assert_no_console_errors(page)


def test_every_page_has_a_favicon(page, demo_people):
    log_in(page, "pat")
    assert page.request.get("/favicon.ico").status == 200
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    answer = page.request.get(icon)
    assert answer.status == 200 and answer.headers["content-type"].startswith("image/")
    assert_no_console_errors(page)
