"""Under the Content-Security-Policy (ADR 0008) the pages still work in Chromium: the page fixture fails any test
on a violation; these walk the pages that carry the most script (htmx, plotly, the API docs, the admin)."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.test_costs_dashboard import costs_usage  # noqa: F401  (fixture)


def test_pages_with_scripts_run_under_the_policy(page, costs_usage):  # noqa: F811
    log_in(page, "admin")
    response = page.goto("/costs/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("[data-chart] svg.main-svg").first).to_be_visible()
    page.wait_for_load_state("load")
    page.get_by_label("Stack by").select_option("feature")  # an htmx swap, then charts.js draws
    expect(page).to_have_url(re.compile(r"group_by=feature"))
    page.goto("/api/v1/docs")
    expect(page.locator("#swagger-ui .info")).to_be_visible()
    page.goto("/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto("/")
    page.locator("details.user-menu summary").click()  # the inbox count loads through htmx
    assert not page.console_errors, page.console_errors


def test_behaviour_that_was_in_inline_handlers_still_works(page, demo_people):
    """data-confirm asks before a delete (dismiss keeps it, accept deletes), data-autosubmit filters on change."""
    from apps.accounts.models import Team
    from apps.costs.models import Budget
    from apps.costs.services import budget_create

    budget = budget_create(actor=demo_people["olivia"], name="E2E monthly", team=Team.objects.get(slug="support-ai"),
                           amount="100")
    log_in(page, "olivia")
    page.goto(f"/costs/budgets/{budget.pk}/")
    page.wait_for_load_state("load")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete budget").click()
    expect(page).to_have_url(re.compile(rf"/costs/budgets/{budget.pk}/$"))
    assert asked == ["Delete this budget and its alerts?"] and Budget.objects.filter(pk=budget.pk).exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete budget").click()
    expect(page).to_have_url(re.compile(r"/costs/budgets/$"))
    assert not Budget.objects.filter(pk=budget.pk).exists()

    page.goto("/evals/runs/")
    page.wait_for_load_state("load")
    page.get_by_label("Status").select_option(index=1)
    expect(page).to_have_url(re.compile(r"status=\w+"))
    assert not page.console_errors, page.console_errors
