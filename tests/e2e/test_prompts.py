"""The path of a prompt to production, in Chromium: create, add a version, diff, request promotion,
approve as a second person, see production move and the history row."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import log_in, log_out


def test_a_prompt_goes_from_draft_to_production_with_a_second_persons_approval(page, demo_people):
    log_in(page, "evan")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Prompts", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Prompts")
    page.get_by_role("link", name="New prompt").click()

    page.get_by_label("Team").select_option(label="Support AI")
    page.get_by_label("Name").fill("support/e2e-triage")
    page.get_by_label("Description").fill("Summaries of support tickets for agents")
    page.get_by_label("Template").fill("Summarise this ticket for {{ customer }}:\n<ticket>{{ ticket }}</ticket>")
    page.get_by_label("Commit message").fill("first draft")
    page.get_by_role("button", name="Create prompt").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("support/e2e-triage")
    expect(page.locator("#versions")).to_contain_text("first draft")

    page.get_by_role("link", name="New version").click()
    template = page.get_by_label("Template")
    template.fill("Summarise this ticket for {{ customer }} in two sentences:\n<ticket>{{ ticket }}</ticket>")
    page.get_by_label("Temperature").fill("0.2")
    page.get_by_label("Commit message").fill("shorter summaries")
    page.get_by_role("button", name=re.compile("Save version 2")).click()
    expect(page.get_by_role("status")).to_contain_text("Saved version 2.")

    page.get_by_role("link", name="Diff with v1").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("v1 → v2")
    expect(page.locator("table.diff-table tr.diff-replace mark").first).to_be_visible()
    expect(page.locator("table.diff-config")).to_contain_text("config.temperature")

    page.get_by_role("link", name="← support/e2e-triage").click()
    page.get_by_role("link", name="Request promotion").click()
    page.get_by_label("Reason").fill("Agents asked for shorter summaries")
    page.get_by_role("button", name="Open promotion request").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Request #")
    expect(page.locator("[data-check=approvals]")).to_contain_text("failed")
    expect(page.locator("[data-check=use_case]")).to_contain_text("not configured")
    request_url = page.url
    log_out(page)

    log_in(page, "olivia")
    page.goto(request_url)
    page.get_by_label("Comment").fill("Reads well")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("production now points at version 2")
    expect(page.locator("[data-check=approvals]")).to_contain_text("passed")

    page.get_by_role("link", name="support/e2e-triage").first.click()
    expect(page.locator('#labels tr[data-label="production"]')).to_contain_text("v2")
    history = page.locator("#label-history tbody tr").first
    expect(history).to_contain_text("production")
    expect(history).to_contain_text("— → v2")
    expect(history).to_contain_text("olivia")
    expect(history).to_contain_text("Agents asked for shorter summaries")


def test_the_catalog_filters_as_you_type(page, demo_people):
    from apps.accounts.models import Team
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create

    team = Team.objects.get(slug="support-ai")
    for name, template in (("support/refund-reply", "Reply about the refund for {{ order }}"),
                           ("support/greeting", "Greet {{ name }} warmly")):
        prompt_create(team=team, name=name, actor=demo_people["evan"], draft=Draft(kind="text", template=template))
    log_in(page, "pat")
    page.goto("/prompts/")
    rows = page.locator("table.prompt-table tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Search").fill("refu")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("support/refund-reply")
    expect(page).to_have_url(re.compile(r"q=refu"))


def test_a_template_that_would_build_100_mb_is_refused_in_the_playground_with_the_reason(page, demo_people):
    from django.urls import reverse

    from apps.accounts.models import Team
    from apps.llm.services import catalog_seed_local
    from apps.prompts.services import Draft, prompt_create

    catalog_seed_local()
    prompt_create(team=Team.objects.get(slug="support-ai"), name="support/e2e-wide", actor=demo_people["evan"],
                  draft=Draft(kind="text", template="Header\n{{ 'a'|center(10**8) }}"), commit_message="wide")

    log_in(page, "evan")
    page.goto(reverse("prompts:playground", kwargs={"name": "support/e2e-wide", "number": 1}))
    page.get_by_role("button", name="Run").click()

    expect(page.get_by_text(re.compile(r"center filter's result of 100,000,000 characters would exceed"))).to_be_visible()
