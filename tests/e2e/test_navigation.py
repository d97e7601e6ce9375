"""Every demo role logs in, walks the navigation, and logs out: the path each person takes first."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, log_out

AREAS = ["Prompts", "Use cases", "Evals", "Costs", "RAG", "Audit"]


@pytest.mark.parametrize("username", ["admin", "olivia", "evan", "pat", "sam"])
def test_each_demo_role_logs_in_walks_the_navigation_and_logs_out(page, demo_people, username):
    log_in(page, username)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    nav = page.get_by_role("navigation", name="Main")
    for label in AREAS:
        nav.get_by_role("link", name=label, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        expect(page).not_to_have_title(re.compile("Server error|Not found|Not allowed"))
        expect(nav.get_by_role("link", name=label, exact=True)).to_have_attribute("aria-current", "page")
    page.locator("details.user-menu summary").click()
    page.get_by_role("link", name="Teams & tokens").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Teams")
    log_out(page)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def test_a_wrong_password_is_refused_with_a_message_next_to_the_form(page, demo_people):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("evan")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("did not match")
    expect(page).to_have_url(re.compile("/accounts/login/"))
