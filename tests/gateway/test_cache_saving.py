"""What a response-cache hit saved, through the real gateway with the official OpenAI SDK: the original answer's
tokens at the price valid when the hit happened (so, while the price holds, exactly what the miss paid), put on the
ledger under the key's use case, and shown per use case on the cost dashboard. A later price never changes it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.costs.models import UsageEvent, UsageRollup
from apps.costs.pricing import TokenCounts, cost_of, quantize
from apps.costs.services import price_set
from apps.costs.templatetags.costs import money
from apps.reviews.models import State, UseCase
from tests.gateway.test_cache import EXACT, QUESTION, cached, sdk  # noqa: F401  (the stand-in's priced models)


@pytest.fixture
def refunds(team):
    return UseCase.objects.create(team=team, title="Refund helper", state=State.ACTIVE,
                                  expires_at=timezone.now() + timedelta(days=30))


def _ask(client):
    response = client.chat.completions.with_raw_response.create(model="standin-chat", messages=QUESTION, **EXACT)
    return response.headers["x-portal-cache"], response.headers["x-portal-request-id"]


def _tokens(event: UsageEvent) -> TokenCounts:
    return TokenCounts(input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                       cached_input_tokens=event.cached_input_tokens, reasoning_tokens=event.reasoning_tokens)


def test_a_hit_is_counted_as_a_saving_under_its_use_case_equal_to_what_the_miss_paid(
        gateway_url, cached, gateway_key, drain, refunds, client_for, owner, outsider):  # noqa: F811
    _key, secret = gateway_key(cache_enabled=True, use_case_id=refunds.pk)
    client = sdk(gateway_url, secret)
    (miss, paid_id), (hit, hit_id) = _ask(client), _ask(client)
    assert (miss, hit) == ("miss", "hit") and drain() == 2

    paid, answered = UsageEvent.objects.get(request_id=paid_id), UsageEvent.objects.get(request_id=hit_id)
    assert (answered.cache_hit, answered.cost, answered.use_case_id) == (True, 0, refunds.pk)
    assert answered.cache_saving == paid.cost > 0
    day = UsageRollup.objects.get(granularity="dayx", use_case_id=refunds.pk)
    assert (day.cache_hits, day.cache_hit_savings, day.cost) == (1, paid.cost, paid.cost)

    table = client_for(owner).get("/costs/charts/cacheusecase/").content.decode()
    assert "Refund helper" in table and f"<strong>{money(paid.cost)}</strong> saved" in table
    assert "Refund helper" not in client_for(outsider).get("/costs/charts/cacheusecase/").content.decode()


def test_the_saving_is_priced_when_the_hit_happens_and_never_at_todays_price(
        gateway_url, cached, gateway_key, drain, refunds):  # noqa: F811
    _key, secret = gateway_key(cache_enabled=True, use_case_id=refunds.pk)
    client = sdk(gateway_url, secret)
    _miss, paid_id = _ask(client)
    raised = price_set(model_name="standin-chat", input_per_mtok="5.00", output_per_mtok="20.00")
    _hit, hit_id = _ask(client)
    assert drain() == 2

    paid, answered = UsageEvent.objects.get(request_id=paid_id), UsageEvent.objects.get(request_id=hit_id)
    assert paid.price_id != raised.pk  # the miss was priced before the new price began
    assert answered.cache_saving == quantize(cost_of(_tokens(paid), raised)) != paid.cost

    price_set(model_name="standin-chat", input_per_mtok="0.01", output_per_mtok="0.01")  # today's price
    answered.refresh_from_db()
    day = UsageRollup.objects.get(granularity="dayx", use_case_id=refunds.pk)
    assert day.cache_hit_savings == answered.cache_saving == quantize(cost_of(_tokens(paid), raised))
