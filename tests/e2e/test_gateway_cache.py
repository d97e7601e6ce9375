"""The response cache from a person's side: an owner turns it on for a new key of a use case, a program asks the
same question twice with the SDK, and the request log, the key's page, the cost dashboard (per use case too) and the
use case's page show the hit."""

from datetime import timedelta

import pytest
from django.utils import timezone
from openai import OpenAI
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.layout import assert_page_usable
from tests.gateway.conftest import drain, gateway_server, gateway_url, local_catalog  # noqa: F401  (fixtures)


@pytest.mark.django_db(transaction=True)
def test_a_caching_key_answers_the_second_call_from_the_cache_and_the_pages_show_it(
        page, page_log, demo_people, gateway_url, local_catalog, drain):  # noqa: F811
    from apps.accounts.models import Team
    from apps.reviews.models import State, UseCase

    use_case = UseCase.objects.create(  # a long title: the per-use-case chart and table must keep it in its panel
        team=Team.objects.get(slug="support-ai"), state=State.ACTIVE, expires_at=timezone.now() + timedelta(days=30),
        title="Refund questions answered from the help centre articles for the support team's chat")
    log_in(page, "olivia")
    page.goto("/gateway/")
    page.get_by_label("Name", exact=True).fill("cached-bot-e2e")
    page.get_by_label("Feature").fill("support-bot")
    page.get_by_label("Use case id").fill(str(use_case.pk))
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
    expect(page.get_by_test_id("cache-use-case-saved")).to_contain_text("1 use case · 1 answer from the cache")
    expect(page.get_by_test_id("table-cacheusecase")).to_contain_text("Refund questions answered")
    assert_page_usable(page, page_log)
    page.goto(f"/use-cases/{use_case.pk}/")
    expect(page.get_by_test_id("use-case-cache-saved")).to_contain_text("1 answer from the cache")
