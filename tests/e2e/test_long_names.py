"""Issue #11: a 200-character name wraps or is cut short with the full text on hover, and never makes a page
(or a table's other columns) scroll sideways: in tables, selects, cards, headings and breadcrumbs."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.layout import WIDTHS, assert_page_usable, at_widths, htmx_swap, screenshot

# Prompt names have no spaces: underscores and dots do not offer a line break as spaces and hyphens do.
LONG_PROMPT = ("support/" + "_".join(["customer_escalation_summary_for_enterprise_accounts"] * 4))[:200]
LONG_TITLE = ("Automated first answers to enterprise customers who write to the support desk about billing "
              "disputes, refunds, invoices and contract renewals in all regions and in every language the "
              "desk supports today")[:200]
# Team names stop at 120 characters; this one is a single word (a pasted identifier).
LONG_TEAM = "Customer" + "Operations" * 11 + "XX"
# The whole text with no break opportunity at all: a pasted token, a URL, a name in another script.
LONG_WORD_TITLE = "X" * 200


@pytest.fixture
def long_names(demo_people):
    from apps.accounts.models import Team
    from apps.accounts.services import team_create
    from apps.core.request_context import acting_as
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create
    from apps.reviews.linking import prompt_link
    from apps.reviews.services import use_case_create

    assert len(LONG_PROMPT) == len(LONG_TITLE) == 200 and len(LONG_TEAM) == 120
    olivia, team = demo_people["olivia"], Team.objects.get(slug="support-ai")
    with acting_as(None):
        team_create(name=LONG_TEAM, slug="customer-operations", owner=olivia)
    with acting_as(olivia):
        prompt = prompt_create(team=team, name=LONG_PROMPT, kind="text", actor=olivia, tags=["escalation"],
                               description="Summarises an escalated ticket for the account manager.",
                               draft=Draft(kind="text", template="Summarise: {{ ticket }}"))
        use_case = use_case_create(team=team, actor=olivia, title=LONG_TITLE, purpose="Answer customers faster.")
        use_case_create(team=team, actor=olivia, title=LONG_WORD_TITLE, purpose="A title with no spaces.")
        prompt_link(use_case=use_case, actor=olivia, prompt=prompt)
    return {"prompt": prompt, "use_case": use_case}


def usable(page, name):
    """The check for `at_widths`, leaving a screenshot per width for a reviewer."""

    def check(width):
        assert_page_usable(page)
        screenshot(page, f"long-names_{name}_{width}")

    return check


def assert_no_table_scrolls_sideways(page):
    wide = page.evaluate("""() => [...document.querySelectorAll('.table-wrap, table')]
        .filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => el.outerHTML.slice(0, 80))""")
    assert not wide, f"a long name pushes columns off screen: {wide}"


def test_long_names_wrap_or_show_in_full_on_hover_on_every_page_they_reach(page, page_log, long_names):
    log_in(page, "olivia")

    # The home page's cards and its recent activity, and the list of teams.
    expect(page.get_by_role("link", name=LONG_TEAM)).to_be_visible()
    at_widths(page, usable(page, "home"))
    assert_no_table_scrolls_sideways(page)
    page.goto("/accounts/teams/")
    at_widths(page, usable(page, "teams"))
    assert_no_table_scrolls_sideways(page)

    # The catalog: the use-case filter keeps its width, the long prompt name wraps in its cell.
    page.goto("/prompts/")
    use_case_filter = page.get_by_label("Use case")

    def catalog_is_usable(width):
        usable(page, "prompts")(width)
        assert_no_table_scrolls_sideways(page)
        assert use_case_filter.bounding_box()["width"] < width / 2
        expect(page.get_by_role("link", name=LONG_PROMPT)).to_be_visible()

    at_widths(page, catalog_is_usable)
    with htmx_swap(page, url="/prompts/"):
        use_case_filter.select_option(label=LONG_TITLE)
    expect(use_case_filter).to_have_attribute("title", LONG_TITLE)  # the cut-short choice, in full on hover
    expect(page.get_by_role("link", name=LONG_PROMPT)).to_be_visible()
    at_widths(page, catalog_is_usable, widths=reversed(WIDTHS))

    # The prompt's page: heading, breadcrumbs and the use-case panel.
    page.get_by_role("link", name=LONG_PROMPT).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(LONG_PROMPT)
    at_widths(page, usable(page, "prompt"))

    # The register of use cases and the use case's own page (its linked prompt included).
    page.goto("/use-cases/")
    expect(page.get_by_role("link", name=LONG_TITLE)).to_be_visible()
    at_widths(page, usable(page, "use-cases"))
    assert_no_table_scrolls_sideways(page)
    page.get_by_role("link", name=LONG_TITLE).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(LONG_TITLE)
    at_widths(page, usable(page, "use-case"))
