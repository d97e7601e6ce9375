"""The gateway from a person's side: an owner creates a key on the page, a program calls the gateway with the
official SDK, and the call shows in the request log; its traffic on the cost and quality dashboards and the
deployment's live health on the aliases page, laid out within their panels."""

import pytest
from openai import OpenAI
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.layout import assert_page_usable, at_widths, htmx_swap
from tests.gateway.conftest import drain, gateway_server, gateway_url, local_catalog  # noqa: F401  (fixtures)


@pytest.mark.django_db(transaction=True)
def test_create_a_key_call_it_with_the_sdk_and_see_the_request_in_the_log(page, demo_people, gateway_url,  # noqa: F811
                                                                          local_catalog, drain):  # noqa: F811
    log_in(page, "olivia")
    page.get_by_role("navigation").get_by_role("link", name="Gateway").click()
    page.get_by_label("Name", exact=True).fill("support-bot-e2e")
    page.get_by_label("Feature").fill("support-bot")
    page.get_by_label("Allowed models / aliases").fill("chat")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("gateway-key-secret").inner_text().strip()

    answer = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "Refunds take 14 days. How long do refunds take?"}])
    request_id = answer.headers["x-portal-request-id"]
    assert drain() == 1

    page.goto("/gateway/requests/")
    rows = page.get_by_test_id("gateway-requests")
    expect(rows).to_contain_text(request_id)
    expect(rows).to_contain_text("support-bot-e2e")
    assert secret not in page.content()


@pytest.mark.django_db(transaction=True)
def test_gateway_traffic_shows_on_the_cost_and_quality_dashboards_and_the_aliases_health(
        page, page_log, demo_people, gateway_url, local_catalog, drain):  # noqa: F811
    from apps.accounts.models import Team
    from apps.gateway.services import gateway_key_create
    from apps.llm import breakers
    from apps.llm.models import Deployment

    for deployment in Deployment.objects.all():
        breakers.reset(deployment.pk)
    issued = gateway_key_create(team=Team.objects.get(slug="support-ai"), name="support-bot-e2e",
                                feature="support-bot", actor=None)
    sdk = OpenAI(base_url=gateway_url, api_key=issued.secret, max_retries=0)
    sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "How long do refunds take?"}])
    list(sdk.chat.completions.create(model="chat", stream=True,
                                     messages=[{"role": "user", "content": "How long do refunds take?"}]))
    assert drain() == 2

    log_in(page, "olivia")
    page.goto("/costs/")
    panel = page.get_by_test_id("gateway-spend")
    expect(panel).to_contain_text(issued.key.prefix)
    at_widths(page, lambda _width: assert_page_usable(page, page_log))
    with htmx_swap(page, "gateway_by=deployment"):
        panel.get_by_role("link", name="deployment").click()
    expect(page.get_by_test_id("gateway-spend")).to_contain_text("chat/local-extractive")
    assert_page_usable(page, page_log)

    page.goto("/evals/dashboards/")
    expect(page.locator('[data-testid="gateway-latency"] [data-alias="chat"] [data-measure="ttft-p50"]')
           ).to_contain_text("ms")
    at_widths(page, lambda _width: assert_page_usable(page, page_log))

    page.goto("/models/aliases/")
    chat = page.locator('[data-alias="chat"] [data-deployment="local-extractive"]')
    expect(chat.locator("[data-calls]")).to_have_text("2")
    expect(chat.locator("[data-p95]")).to_contain_text("ms")
    at_widths(page, lambda _width: assert_page_usable(page, page_log))
