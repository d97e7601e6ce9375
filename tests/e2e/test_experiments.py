"""An experiment from an engineer's side: open it from the navigation (the new-experiment form and the page are
usable at both widths), read the arms compared, promote the winner through the catalog's request and find the
experiment's result among its gate checks."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, prompt_in_production
from tests.e2e.layout import assert_page_usable, at_widths


@pytest.mark.django_db(transaction=True)
def test_an_engineer_reads_the_arms_compared_and_promotes_the_winner(page, page_log, demo_people):
    from apps.experiments import services
    from apps.experiments.demo import traffic_seed
    from apps.prompts.content import Draft
    from apps.prompts.services import label_set, version_create

    team, prompt, _v1 = prompt_in_production(demo_people, "support/triage-summary", "first")
    evan = demo_people["evan"]
    v2 = version_create(prompt=prompt, actor=evan, draft=Draft(kind="text", config={"model": "local-extractive"},
                        template="Context:\n{{ context }}\nQuestion: {{ question }}\nAnswer in bullets.")).version
    label_set(prompt=prompt, label="staging", version=v2, actor=evan)
    experiment = services.experiment_create(actor=evan, prompt=prompt, name="Bullet answers", arms=[
        {"key": "control", "weight": 50, "label": "production"}, {"key": "candidate", "weight": 50, "label": "staging"}])
    services.experiment_start(experiment=experiment, actor=evan)
    traffic_seed(experiment, prompt, team, timezone.now() - timedelta(days=2))

    log_in(page, "evan")
    page.get_by_role("navigation").get_by_role("link", name="Experiments").click()
    page.get_by_role("link", name="New experiment").click()  # the form is usable too
    expect(page.get_by_label("Prompt")).to_contain_text("support/triage-summary")
    at_widths(page, lambda _width: assert_page_usable(page, page_log))
    page.go_back()
    page.get_by_role("link", name=f"#{experiment.pk} Bullet answers").click()
    expect(page.get_by_test_id("test-statement")).to_contain_text("always-valid p-values")
    comparison = page.get_by_test_id("arms-comparison")
    expect(comparison.locator("tr[data-arm=control]")).to_contain_text("control")
    expect(comparison.locator("tr[data-arm=candidate]").get_by_test_id("verdict")).to_contain_text("a winner")
    at_widths(page, lambda _width: assert_page_usable(page, page_log))

    page.get_by_role("button", name="Promote through a request").click()
    expect(page.get_by_test_id("status")).to_have_text("Stopped")
    page.get_by_role("link", name="request #").click()
    expect(page.get_by_text("Online experiment: the arm won")).to_be_visible()
    assert_page_usable(page, page_log)
