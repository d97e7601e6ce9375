"""What a new user hits on prompts, in Chromium: being told a request waits (and what became of it), seeing
an open request before asking again, the template on the prompt page, a confirm step before cancelling,
strict variables in the preview, and a warning for a model the catalog does not have."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, log_out

TEMPLATE = "Summarise {{ ticket }} for {{ customer }} in three bullets"


@pytest.fixture
def triage(demo_people):
    """support/e2e-first-use v1 written by evan (olivia, the owner, may approve what evan asks)."""
    from apps.accounts.models import Team
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create

    team = Team.objects.get(slug="support-ai")
    return prompt_create(team=team, name="support/e2e-first-use", actor=demo_people["evan"], commit_message="first",
                         draft=Draft(kind="text", template=TEMPLATE))


def _open_request(triage, demo_people):
    from apps.prompts.services import promotion_request_open

    return promotion_request_open(prompt=triage, version=triage.versions.get(), actor=demo_people["evan"],
                                  reason="agents want bullets")


def test_the_approver_is_told_a_request_waits_and_the_requester_hears_it_was_approved(page, triage):
    log_in(page, "evan")
    page.goto(f"/prompts/{triage.name}/")
    page.get_by_role("link", name="Request promotion").click()
    page.get_by_label("Reason").fill("agents want bullets")
    page.get_by_role("button", name="Open promotion request").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Request #")
    log_out(page)

    log_in(page, "olivia")
    waiting = page.get_by_test_id("waiting-on-you")
    expect(waiting).to_have_text("1 waiting on you")
    waiting.click()
    # the inbox's header loads its counts by htmx: wait for them, so the page does not move under the next click
    expect(page).to_have_url(re.compile(r"/inbox/"))
    expect(page.get_by_test_id("waiting-on-you")).to_have_text("1 waiting on you")
    page.locator("#waiting").get_by_role("link", name="Promotion requests to review").click()
    expect(page).to_have_url(re.compile(r"waiting=me"))  # the list, not a link of the inbox it replaces
    page.get_by_role("link", name=re.compile(r"#\d+")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Request #")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("production now points at version 1")
    expect(page.get_by_test_id("waiting-on-you")).to_have_count(0)
    log_out(page)

    log_in(page, "evan")
    page.goto("/inbox/")
    expect(page.locator("#inbox-list")).to_contain_text("production moved: support/e2e-first-use")
    expect(page.locator("#inbox-list")).to_contain_text("approved by olivia")


def test_an_open_request_shows_on_the_version_page_before_asking_again(page, triage, demo_people):
    request = _open_request(triage, demo_people)
    log_in(page, "evan")
    page.goto(f"/prompts/{triage.name}/-/versions/1/")
    notice = page.get_by_test_id("open-request")
    expect(notice).to_contain_text(f"Request #{request.pk} to move production to v1 is still open")
    notice.get_by_role("link", name=f"Open request #{request.pk}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Request #{request.pk}")


def test_the_prompt_page_shows_the_current_template(page, triage):
    log_in(page, "pat")
    page.goto("/prompts/")
    page.get_by_role("link", name=triage.name).click()
    current = page.locator("#current-template")
    expect(current.get_by_role("heading")).to_contain_text("latest")
    expect(current).to_contain_text("in three bullets")


def test_cancelling_a_request_asks_first(page, triage, demo_people):
    request = _open_request(triage, demo_people)
    log_in(page, "evan")
    page.goto(f"/prompts/-/requests/{request.pk}/")
    page.get_by_role("link", name="Cancel request…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Cancel request #{request.pk}?")
    page.get_by_role("link", name="Keep it open").click()
    expect(page.locator(".page-head .badge").first).to_have_text("open")
    page.get_by_role("link", name="Cancel request…").click()
    page.get_by_label("Why (optional)").fill("wrong version")
    page.get_by_role("button", name=f"Yes, cancel request #{request.pk}").click()
    expect(page.get_by_role("status")).to_contain_text("Cancelled.")
    expect(page.locator(".page-head .badge").first).to_have_text("cancelled")


def test_an_empty_variable_in_the_preview_is_an_error_next_to_it(page, triage):
    log_in(page, "evan")
    page.goto(f"/prompts/{triage.name}/-/versions/1/")
    page.get_by_label("ticket").fill("Printer on fire")
    page.get_by_role("button", name="Render").click()
    customer = page.get_by_label("customer")
    expect(customer).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#var-customer-error")).to_contain_text("customer is empty")
    expect(page.locator("#render-result")).not_to_contain_text("three bullets")
    page.get_by_label("customer").fill("ACME")
    page.get_by_role("button", name="Render").click()
    expect(page.locator("#render-result")).to_contain_text("Summarise Printer on fire for ACME in three bullets")


def test_a_model_missing_from_the_catalog_is_saved_with_a_warning(page, triage):
    from apps.llm.services import catalog_seed_local

    catalog_seed_local()
    log_in(page, "evan")
    page.goto(f"/prompts/{triage.name}/")
    page.get_by_role("link", name="New version").click()
    page.get_by_label("Model").fill("gpt-9-ultra")
    page.get_by_label("Commit message").fill("bigger model")
    page.get_by_role("button", name=re.compile("Save version 2")).click()
    expect(page.get_by_role("status")).to_contain_text("Saved version 2.")
    warning = page.get_by_test_id("model-warning")
    expect(warning).to_contain_text("'gpt-9-ultra' is not an active chat model in the catalog")
    expect(warning).to_contain_text("local-extractive")
