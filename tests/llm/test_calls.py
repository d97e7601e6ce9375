"""The call path's own rules, whatever the provider: one usage event per call, refusals, validation, metrics."""

from decimal import Decimal

import pytest

from apps.core import metrics
from apps.core.request_context import acting_as
from apps.costs import services as costs_services
from apps.costs.models import UsageEvent
from apps.costs.services import UsageContext
from apps.llm import calls
from apps.llm.errors import BadRequest, ModelNotFound, RateLimited
from apps.llm.retry import RetryPolicy
from tests.factories import ModelFactory, UserFactory

pytestmark = pytest.mark.django_db

QUESTION = [{"role": "user", "content": "[1] Refunds take 14 days.\n\nHow long do refunds take?"}]


class BudgetExceeded(Exception):
    pass


def test_the_budget_preflight_sees_the_worst_case_cost_before_anything_is_sent(
        replay, gpt4o_mini, gpt4o_mini_price, usage_context, monkeypatch):
    http = replay("chat_completion")
    asked = []
    monkeypatch.setattr(costs_services, "usage_preflight", lambda **kwargs: asked.append(kwargs))

    calls.chat(model="gpt-4o-mini", messages=QUESTION, context=usage_context, max_tokens=200)

    assert len(asked) == 1 and len(http.requests) == 1
    assert asked[0]["model"] == "gpt-4o-mini"
    assert asked[0]["context"].request_id == usage_context.request_id
    worst = asked[0]["worst_case_cost"]
    # every estimated input token uncached at $0.15, plus all 200 output tokens at $0.60
    assert worst > 200 * Decimal("0.60") / 1_000_000


def test_an_unpriced_model_has_an_unknown_worst_case_not_zero(local_models, usage_context, monkeypatch):
    ModelFactory(name="mystery", provider=local_models["provider"], remote_name="local-extractive")
    asked = []
    monkeypatch.setattr(costs_services, "usage_preflight", lambda **kwargs: asked.append(kwargs))

    calls.chat(model="mystery", messages=QUESTION, context=usage_context)

    assert asked[0]["worst_case_cost"] is None


def test_a_refusal_is_recorded_and_re_raised_and_nothing_is_sent(replay, gpt4o_mini, usage_context, monkeypatch):
    http = replay("chat_completion")

    def refuse(**kwargs):
        raise BudgetExceeded("The support-ai team has spent its monthly budget.")

    monkeypatch.setattr(costs_services, "usage_preflight", refuse)

    with pytest.raises(BudgetExceeded):
        calls.chat(model="gpt-4o-mini", messages=QUESTION, context=usage_context)

    assert http.requests == []
    event = UsageEvent.objects.get()
    assert (event.status, event.error_type, event.cost) == ("refused", "BudgetExceeded", Decimal(0))


def test_an_unknown_model_is_a_readable_error_and_still_recorded(db, usage_context):
    with pytest.raises(ModelNotFound, match="no model named 'gpt-7'"):
        calls.chat(model="gpt-7", messages=QUESTION, context=usage_context)

    event = UsageEvent.objects.get()
    assert (event.model, event.status, event.error_type) == ("gpt-7", "error", "ModelNotFound")


def test_a_disabled_model_is_not_called(local_models, usage_context):
    from apps.llm.services import model_update

    calls.chat(model="local-extractive", messages=QUESTION, context=usage_context)  # its route is cached now
    model_update(model=local_models["chat"], is_active=False)

    with pytest.raises(ModelNotFound, match="disabled"):
        calls.chat(model="local-extractive", messages=QUESTION, context=usage_context)


def test_an_embedding_model_cannot_chat(local_models, usage_context):
    with pytest.raises(BadRequest, match="embedding model"):
        calls.chat(model="local-minilm", messages=QUESTION, context=usage_context)


@pytest.mark.parametrize("kwargs, message", [
    ({"messages": []}, "at least one message"),
    ({"messages": [{"content": "hi"}]}, "needs a role"),
    ({"temperature": 3}, "from 0 to 2"),
    ({"max_tokens": 0}, "positive whole number"),
    ({"max_tokens": 5000}, "more than local-extractive may produce"),
    ({"response_format": "json"}, "response_format"),
])
def test_bad_arguments_are_refused_with_a_clear_message(local_models, usage_context, kwargs, message):
    arguments = {"model": "local-extractive", "messages": QUESTION, "context": usage_context, **kwargs}

    with pytest.raises(BadRequest, match=message):
        calls.chat(**arguments)

    assert UsageEvent.objects.get().error_type == "BadRequest"


def test_reusing_a_context_records_every_call(local_models, usage_context):
    first = calls.chat(model="local-extractive", messages=QUESTION, context=usage_context)
    second = calls.embed(model="local-minilm", texts=["refunds"], context=usage_context)

    assert first.request_id == usage_context.request_id
    assert second.request_id == f"{usage_context.request_id}-2"
    assert UsageEvent.objects.count() == 2


def test_the_acting_user_is_attributed_when_the_context_names_nobody(local_models, team):
    user = UserFactory(username="uma-user")
    with acting_as(user):
        result = calls.chat(model="local-extractive", messages=QUESTION, context=UsageContext(source="api",
                                                                                             team_id=team.pk))

    assert UsageEvent.objects.get(pk=result.usage_event_id).user_id == user.pk


def test_calls_and_tokens_are_counted_in_prometheus(local_models, usage_context):
    def calls_ok():
        return metrics.MODEL_CALLS.labels("local", "local-extractive", "chat", "ok")._value.get()

    def tokens_in():
        return metrics.MODEL_TOKENS.labels("local-extractive", "input")._value.get()

    before_calls, before_tokens = calls_ok(), tokens_in()
    result = calls.chat(model="local-extractive", messages=QUESTION, context=usage_context)

    assert calls_ok() == before_calls + 1
    assert tokens_in() == before_tokens + result.usage.input_tokens


def test_a_retry_after_longer_than_we_wait_fails_at_once_and_says_when(monkeypatch, sleeps):
    from apps.llm.retry import with_retries

    def limited():
        raise RateLimited("gpt-4o-mini is rate limiting requests (429).", retry_after=600)

    with pytest.raises(RateLimited, match="wait 600 s"):
        with_retries(limited, RetryPolicy(max_retries=3, retry_after_max_seconds=60))
    assert sleeps == []


def test_backoff_grows_exponentially_up_to_the_cap():
    policy = RetryPolicy(max_retries=10, base_seconds=0.5, cap_seconds=4)
    # jitter pinned at 0.5 by the sleeps fixture: half of min(cap, base * 2^attempt)
    assert [policy.delay(attempt, None) for attempt in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
