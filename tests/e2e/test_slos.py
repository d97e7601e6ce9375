"""An engineer follows a fast burn: the SLO overview shows the page, the use case's SLO page shows the alert and
its budget chart, and the alert leads to the incident it opened."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.layout import assert_page_usable


@pytest.mark.django_db(transaction=True)
def test_an_engineer_follows_a_fast_burn_from_the_slo_page_to_its_incident(page, page_log, demo_people):
    from apps.accounts.models import Team
    from apps.slos.demo import BURNING, seed_demo_slos

    seed_demo_slos(demo_people, {team.slug: team for team in Team.objects.all()})

    log_in(page, "evan")
    page.get_by_role("navigation").get_by_role("link", name="SLOs").click()
    expect(page.get_by_test_id("slo-alerts")).to_contain_text(BURNING)
    page.get_by_test_id("slo-list").get_by_role("link", name=BURNING).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"SLOs of {BURNING}")
    expect(page.get_by_test_id("slo-health")).to_have_text("Burning fast (page)")
    expect(page.locator("svg.main-svg").first).to_be_visible()  # the budget chart is drawn
    assert_page_usable(page, page_log)
    page.get_by_test_id("slo-alerts").get_by_role("link", name="INC-").first.click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(f"SLO fast burn: {BURNING}")
