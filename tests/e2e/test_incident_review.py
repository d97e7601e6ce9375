"""After the incident: its commander writes the review (a root cause, an action item with an owner and a due
date) and signs it off, which closes the incident ("review done")."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.layout import assert_page_usable, at_widths


@pytest.mark.django_db(transaction=True)
def test_the_commander_writes_the_review_with_an_action_item_and_signs_it_off(page, page_log, demo_people):
    from apps.accounts.models import Team
    from apps.incidents import services

    evan = demo_people["evan"]
    incident = services.incident_declare(actor=evan, team=Team.objects.get(slug="support-ai"), severity=2,
                                         title="Refund bot quotes 60-day refunds", kind="incorrect_outputs")
    services.incident_move(incident=incident, actor=evan, to="resolved")

    log_in(page, "evan")
    page.goto(incident.get_absolute_url())
    page.get_by_test_id("review-link").click()
    expect(page.get_by_test_id("review-timeline")).to_contain_text("Declared Sev2")
    expect(page.get_by_test_id("sign-off")).to_be_disabled()

    form = page.get_by_test_id("review-form")
    form.get_by_label("Summary").fill("The refund policy PDF was not re-indexed after the change.")
    form.get_by_label("Was the runbook followed?").select_option("partly")
    form.get_by_label("What to change in the runbook").fill("Check the collection's document dates first.")
    form.get_by_role("button", name="Save the review").click()

    causes = page.get_by_test_id("cause-form")
    causes.get_by_label("Category").select_option("process")
    causes.get_by_label("Root cause").fill("Policy owners did not know documents must be re-indexed.")
    causes.get_by_role("button", name="Add root cause").click()
    expect(page.get_by_test_id("root-causes")).to_contain_text("Process (socio-technical)")

    actions = page.get_by_test_id("action-form")
    actions.get_by_label("Action item").fill("Add re-indexing to the policy release checklist")
    actions.get_by_label("Owner").select_option(label="olivia")
    actions.get_by_label("Due").fill((timezone.localdate() + timedelta(days=14)).isoformat())
    actions.get_by_role("button", name="Add action item").click()
    expect(page.get_by_test_id("action-items")).to_contain_text("Add re-indexing to the policy release checklist")
    at_widths(page, lambda width: assert_page_usable(page, page_log))

    page.get_by_test_id("sign-off").click()
    expect(page.get_by_test_id("review-state")).to_contain_text("Signed off")
    expect(page.get_by_test_id("review-form")).to_have_count(0)
    page.get_by_role("link", name="Back to the incident").click()
    expect(page.get_by_test_id("status")).to_have_text("Review done")
