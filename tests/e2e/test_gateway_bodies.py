"""A stored body from a person's side: a key that keeps its bodies answers a call with personal data in it; the
engineer opens the request in the log, sees it redacted, and adds it to the team's eval dataset."""

import pytest
from openai import OpenAI
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.gateway.conftest import drain, gateway_server, gateway_url, local_catalog  # noqa: F401  (fixtures)


@pytest.mark.django_db(transaction=True)
def test_open_a_stored_body_in_the_log_and_add_it_to_a_dataset(page, demo_people, gateway_url,  # noqa: F811
                                                                local_catalog, drain):  # noqa: F811
    from apps.accounts.models import Team
    from apps.evals.datasets import dataset_create
    from apps.gateway.services import gateway_key_create

    team = Team.objects.get(slug="support-ai")
    issued = gateway_key_create(team=team, name="support-bot-bodies", feature="support-bot", store_bodies=True,
                                actor=demo_people["olivia"])
    dataset_create(team=team, name="support/from-traffic", actor=demo_people["evan"])
    answer = OpenAI(base_url=gateway_url, api_key=issued.secret, max_retries=0).chat.completions.with_raw_response \
        .create(model="local-extractive", messages=[{"role": "user", "content": "Refunds take 14 days. I am "
                                                     "jane.doe@gmail.com: how long do refunds take?"}])
    request_id = answer.headers["x-portal-request-id"]
    drain()

    log_in(page, "evan")
    page.goto("/gateway/requests/")
    page.get_by_test_id("gateway-requests").get_by_role("link", name=request_id).click()
    body = page.get_by_test_id("gateway-body")
    expect(body).to_contain_text("[EMAIL]")
    assert "jane.doe@gmail.com" not in page.content()
    page.get_by_role("link", name="Add to eval dataset").click()
    page.get_by_label("Dataset").select_option(label="support/from-traffic")
    page.get_by_role("button", name="Add item").click()
    expect(page.get_by_text("Saved to support/from-traffic")).to_be_visible()
