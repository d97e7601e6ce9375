"""The gateway from a person's side: an owner creates a key on the page, a program calls the gateway with the
official SDK, and the call shows in the request log."""

import pytest
from openai import OpenAI
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
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
