"""A product manager opens Costs, filters the spend chart to one team, and exports what they see as CSV."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.conftest import log_in


@pytest.fixture
def costs_usage(demo_people):
    from apps.accounts.models import Team
    from apps.costs.services import price_set
    from tests.costs.conftest import record

    price_set(model_name="gpt-4o-mini", input_per_mtok="0.15", output_per_mtok="0.60",
              valid_from=datetime(2024, 1, 1, tzinfo=UTC))
    support, search = Team.objects.get(slug="support-ai"), Team.objects.get(slug="search")
    now = timezone.now()
    rows = []
    for d in range(14):
        at = now - timedelta(days=d, minutes=5)
        rows.append({"team_id": support.pk, "feature": "ticket-answer", "input_tokens": 2_000_000, "output_tokens": 100,
                     "occurred_at": at, "request_id": f"e2e-s-{d}"})
        rows.append({"team_id": search.pk, "feature": "query-rewrite", "input_tokens": 900_000, "output_tokens": 50,
                     "occurred_at": at, "request_id": f"e2e-q-{d}"})
    record(*rows)


def test_a_pm_filters_the_spend_chart_by_team_and_exports_it(page, costs_usage):
    log_in(page, "pat")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Costs", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Costs")
    spend = page.get_by_test_id("report-spend")
    expect(spend.locator(".js-plotly-plot")).to_be_visible()  # plotly drew the chart
    # plotly draws while the page parses; htmx (deferred) binds the filters only after: wait for it.
    page.wait_for_load_state("load")
    page.get_by_label("Stack by").select_option("feature")
    expect(spend.get_by_test_id("table-spend")).to_contain_text("query-rewrite")

    page.get_by_label("Team").select_option(label="Support AI")

    table = page.get_by_test_id("report-spend").get_by_test_id("table-spend")
    expect(table).not_to_contain_text("query-rewrite")
    expect(table).to_contain_text("ticket-answer")
    expect(page).to_have_url(re.compile(r"team=support-ai"))
    with page.expect_download() as download_info:
        page.get_by_test_id("report-spend").get_by_role("link", name="CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("costs-spend-")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows and {r["Feature"] for r in rows} == {"ticket-answer"}
    assert abs(sum(float(r["Cost (USD)"]) for r in rows) - 14 * 0.30006) < 0.001
