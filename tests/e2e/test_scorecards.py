"""A product manager reads the portfolio of scorecards, drills into a missed KPI and reaches the data behind it."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.layout import assert_page_usable, at_widths, screenshot


@pytest.mark.django_db(transaction=True)
def test_a_pm_drills_from_the_portfolio_into_a_missed_kpi_and_its_data(page, page_log, demo_people):
    from django.utils import timezone

    from apps.accounts.models import Team
    from apps.costs.rollups import token_bin
    from apps.gateway.models import LatencyDaily, TrafficDaily
    from apps.gateway.services import gateway_key_create
    from apps.reviews.models import UseCase
    from apps.scorecards.services import scorecards_refresh

    team = Team.objects.get(slug="support-ai")
    use_case = UseCase.objects.create(team=team, title="Refund answers", purpose="demo", state="active", tier="high",
                                      business_owner=demo_people["pat"])
    key = gateway_key_create(team=team, actor=demo_people["olivia"], name="refund-answers", feature="refunds",
                             use_case_id=use_case.pk).key
    yesterday = (timezone.now() - timedelta(days=1)).date()
    TrafficDaily.objects.create(day=yesterday, team_id=team.pk, gateway_key_id=key.pk, requests=200, errors=1)
    LatencyDaily.objects.bulk_create([  # P95 about 9 s against the high tier's 6 s: missed
        LatencyDaily(day=yesterday, team_id=team.pk, gateway_key_id=key.pk, measure="total", bin=token_bin(ms),
                     requests=n) for ms, n in ((900, 150), (9000, 50))])
    scorecards_refresh()

    log_in(page, "pat")
    page.get_by_role("navigation").get_by_role("link", name="Scorecards").click()
    row = page.get_by_role("row").filter(has_text="Refund answers")
    expect(row).to_be_visible()
    at_widths(page, lambda width: assert_page_usable(page, page_log))
    screenshot(page, "scorecards-portfolio")

    row.locator('a[data-status="missed"]').first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Refund answers")
    expect(page.locator("#focus-h")).to_contain_text("Latency P")
    expect(page.locator("#focus [data-chart]")).to_be_visible()
    at_widths(page, lambda width: assert_page_usable(page, page_log))
    screenshot(page, "scorecards-use-case")

    page.locator("#focus-source").click()
    page.wait_for_url(f"**/gateway/requests/?key={key.pk}")
    assert_page_usable(page, page_log)
