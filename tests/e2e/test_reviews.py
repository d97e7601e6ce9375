"""A use case from intake to an active approval, in Chromium: an engineer fills the questionnaire (follow-ups
appear as they answer), security finds the vote request in the inbox, security and privacy vote, privacy sets
an automatic condition, and the condition is met by the portal's own check once the team sets a budget; the
use case goes active only once privacy has waived, with a reason, each required control still blocking it."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import log_in, log_out


def settled(page):
    """Wait until the questionnaire's htmx re-render (progressive disclosure) has finished."""
    page.wait_for_function("() => !document.querySelector('.htmx-request')")  # a function: a bare expression is eval'd, which the CSP refuses


def yes_no(page, field, value: bool):
    page.locator(f'input[name="a_{field}"][value="{"true" if value else "false"}"]').check()
    settled(page)


def choose(page, field, value):
    page.locator(f'select[name="a_{field}"]').select_option(value)
    settled(page)


def tick(page, field, *values):
    for value in values:
        page.locator(f'input[name="a_{field}"][value="{value}"]').check()
        settled(page)


def text(page, field, value):
    page.locator(f'[name="a_{field}"]').fill(value)
    page.locator(f'[name="a_{field}"]').blur()
    settled(page)


def test_intake_votes_decision_and_a_condition_met_automatically(page, demo_people):
    log_in(page, "evan")
    page.goto("/use-cases/")
    page.get_by_role("link", name="Propose a use case").click()
    page.get_by_label("Title *").fill("E2E ticket summariser")
    page.get_by_label("Purpose *").fill("Summarise support tickets, including customer details, for agents.")

    # Progressive disclosure: the vendor follow-ups appear only for a third-party model.
    expect(page.locator('[data-question="vendor_retention"]')).to_have_count(0)
    yes_no(page, "third_party_model", True)
    expect(page.locator('[data-question="vendor_retention"]')).to_be_visible()
    yes_no(page, "third_party_model", False)
    expect(page.locator('[data-question="vendor_retention"]')).to_have_count(0)

    tick(page, "exposure", "internal")
    tick(page, "geographies", "us")
    text(page, "models", "local-extractive")
    yes_no(page, "chats_with_people", False)
    yes_no(page, "generates_media", False)
    choose(page, "annex_iii_area", "none")
    yes_no(page, "decision_influence", False)
    yes_no(page, "profiling", False)
    tick(page, "prohibited_practices", "none")
    choose(page, "human_oversight", "every_output")
    yes_no(page, "tool_actions", False)
    yes_no(page, "untrusted_content", False)
    yes_no(page, "external_publication", False)
    tick(page, "prompt_data_classes", "internal", "pii")
    yes_no(page, "uses_rag", False)
    tick(page, "regulated_advice", "none")
    choose(page, "harm_scale", "individual")
    choose(page, "harm_reversibility", "easy")
    text(page, "planned_evals", "Baseline eval on 50 tickets")
    page.get_by_role("button", name="Save and submit for review").click()
    expect(page.locator("#uc-state")).to_have_text("In review")
    expect(page.locator("#uc-tier")).to_have_text("Elevated risk")
    expect(page.locator("#tiering")).to_contain_text("Personal or confidential data")
    use_case_url = page.url
    log_out(page)

    log_in(page, "sam")
    page.goto("/use-cases/")
    # The vote request waits in the portal's one inbox, linked to the use case.
    page.locator(".page-head").get_by_role("link", name=re.compile(r"^Inbox")).click()
    expect(page).to_have_url(re.compile(r"/inbox/$"))
    page.get_by_role("link", name=re.compile(r"^Vote needed: E2E ticket summariser")).click()
    expect(page).to_have_url(use_case_url)
    page.goto("/use-cases/")
    queue = page.locator("#vote-queue")
    expect(queue).to_contain_text("E2E ticket summariser")
    queue.get_by_role("link", name="E2E ticket summariser").click()
    page.get_by_label("Approve", exact=True).check()
    page.get_by_label("Rationale *").fill("No security concern for an internal tool.")
    page.get_by_role("button", name="Cast vote").click()
    expect(page.get_by_role("status")).to_contain_text("Vote recorded.")
    expect(page.locator("#uc-state")).to_have_text("In review")
    log_out(page)

    log_in(page, "priya")
    page.goto(use_case_url)
    page.get_by_label("Approve with conditions").check()
    page.get_by_label("Rationale *").fill("Approve once spend is capped.")
    page.get_by_role("button", name="Cast vote").click()
    expect(page.locator("#uc-state")).to_have_text("Approved with conditions")

    page.get_by_label("Condition", exact=True).fill("Monthly budget at most $2,000")
    page.get_by_label("Owner").select_option(label="olivia")
    page.get_by_label("Kind").select_option("automatic")
    page.get_by_label("Automatic check").select_option("budget_cap")
    page.get_by_label("Cap (USD)").fill("2000")
    page.get_by_role("button", name="Set condition").click()
    expect(page.get_by_role("status")).to_contain_text("Condition set.")
    page.get_by_role("button", name="Conditions set").click()
    expect(page.locator("#uc-state")).to_have_text("Conditions pending")
    expect(page.locator("#conditions")).to_contain_text("No active monthly budget")

    # The team sets a budget in Costs; the portal's own check meets the condition.
    from apps.accounts.models import Team
    from apps.costs.services import budget_create

    budget_create(actor=demo_people["olivia"], name="Support AI monthly", team=Team.objects.get(slug="support-ai"),
                  amount="1500")
    page.get_by_role("button", name="Check now").click()
    expect(page.locator("#conditions")).to_contain_text(re.compile(r"Monthly budget \$1,500.00 ≤ cap \$2,000.00"))
    # The condition is met, but required controls are neither evidenced nor waived: the page says what blocks.
    expect(page.locator("#uc-state")).to_have_text("Conditions pending")
    blockers = page.locator("#activation-blockers")
    expect(blockers).to_contain_text("still block")
    # Privacy waives each blocking control with a reason; the last waiver activates the use case.
    while page.locator("#activation-blockers").count():
        row = page.locator("#controls tr:has(summary:text('Waive'))").first
        row.locator("summary", has_text="Waive").click()
        row.get_by_role("button", name="Waive control").click()  # no reason: refused next to the field
        row = page.locator("#controls tr:has(.field-error)").first
        expect(row.locator(".field-error")).to_have_text("Say why the council waives this control.")
        row.get_by_label(re.compile(r"^Why the council waives")).fill("Internal tool; covered by the platform.")
        row.get_by_role("button", name="Waive control").click()
        expect(page.get_by_role("status")).to_contain_text("Control waived.")
    expect(page.locator("#uc-state")).to_have_text("Active")
    expect(page.locator("#controls")).to_contain_text("Waived by priya")
    expect(page.locator("#timeline")).to_contain_text("Active")
    page.wait_for_load_state("networkidle")
