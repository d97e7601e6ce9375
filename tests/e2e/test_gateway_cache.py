"""The response cache from a person's side: an owner turns it on for a new key, a program asks the same question
twice with the SDK, and the request log, the key's page and the cost dashboard show the hit."""

import pytest
from openai import OpenAI
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.layout import assert_page_usable
from tests.gateway.conftest import drain, gateway_server, gateway_url, local_catalog  # noqa: F401  (fixtures)


@pytest.mark.django_db(transaction=True)
def test_a_caching_key_answers_the_second_call_from_the_cache_and_the_pages_show_it(
        page, page_log, demo_people, gateway_url, local_catalog, drain):  # noqa: F811
    log_in(page, "olivia")
    page.goto("/gateway/")
    page.get_by_label("Name", exact=True).fill("cached-bot-e2e")
    page.get_by_label("Feature").fill("support-bot")
    page.get_by_label("Response cache (opt-in)").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("gateway-key-secret").inner_text().strip()

    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    question = [{"role": "user", "content": "Refunds take 14 days. How long do refunds take?"}]
    seen = [sdk.chat.completions.with_raw_response.create(model="chat", messages=question, temperature=0)
            .headers["x-portal-cache"] for _ in range(2)]
    assert seen == ["miss", "hit"] and drain() == 2

    page.goto("/gateway/requests/")
    expect(page.get_by_test_id("gateway-cache-rate")).to_contain_text("50% hits")
    expect(page.get_by_test_id("gateway-requests")).to_contain_text("hit")
    assert_page_usable(page, page_log)
    page.goto("/gateway/")
    expect(page.get_by_test_id("key-cache")).to_contain_text("50% hits (1 of 2)")
    page.goto("/costs/")
    expect(page.get_by_test_id("gateway-cache-saved")).to_contain_text("1 answer from the cache")
