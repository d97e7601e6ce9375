"""The model aliases page in Chromium: the demo's aliases with their live breaker state, and an admin draining
a deployment (weight 0) from its edit form."""

from playwright.sync_api import expect

from tests.e2e.conftest import log_in


def test_an_admin_sees_the_demo_aliases_and_drains_a_deployment(page, demo_people):
    from apps.llm import breakers
    from apps.llm.models import Deployment
    from portal.demo import seed_demo_models

    seed_demo_models()
    for deployment in Deployment.objects.all():
        breakers.reset(deployment.pk)

    log_in(page, "admin")
    page.goto("/models/")
    page.get_by_role("link", name="Aliases & routing").click()
    chat = page.locator('[data-alias="chat"] [data-deployment="local-extractive"]')
    expect(chat.locator("[data-breaker]")).to_have_text("closed")
    expect(page.locator('[data-alias="embeddings"] [data-deployment="local-minilm"]')).to_be_visible()

    chat.get_by_role("link", name="Edit").click()
    page.get_by_label("Weight").fill("0")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_text("saved")).to_be_visible()
    expect(chat.locator("[data-weight]")).to_have_text("0")
    assert Deployment.objects.get(alias__name="chat").weight == 0
